// Shape-specialized float32 GEMM for a constant weight, generated for the
// host's vector ISA: C = act(alpha * A * B + bias + residual).
//
// CompileGemm packs B once (on the calling thread) into the blocked layout
// of jit/gemm_packing.h and emits, through the JIT, one register-tile
// micro-kernel per tile shape it needs (the full mr x nr tile, the narrower
// last column panel, the smaller row tiles of the M edge) and an entry that
// loops over K blocks, column panels and row blocks. K, N and (unless
// dynamic) M are compile-time constants; the N edge uses masked loads and
// stores, never scalar tails. The tile follows the host: with AVX-512, 32
// zmm registers hold 8x48 or 6x64 floats of C (chosen per shape); with
// AVX2, 16 ymm registers hold 6x16. A static M below the tile's rows gets a
// single row block with up to 4 vectors (M = 1: a 1x64 GEMV over the
// weight, streamed once).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "jit/jit_compiler.h"
#include "kiln/status.h"

namespace kiln::jit {

// The activation applied to each element last. Independent of kernels/'s
// Activation (jit/ does not depend on kernels/); the formulas are ONNX's.
enum class GemmActivation {
  kNone,
  kRelu,
  kLeakyRelu,  // x < 0 ? alpha * x : x
  kClip,       // clamp to [alpha, beta]
  kSigmoid,
  kTanh,
  kHardSwish,    // x * clamp(x / 6 + 0.5, 0, 1)
  kHardSigmoid,  // clamp(alpha * x + beta, 0, 1)
  kElu,          // x < 0 ? alpha * (e^x - 1) : x
  kGeluErf,      // x / 2 * (1 + erf(x / sqrt 2))
  kGeluTanh,     // x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))
  kSilu,         // x * sigmoid(x)
};

const char* GemmActivationName(GemmActivation activation);

struct GemmEpilogue {
  bool has_bias = false;      // bias[n], added to every row
  bool has_residual = false;  // residual[m x n], added element by element
  GemmActivation activation = GemmActivation::kNone;
  float alpha = 0.0f;  // see GemmActivation
  float beta = 0.0f;
};

struct GemmProblem {
  int64_t m = 0;  // rows of A and C; <= 0: dynamic, given to each Run
  int64_t n = 0;  // columns of B and C
  int64_t k = 0;  // columns of A, rows of B
  float alpha = 1.0f;
  GemmEpilogue epilogue;
  // Sum in the interpreter's order (SessionOptions::jit_bitwise_equivalent):
  // the interpreter's packed GEMM (kernels/packed_sgemm.cc) blocks K by
  // kBitExactDepthBlock and C's rows into tiles of kBitExactTileRows; within
  // a block each element of C sums its products in one chain of FMAs, or,
  // in a tile of 1 or 2 rows, in 4 or 2 interleaved chains added at the
  // end; a block's sum is added to C. The code then does the same (the tile
  // width, which no element's sum depends on, stays the host's), and
  // applies the epilogue with the interpreter's formulas. Callers that split
  // rows over threads split them at multiples of kBitExactTileRows (as
  // CompiledRegion does), or the edge rows sum as tiles of their own.
  bool bit_exact = false;
};

// The interpreter's packed-GEMM blocking that bit-exact code follows.
inline constexpr int kBitExactTileRows = 6;
inline constexpr int64_t kBitExactDepthBlock = 256;
// Interleaved accumulator chains per element in a bit-exact tile of `rows`.
inline int BitExactChains(int rows) { return rows == 1 ? 4 : rows == 2 ? 2 : 1; }

// Replaces the tile and K-block heuristics (0 keeps the heuristic): for
// tests that need a split K and for tuning. A tile the ISA's registers
// cannot hold fails with kInvalidArgument.
struct GemmTuning {
  int mr = 0;      // rows of the register tile, at most 16
  int nr = 0;      // columns of the register tile, a multiple of the vector lanes
  int64_t kc = 0;  // rows of B per K block
};

// A compiled GEMM: its machine code and its packed weight, freed together.
//
// Concurrency: Run and RunTile may be called from any number of threads at
// once on disjoint parts of C (row ranges, column blocks, or both). The
// object must outlive every such call (ORC tracks symbols, not threads).
class CompiledGemm {
 public:
  struct Info {
    std::string name;  // entry symbol
    std::string isa;   // "avx512", "avx2", "sse"
    GemmProblem problem;
    int mr = 0, nr = 0, lanes = 0;
    int64_t kc = 0, num_kblocks = 0, num_column_blocks = 0;
    size_t packed_weight_bytes = 0;
    double compile_ms = 0;  // packing included
    bool reused_code = false;
    bool from_disk_cache = false;
  };

