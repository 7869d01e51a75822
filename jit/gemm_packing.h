// Internal to jit/: how a GEMM's constant weight B [k, n] is blocked and
// packed for the generated micro-kernels (gemm_codegen.cc), and how the
// register tile and the K block are chosen for a target.
//
// Layout (Goto/BLIS): K is cut into blocks of `kc` rows (the last block may
// be shorter); within a block, N is cut into panels of nr = nv * lanes
// columns, each panel stored as kc_block rows of nr contiguous floats. When
// nr does not divide n, the last panel is narrower: tail_nv vectors, its
// last vector zero-padded past n, so the micro-kernel never loads B with a
// mask. Blocks follow each other in K order and panels in N order within a
// block, so a caller walking (K block, panel) streams the buffer once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kiln/status.h"

namespace kiln::jit::internal {

// What the code generator needs to know of the target's vector unit.
struct GemmIsa {
  std::string name;    // "avx512", "avx2", "sse": for labels and logs
  int lanes = 4;       // float32 lanes of one vector register
  int registers = 16;  // vector registers the allocator can use
};

// The blocking of one GEMM for one ISA.
struct GemmLayout {
  int lanes = 0;  // floats per vector
  int mr = 0;     // rows of a full register tile
  int nv = 0;     // vectors per full panel
  int64_t n = 0, k = 0;
  int64_t full_panels = 0;  // n / nr
  int tail_nv = 0;          // vectors of the narrower last panel; 0 when nr divides n
  int tail_lanes = 0;       // live lanes of the tail panel's last vector
  int64_t kc = 0;           // rows per K block (every block but the last)
  int64_t num_kblocks = 0;

  int nr() const { return nv * lanes; }
  int64_t num_panels() const { return full_panels + (tail_nv > 0 ? 1 : 0); }
  // Columns of one packed row of a K block (the panels side by side).
  int64_t padded_n() const { return full_panels * nr() + int64_t{tail_nv} * lanes; }
  int64_t kc_last() const { return k - (num_kblocks - 1) * kc; }
  size_t packed_floats() const { return static_cast<size_t>(padded_n() * k); }
};

// Cache sizes the blocking is chosen for.
struct CacheSizes {
  int64_t l1d_bytes = 32 << 10;
  int64_t l2_bytes = 1 << 20;
};

// The host's data caches from sysconf, or /sys when sysconf does not know,
// or the defaults above. Read once per process.
const CacheSizes& HostCacheSizes();

// Explicit choices that replace the heuristics (0: choose): for tests that
// need a split K and for tuning.
struct GemmTileOverride {
  int mr = 0;
  int nv = 0;
  int64_t kc = 0;
};

// Chooses the register tile and the K block for [m, k] x [k, n] (m <= 0:
// unknown, a run-time value) on `isa` with `caches`. Fails (kInvalidArgument)
// for an override the ISA's registers cannot hold.
StatusOr<GemmLayout> ChooseGemmLayout(int64_t m, int64_t n, int64_t k, const GemmIsa& isa, const CacheSizes& caches,
                                      const GemmTileOverride& override_tile);

// A 64-byte aligned float buffer.
struct FreeAlignedFloats {
  void operator()(float* p) const;
};
using AlignedFloats = std::unique_ptr<float[], FreeAlignedFloats>;

// B packed into `layout`: `weight` is B [k, n] row-major or, with
// `transposed`, B's transpose [n, k] row-major (Gemm's transB, a Linear
// layer's weight). kResourceExhausted when the buffer cannot be allocated.
StatusOr<AlignedFloats> PackGemmWeight(const GemmLayout& layout, const float* weight, bool transposed);

}  // namespace kiln::jit::internal
