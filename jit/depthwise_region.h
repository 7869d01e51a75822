// Code generation for depthwise-convolution regions
// (graph::RegionKind::kDepthwiseConv): the region's convolution
// (graph/depthwise_pattern.h) compiled by jit/depthwise_codegen.h for the
// input's shape, as a specialization with CompiledRegion's row ABI (rows =
// N * OH output rows, a row = OW * C floats).
#pragma once

#include <memory>
#include <vector>

#include "graph/graph.h"
#include "graph/region.h"
#include "jit/compiled_region.h"
#include "jit/jit_compiler.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::jit {

// Compiles `region` for region inputs of `input_dims`. Errors:
// kUnsupported for shape-generic code (`generic`) or a node the generator
// does not handle (the region stays interpreted); kInvalidArgument when the
// dims do not fit the node; kInternal when LLVM fails.
StatusOr<std::unique_ptr<CompiledRegion>> CompileDepthwiseRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                                 const graph::Region& region,
                                                                 const std::vector<Dims>& input_dims, bool generic);

}  // namespace kiln::jit