  ~CompiledGemm();
  CompiledGemm(const CompiledGemm&) = delete;
  CompiledGemm& operator=(const CompiledGemm&) = delete;

  // C [m x n] (row stride ldc) = act(alpha * A [m x k] (row stride lda) * B
  // + bias + residual [m x n] (row stride ldr)) for the rows
  // [row_begin, row_end), clamped to [0, m). `m` must be problem().m when M
  // is static. bias (n floats) and residual are read only when the
  // epilogue has them and may be null otherwise. residual must not overlap
  // C; A and C must not overlap. Rows split at multiples of mr() run the
  // fewest edge tiles, any split is correct. Buffers need no alignment.
  void Run(const float* a, int64_t lda, int64_t m, float* c, int64_t ldc, const float* bias, const float* residual,
           int64_t ldr, int64_t row_begin, int64_t row_end) const;
  // As Run, for the columns of the column blocks [block_begin, block_end)
  // only (clamped to [0, num_column_blocks())): block b covers columns
  // [b * nr(), min((b + 1) * nr(), n)). Splits small M over threads.
  void RunTile(const float* a, int64_t lda, int64_t m, float* c, int64_t ldc, const float* bias, const float* residual,
               int64_t ldr, int64_t row_begin, int64_t row_end, int64_t block_begin, int64_t block_end) const;

  const GemmProblem& problem() const { return info_.problem; }
  bool dynamic_m() const { return info_.problem.m <= 0; }
  int mr() const { return info_.mr; }
  int nr() const { return info_.nr; }
  int64_t kc() const { return info_.kc; }
  int64_t num_column_blocks() const { return info_.num_column_blocks; }
  // "avx512 14x32": the ISA and register tile, for logs and benchmarks.
  std::string label() const;
  const std::string& isa() const { return info_.isa; }
  size_t packed_weight_bytes() const { return info_.packed_weight_bytes; }
  size_t code_bytes() const { return code_->code_bytes(); }
  double compile_ms() const { return info_.compile_ms; }
  bool reused_code() const { return info_.reused_code; }
  bool from_disk_cache() const { return info_.from_disk_cache; }
  // Floating-point operations of one run over m rows (2 m n k).
  double flops(int64_t m) const { return 2.0 * static_cast<double>(m * info_.problem.n * info_.problem.k); }

 private:
  friend StatusOr<std::unique_ptr<CompiledGemm>> CompileGemm(JitCompiler&, const GemmProblem&, const float*, bool,
                                                             const GemmTuning&);
  struct PackedWeight;
  CompiledGemm(std::shared_ptr<const JitCode> code, std::unique_ptr<PackedWeight> weight, Info info);

  std::shared_ptr<const JitCode> code_;
  std::unique_ptr<PackedWeight> weight_;
  Info info_;
  void (*entry_)(const void* args) = nullptr;
};

// Packs `weight` and compiles the GEMM for the host. `weight` is B [k x n]
// row-major or, with `weight_transposed`, B's transpose [n x k] row-major
// (Gemm's transB); it is read during the call only.
//
// Errors: kInvalidArgument for n or k <= 0, a null weight or a bad tuning;
// kResourceExhausted when the packed weight cannot be allocated; kInternal
// when LLVM fails. Nothing stays in the JIT on failure.
StatusOr<std::unique_ptr<CompiledGemm>> CompileGemm(JitCompiler& compiler, const GemmProblem& problem,
                                                    const float* weight, bool weight_transposed,
                                                    const GemmTuning& tuning = {});

// The assembly CompileGemm would generate for `problem` on another CPU
// (LLVM's name, e.g. "skylake-avx512", "znver4", "haswell") with its
// default features when `features` is empty, else with `features` ("+avx2,
// -avx512f" style). The blocking uses this host's cache sizes. For tests and
// inspection; kInvalidArgument for an unknown CPU.
StatusOr<std::string> EmitGemmAssembly(const GemmProblem& problem, const std::string& cpu, const std::string& features,
                                       const GemmTuning& tuning = {});

}  // namespace kiln::jit
