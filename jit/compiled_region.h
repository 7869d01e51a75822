// A compiled fused region: machine code in the JIT plus what a caller needs
// to run it. The object owns its code; destroying it removes the code from
// the JIT (code shared with other regions through the JIT's CodeCache goes
// when its last user does). It is one of two flavours:
// - a specialization (CompileElementwiseRegion, CompileRowReductionRegion):
//   every dim is a constant, run through Run();
// - a shape-generic version (CompileElementwiseRegionGeneric,
//   CompileRowReductionRegionGeneric): dims (elementwise: and strides) are
//   runtime parameters, run through RunGeneric(). is_generic() tells which;
//   a depthwise convolution (CompileDepthwiseRegion) is one of these, over
//   rows of its NHWC output;
// - a GEMM (CompileGemmRegion, is_gemm()): a CompiledGemm and where its
//   operands are among the region's inputs, run through RunGemm() over
//   tiles of the output; M is a constant or, for generic code, a parameter;
// - attention (CompileAttentionRegion, attention_layout()): GenericEntryFn
//   code whose params are PrepareAttentionCall's (attention_codegen.h) and
//   whose rows are units of work, (batch, head, query chunk) triples;
// - an LSTM (CompileLstmRegion, lstm()): a CompiledLstm and where its
//   operands and outputs are among the region's, run through its own
//   methods (the recurrence is one thread's per direction).
//
// Concurrency: Run() and RunGeneric() may be called from many threads at
// once on disjoint row ranges. The code is removed in the destructor, so the owner must
// destroy a CompiledRegion only when no thread can still be running its entry
// (the runtime holds shared_ptrs for that); ORC tracks symbols, not threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "jit/attention_codegen.h"
#include "jit/gemm_codegen.h"
#include "jit/jit_compiler.h"
#include "jit/lstm_codegen.h"
#include "jit/row_layout.h"
#include "kiln/tensor.h"

namespace kiln::jit {

class CompiledRegion {
 public:
  // inputs[i] points to the data of region input i (graph::Region::inputs
  // order; dense row-major with the dims of the shape signature); entries of
  // inputs baked in as immediates (is_input_baked) are not read and may be
  // null. outputs[k] points to region output k, dense with output_dims()[k]
  // (elementwise: the domain's shape; row reduction: row-shaped or one
  // value per row; bool as one byte per element). Computes the rows
  // [row_begin, row_end) of the domain viewed as [num_rows, row_len]; the
  // range is clamped to [0, num_rows). Buffers need no particular
  // alignment. An output may be the very buffer of a full-domain-shaped
  // input (in place: each vector is loaded before it is stored); any other
  // overlap between outputs and inputs is not allowed.
  using EntryFn = void (*)(const void* const* inputs, void* const* outputs, int64_t row_begin, int64_t row_end);

  // The shape-generic ABI. inputs/outputs and in-place use as for EntryFn,
  // with any dims: outputs are dense with the domain shape.
  //
  // `params` (int64, R = domain_rank(), n = number of region inputs):
  //   params[0 .. R-1]             domain dims, row-major
  //   params[R + i*R .. R + i*R + R-1]
  //                                for region input i (region.inputs order),
  //                                its element stride along each domain dim:
  //                                0 where the input broadcasts along that
  //                                dim; inputs of lower rank are right-aligned
  //                                and their missing leading dims have
  //                                stride 0.
  // R + n*R values in all; FillGenericParams (generic_codegen.h) builds them.
  // The strides of baked inputs (is_input_baked) are ignored. Strides need
  // not be dense: any non-negative element strides are read correctly.
  //
  // The domain is viewed as [rows, row_len] with rows = product of dims
  // [0, R-1) and row_len = dims[R-1] (rank 0: one row of one element).
  // Computes rows [row_begin, row_end), clamped to [0, rows); callers split
  // [0, rows) between threads.
  using GenericEntryFn = void (*)(const void* const* inputs, void* const* outputs, int64_t row_begin, int64_t row_end,
                                  const int64_t* params);

  struct Info {
    std::string name;  // module and symbol name
    int64_t num_rows = 0;
    int64_t row_len = 0;
    std::vector<bool> input_baked;  // per region input
    std::vector<Dims> output_dims;  // specializations: per region output
    bool generic = false;
    int domain_rank = 0;                      // generic elementwise code only
    std::optional<RowLayout> generic_layout;  // generic row-reduction code only
    double compile_ms = 0;
    bool reused_code = false;
    bool from_disk_cache = false;
    // Floating-point operations of one call (specializations of compute
    // regions, such as depthwise convolutions; 0 for elementwise code).
    double flops = 0;
    // Attention code only: where its operands are and how it reads them.
    std::optional<AttentionLayout> attention;
  };

  // Where a GEMM region's operands are: indices into the region's inputs
  // (-1: absent), and the bias, already scaled by the node's beta.
  struct GemmOperands {
    int a_input = 0;
    int residual_input = -1;
    std::vector<float> bias;  // N floats, or empty
  };

