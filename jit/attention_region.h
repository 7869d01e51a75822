// Code generation for attention regions (graph::RegionKind::kAttention): the
// region's chain (graph/attention_pattern.h) compiled by
// jit/attention_codegen.h. The code takes batch, heads, sequence lengths and
// strides as parameters, so one compile serves every shape with the same
// head dim: a specialization (static shapes) and the generic version (a
// symbolic sequence length) are the same code under different guards.
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

// Compiles `region` for region inputs of `input_dims` (which must fit it:
// PrepareAttentionCall). Errors: kUnsupported for a chain the generator
// does not handle (the region stays interpreted); kInvalidArgument when the
// dims do not fit; kInternal when LLVM fails.
StatusOr<std::unique_ptr<CompiledRegion>> CompileAttentionRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                                 const graph::Region& region,
                                                                 const std::vector<Dims>& input_dims, bool generic);

// True when `code` (attention code) computes a call on `input_dims`.
bool AttentionServes(const CompiledRegion& code, const std::vector<Dims>& input_dims);

}  // namespace kiln::jit
