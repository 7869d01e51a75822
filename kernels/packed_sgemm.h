// Float32 GEMM with a pre-packed right-hand side: C = A * B, where B is a
// graph constant (a MatMul's or Gemm's weight) packed once into column
// panels and A and C are row-major.
//
// Why not oneDNN: the oneDNN shipped with Debian 12 (2.6) runs float32 matmul
// on AVX2 through its "gemm:jit" sgemm, which packs B again on every call.
// For the inference shapes that matter (a few to a few hundred rows against a
// 1024x1024 weight) that repacking is most of the time, where this loop
// packs a constant weight once, at preparation, and never at run time.
//
// Layout: B [K, N] is cut into panels of kPanelWidth columns; each panel is
// K rows of kPanelWidth contiguous floats (the last panel zero-padded), so the
// micro-kernel reads one panel row as two 8-float vectors. The micro-kernel
// keeps a 6 x 16 tile of C in 12 AVX2 registers and, per step of k, does two
// panel loads, six broadcasts of A and twelve FMAs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "graph/mutex.h"
#include "kernels/kernel.h"
#include "kiln/status.h"

namespace kiln::kernels {

class PackedMatrixB {
 public:
  static constexpr int64_t kPanelWidth = 16;
  // Callers pack only B with at least this many columns: each panel row
  // holds 16 floats, so a narrower B would take more than twice its own
  // memory packed (a [1e8, 1] weight, 16 times).
  static constexpr int64_t kMinColumns = 8;

  // Packs B [k, n] (row-major, row stride ldb) or, with `transposed`, B
  // given as its transpose [n, k] (row stride ldb), as Gemm's transB and
  // PyTorch's Linear weights store it.
  // Fails (kResourceExhausted) only when the packed copy cannot be allocated.
  static StatusOr<std::shared_ptr<const PackedMatrixB>> Pack(const float* b, int64_t k, int64_t n, int64_t ldb,
                                                             bool transposed);

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  int64_t num_panels() const { return (n_ + kPanelWidth - 1) / kPanelWidth; }
  // Row `row` of panel `panel`: kPanelWidth floats, 32-byte aligned.
  const float* panel_row(int64_t panel, int64_t row) const { return data_.get() + (panel * k_ + row) * kPanelWidth; }
  // The matrix it was packed from, to tell a changed weight from a kept one.
  const float* source() const { return source_; }

 private:
  struct FreeAligned {
    void operator()(float* p) const;
  };
  PackedMatrixB(int64_t k, int64_t n, const float* source);

  int64_t k_, n_;
  const float* source_;
  std::unique_ptr<float[], FreeAligned> data_;
};

// The packed copy of one kernel's constant weight, shared by all calls. By
// default the first call that needs it packs it. A kernel whose runtime
// packs in the background (OpKernel::TakePreparation) hands the packing out
// with DeferPacking; its calls then never pack, and run on the unpacked
// weight (SgemmWithWeight) until the packed copy is published. Thread-safe:
// concurrent first calls pack once.
class PackedWeightSlot {
 public:
  // B packed as PackedMatrixB::Pack(b, k, n, ldb, transposed) would; packs
  // again only if called for another matrix or shape (a kernel's constant
  // weight never changes, so in practice once per session).
  StatusOr<std::shared_ptr<const PackedMatrixB>> Get(const float* b, int64_t k, int64_t n, int64_t ldb,
                                                     bool transposed) const;

  // From now on, calls do not pack B themselves; the returned work packs it
  // (without holding the slot's lock while it does) and publishes it. If
  // packing fails (no memory), calls keep running on the unpacked weight.
  std::function<void()> DeferPacking(const float* b, int64_t k, int64_t n, int64_t ldb, bool transposed);

  // What a call should run on: the packed copy of exactly this B if it is
  // published; else null, with `*deferred` saying whether packing was handed
  // to the background (run unpacked) or not (pack now, with Get).
  std::shared_ptr<const PackedMatrixB> Published(const float* b, int64_t k, int64_t n, bool* deferred) const;

 private:
  mutable Mutex mu_;
  mutable std::shared_ptr<const PackedMatrixB> packed_ KILN_GUARDED_BY(mu_);
  bool deferred_ KILN_GUARDED_BY(mu_) = false;
};

// Called with a finished tile of C, rows [row_begin, row_end) x columns
// [col_begin, col_end), while it is still in cache: the caller's epilogue
// (bias, residual, activation) runs there. Tiles are disjoint; calls may come
// from several threads at once.
using TileEpilogue = std::function<void(int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end)>;

// C [m, b.n()] (row stride ldc) = A [m, b.k()] (row stride lda) * B, split
// over `parallel`'s threads in tiles of rows x panels; then `epilogue` (if
// set) on each tile. Every element of C is summed in the same order whatever
// the thread count, so results do not depend on it.
void PackedSgemm(const float* a, int64_t lda, int64_t m, const PackedMatrixB& b, float* c, int64_t ldc,
                 const ParallelRunner& parallel, const TileEpilogue& epilogue);

// PackedSgemm on panels that the caller laid out as PackedMatrixB holds
// them (B [k, n] as ceil(n / kPanelWidth) panels, each k rows of
// kPanelWidth floats, the last zero-padded): for a one-off copy of a
// weight gathered in another order than Pack's (a first-run convolution's
// window order). Same sums, tiles and threading as PackedSgemm.
void PanelSgemm(const float* a, int64_t lda, int64_t m, const float* panels, int64_t k, int64_t n, float* c,
                int64_t ldc, const ParallelRunner& parallel, const TileEpilogue& epilogue);

// The same product on B as given (B [k, n] with row stride ldb, or with
// `transposed` its transpose [n, k]), for a weight whose packed copy is not
// ready: PackedSgemm's micro-kernel, in PackedSgemm's order, reads a
// row-major B's whole 16-column panels in place (copied like the others
// when B's rows are a page or more apart and A has more than 12 rows), and
// each task packs the other panel blocks it needs (a transposed B's, a
// partial last panel) into a buffer that stays in L1. The results are therefore equal to PackedSgemm's
// bit for bit; the cost is those copies per call (no allocation, no page
// faults) and, for B read in place, strided rows instead of one stream.
// With one row of A (a batch-1 GEMV) B is streamed once in its stored
// order instead, either layout, with the same sums.
void UnpackedSgemm(const float* a, int64_t lda, int64_t m, const float* b, int64_t k, int64_t n, int64_t ldb,
                   bool transposed, float* c, int64_t ldc, const ParallelRunner& parallel,
                   const TileEpilogue& epilogue);

// C = A * B for a kernel's constant weight B held in `slot`: on the packed
// copy when it is published; on B itself (UnpackedSgemm) while packing is
// deferred and not done; otherwise after packing it now. Fails only when
// packing now cannot allocate.
Status SgemmWithWeight(const PackedWeightSlot& slot, const float* a, int64_t lda, int64_t m, const float* b, int64_t k,
                       int64_t n, int64_t ldb, bool transposed, float* c, int64_t ldc, const ParallelRunner& parallel,
                       const TileEpilogue& epilogue);

}  // namespace kiln::kernels