  // Which of an LSTM's outputs a region output is.
  enum class LstmOutput { kY, kYH, kYC };
  // Where an LSTM region's operands are among the region's inputs (-1:
  // absent; W, R and B are packed into the CompiledLstm), and what each
  // region output is.
  struct LstmOperands {
    int x_input = 0;
    int initial_h_input = -1;
    int initial_c_input = -1;
    std::vector<LstmOutput> outputs;  // per region output
  };

  CompiledRegion(std::shared_ptr<const JitCode> code, Info info);
  CompiledRegion(std::shared_ptr<const CompiledGemm> gemm, GemmOperands operands, Info info);
  CompiledRegion(std::shared_ptr<const CompiledLstm> lstm, LstmOperands operands, Info info);
  ~CompiledRegion();
  CompiledRegion(const CompiledRegion&) = delete;
  CompiledRegion& operator=(const CompiledRegion&) = delete;

  // Runs a specialization's code (EntryFn's contract); is_generic() must be
  // false.
  void Run(const void* const* inputs, void* const* outputs, int64_t row_begin, int64_t row_end) const;
  // Runs shape-generic code (GenericEntryFn's contract); is_generic() must
  // be true.
  void RunGeneric(const void* const* inputs, void* const* outputs, int64_t row_begin, int64_t row_end,
                  const int64_t* params) const;
  bool is_generic() const { return info_.generic; }
  bool is_gemm() const { return gemm_ != nullptr; }

  // GEMM code only. The output [m, n] is cut into tiles of mr() rows by
  // one column block; gemm_tiles(m) says how many, and RunGemm computes the
  // tiles [tile_begin, tile_end) (row-major: a tile's row block, then its
  // column block), so callers split any range between threads. `m` is the
  // product of A's leading dims; for a specialization it must be its own.
  int64_t gemm_tiles(int64_t m) const;
  void RunGemm(const void* const* inputs, void* const* outputs, int64_t m, int64_t tile_begin, int64_t tile_end) const;
  // The compiled GEMM (N, K, the tile, the packed weight), or null.
  const CompiledGemm* gemm() const { return gemm_.get(); }
  const GemmOperands& gemm_operands() const { return gemm_operands_; }
  // LSTM code only (null otherwise): the compiled LSTM of the region's
  // specialization (output_dims() are its outputs'), and its operands.
  const CompiledLstm* lstm() const { return lstm_.get(); }
  const LstmOperands& lstm_operands() const { return lstm_operands_; }
  // Generic elementwise code only: the rank R its params describe.
  int domain_rank() const { return info_.domain_rank; }
  // Generic row-reduction code only (nullopt otherwise): the layout it was
  // compiled for, which decides the calls it serves (RowLayout::Serves; see
  // PrepareGenericRowReductionCall in row_reduction_codegen.h).
  const std::optional<RowLayout>& generic_layout() const { return info_.generic_layout; }
  // Attention code only (nullopt otherwise): the layout that turns a
  // call's dims into its params (PrepareAttentionCall).
  const std::optional<AttentionLayout>& attention_layout() const { return info_.attention; }
  // Specializations only (0 for generic code, whose extents come from the
  // params): outer extent of the [rows, row_len] view; callers split
  // [0, num_rows).
  int64_t num_rows() const { return info_.num_rows; }
  // Inner, contiguous extent: trailing dims with the same broadcast pattern
  // for every input are collapsed into it, so the vector loop runs long. A
  // collapsed extent above 4096 is cut at a divisor in [256, 4096] (when it
  // has one) so that large tensors still give the caller rows to split.
  int64_t row_len() const { return info_.row_len; }
  // Specializations only (empty for generic code): the dims of each region
  // output (region.outputs order), the buffer sizes a caller allocates.
  // Elementwise outputs all have the domain's dims; a row reduction's are
  // row-shaped or one value per row.
  const std::vector<Dims>& output_dims() const { return info_.output_dims; }
  bool is_input_baked(size_t i) const { return i < info_.input_baked.size() && info_.input_baked[i]; }
  // Bytes of the executable sections of the emitted object file.
  size_t code_bytes() const;
  // Wall time from IR generation to a callable entry (optimisation and
  // machine-code generation included; for reused code, IR generation and
  // the cache lookup).
  double compile_ms() const { return info_.compile_ms; }
  // The entry symbol: the name of whichever region compiled the code first
  // when the code is shared.
  const std::string& name() const { return info_.name; }
  // True when the code came from the JIT's CodeCache, compiled earlier for
  // another region with identical IR.
  bool reused_code() const { return info_.reused_code; }
  // True when the code was linked from the persistent code cache, compiled
  // by an earlier session or process.
  bool from_disk_cache() const { return info_.from_disk_cache; }
  // Info::flops: the work of one Run over all rows.
  double flops() const { return info_.flops; }

 private:
  std::shared_ptr<const JitCode> code_;
  std::shared_ptr<const CompiledGemm> gemm_;
  GemmOperands gemm_operands_;
  std::shared_ptr<const CompiledLstm> lstm_;
  LstmOperands lstm_operands_;
  Info info_;
  EntryFn entry_ = nullptr;
  GenericEntryFn generic_entry_ = nullptr;
};

}  // namespace kiln::jit
