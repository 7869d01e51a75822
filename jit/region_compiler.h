// The JIT's one entry for compiling a region of any kind: picks the code
// generator for the region's kind and flavour. Callers outside jit/ (the
// runtime's tier) need nothing else from the generators.
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

// Compiles `region` for region inputs of `input_dims` (region.inputs
// order): specialized to those dims, or, with `generic`, one shape-generic
// version planned on them (elementwise: any dims up to their rank; row
// reductions: any rows and row length with the same layout). Errors as the
// generators give them (kUnsupported: the region stays interpreted).
StatusOr<std::unique_ptr<CompiledRegion>> CompileRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                        const graph::Region& region,
                                                        const std::vector<Dims>& input_dims, bool generic);

// The largest rank among `input_dims`: the domain rank a generic
// elementwise version is compiled for.
int MaxRank(const std::vector<Dims>& input_dims);

}  // namespace kiln::jit
