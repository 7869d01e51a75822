// Code generation for row-reduction regions (graph::RegionKind::kRowReduction):
// one LLVM function per shape specialisation over the domain viewed as
// [rows, row_len]. For each row it makes a few passes over the row, each
// recomputing the elementwise prefix it needs from the inputs in vector
// registers (rows are short enough to stay in L1/L2, so re-reading is
// cheaper than an intermediate buffer):
// - accumulation passes: every reduction whose operand is ready folds it
//   into vector accumulators (masked tail, horizontal reduction at the end
//   of the pass), e.g. LayerNorm's mean, then its variance of (x - mean),
//   Softmax's max, then its sum of exp(x - max);
// - a last pass that computes and stores the row-shaped outputs, after
//   which the per-row outputs (e.g. a ReduceMean) are stored once.
// The entry has the elementwise ABI (CompiledRegion::EntryFn), so callers
// split rows across threads the same way.
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

// Compiles `region` of `graph` for the concrete dims of its inputs
// (`input_dims[i]` for region.inputs[i]). Every dim becomes a compile-time
// constant; single-element constant inputs are baked in as immediates, and
// a ReduceX's constant axes input is never read (is_input_baked).
//
// All reductions must share their input dims (the domain) and first reduced
// axis; every other input must broadcast into the domain and, along the
// row, either cover it whole or be one element. Outputs are row-shaped (the
// domain's dims) or per-row (the domain's leading dims, then 1s);
// CompiledRegion::output_dims() gives each.
//
// Errors: kUnsupported naming what the generator does not handle (an op, a
// dtype, an input broadcast only along part of the row, an empty domain) —
// the caller then keeps the region interpreted; kInvalidArgument when the
// dims do not match the region; kInternal when LLVM fails. Nothing is left
// in the JIT on failure.
StatusOr<std::unique_ptr<CompiledRegion>> CompileRowReductionRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                                    const graph::Region& region,
                                                                    const std::vector<Dims>& input_dims);

}  // namespace kiln::jit
