// Code generation for LSTM regions (graph::RegionKind::kLstm): the region's
// node (graph/lstm_pattern.h) compiled by CompileLstm (lstm_codegen.h) for
// one (seq, batch): its weights are packed during the compile, and other
// shapes are the interpreter's.
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
// kUnsupported when the node is not an LSTM the generator handles, for
// shape-generic code (LSTM code is compiled per shape), or for a host
// without AVX2 (the region stays interpreted); kInvalidArgument when the
// dims do not fit the node; kInternal when LLVM fails.
StatusOr<std::unique_ptr<CompiledRegion>> CompileLstmRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                            const graph::Region& region,
                                                            const std::vector<Dims>& input_dims, bool generic);

}  // namespace kiln::jit
