// Scaled dot-product attention (graph/attention_pattern.h) generated for the
// host's vector ISA with an online softmax, so the [queries, keys] scores
// never go to memory.
//
// A unit of work is one (batch, head, chunk of query rows). For it, the
// code walks the keys in blocks: K's block is transposed once into a stack
// tile [head_dim][keys] (vector shuffles, W x W at a time), then for each
// group of query rows a register tile of scores [rows][key vectors] is the
// sum over d of Q[row, d] (broadcast) times the tile's row d; the scores
// are scaled, the mask added, keys past the end set to -inf (lane masks,
// no scalar tails), and each row's running max and sum updated: the
// accumulated output rows are rescaled by exp(old max - new max) and the
// probabilities times V's rows added (V's rows are contiguous along d,
// the last vector of a row masked). At the end each row is divided by its
// sum and stored. Only the head dim and the scale are compiled in: batch,
// heads, both sequence lengths and every stride are run-time parameters, so
// one version serves a stream of sequence lengths.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace llvm {
class Module;
}  // namespace llvm

namespace kiln::jit {

// The compile-time part of an attention region.
struct AttentionProblem {
  int64_t head_dim = 0;
  float scale = 1.0f;
  bool has_mask = false;
};

// Where the entry finds its operands (region input indices; -1: none) and
// how the operands' axes map to the logical [batch, heads, seq, head_dim]
// (graph::AttentionPattern's axes), plus the query rows per unit of work
// the code was compiled with.
struct AttentionLayout {
  int q_input = 0, k_input = 1, v_input = 2, mask_input = -1;
  size_t num_inputs = 3;
  std::array<int, 4> q_axes{0, 1, 2, 3}, k_axes{0, 1, 2, 3}, v_axes{0, 1, 2, 3}, out_axes{0, 1, 2, 3};
  int64_t head_dim = 0;
  int64_t query_chunk = 0;
};

// The entry's params (CompiledRegion::GenericEntryFn), int64 each: batch,
// heads, query length, key length; then element strides along (batch, head,
// seq) of Q, K, V and the output, and along (batch, head, query, key) of
// the mask (0 where it broadcasts; its key stride is 0 or 1); then the
// number of query chunks per (batch, head). Rows of the ABI are units of
// work: batch * heads * chunks.
enum AttentionParam : int {
  kAttnBatch = 0,
  kAttnHeads = 1,
  kAttnQueries = 2,
  kAttnKeys = 3,
  kAttnQStrides = 4,
  kAttnKStrides = 7,
  kAttnVStrides = 10,
  kAttnOutStrides = 13,
  kAttnMaskStrides = 16,
  kAttnChunks = 20,
  kAttnNumParams = 21,
};

// Query rows per unit of work for `head_dim` and `lanes`.
int64_t AttentionQueryChunk(int64_t head_dim, int lanes);

// The params of a call on region inputs of `input_dims`, the output's dims
// (dense, the output value's axis order) and its floating-point operations.
// kInvalidArgument when the dims do not fit the layout (another head dim,
// mismatched batch or heads, a mask that does not broadcast, a key-axis
// mask stride other than 0 or 1).
Status PrepareAttentionCall(const AttentionLayout& layout, const std::vector<Dims>& input_dims,
                            std::vector<int64_t>& params, Dims& output_dims, double& flops);

// Emits the entry `name` (GenericEntryFn ABI with the params above) into
// `module` for vectors of `lanes` floats and the CPU `cpu` with `features`.
Status EmitAttentionEntry(llvm::Module& module, const std::string& name, const AttentionProblem& problem,
                          const AttentionLayout& layout, int lanes, const std::string& cpu,
                          const std::string& features);

// The assembly of the entry for another CPU (see EmitAssemblyFor in
// codegen_target.h), for tests that read the generated code.
StatusOr<std::string> EmitAttentionAssembly(const AttentionProblem& problem, const std::string& cpu,
                                            const std::string& features);

}  // namespace kiln::jit
