#include "jit/region_compiler.h"

#include <algorithm>

#include "jit/attention_region.h"
#include "jit/depthwise_region.h"
#include "jit/elementwise_codegen.h"
#include "jit/gemm_region.h"
#include "jit/generic_codegen.h"
#include "jit/lstm_region.h"
#include "jit/row_reduction_codegen.h"

namespace kiln::jit {

int MaxRank(const std::vector<Dims>& input_dims) {
  size_t rank = 0;
  for (const Dims& d : input_dims) rank = std::max(rank, d.size());
  return static_cast<int>(rank);
}

StatusOr<std::unique_ptr<CompiledRegion>> CompileRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                        const graph::Region& region,
                                                        const std::vector<Dims>& input_dims, bool generic) {
  // Bit-exact code exists for elementwise and GEMM regions: the other kinds
  // sum (rows, filter taps, keys) in an order of their own.
  if (compiler.bit_exact() && region.kind != graph::RegionKind::kElementwise &&
      region.kind != graph::RegionKind::kGemm) {
    return Unsupported("jit: bitwise-equivalent mode compiles no ", graph::RegionKindName(region.kind),
                       " regions (their sums would not be ordered as the interpreter's)");
  }
  switch (region.kind) {
    case graph::RegionKind::kElementwise:
      return generic ? CompileElementwiseRegionGeneric(compiler, graph, region, MaxRank(input_dims))
                     : CompileElementwiseRegion(compiler, graph, region, input_dims);
    case graph::RegionKind::kRowReduction:
      return generic ? CompileRowReductionRegionGeneric(compiler, graph, region, input_dims)
                     : CompileRowReductionRegion(compiler, graph, region, input_dims);
    case graph::RegionKind::kGemm: return CompileGemmRegion(compiler, graph, region, input_dims, generic);
    case graph::RegionKind::kDepthwiseConv: return CompileDepthwiseRegion(compiler, graph, region, input_dims, generic);
    case graph::RegionKind::kAttention: return CompileAttentionRegion(compiler, graph, region, input_dims, generic);
    case graph::RegionKind::kLstm: return CompileLstmRegion(compiler, graph, region, input_dims, generic);
  }
  return Internal("jit: no code generator for region kind ", graph::RegionKindName(region.kind));
}

}  // namespace kiln::jit
