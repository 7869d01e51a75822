// Code generation for row-reduction regions (graph::RegionKind::kRowReduction):
// one LLVM function per shape specialization over the domain viewed as
// [rows, row_len] (planned by row_region_plan.h, emitted by
// row_reduction_codegen.cc). For each row it makes a few passes over the
// row:
// - accumulation passes: every reduction whose operand is ready folds it
//   into vector accumulators (masked tail, horizontal reduction at the end
//   of the pass), e.g. LayerNorm's mean, then its variance of (x - mean),
//   Softmax's max, then its sum of exp(x - max);
// - a last pass that computes and stores the row-shaped outputs, after
//   which the per-row outputs (e.g. a ReduceMean) are stored once.
// A value that later passes read again — a reduction's computed input,
// Softmax's exp(x - max) — is kept in a stack row buffer by the first pass
// that computes it when rows have at most 4096 elements (kMaxStashedRow in
// the .cc), so later passes load it instead of recomputing the elementwise
// prefix; longer rows and shape-generic code recompute it from the inputs
// in each pass.
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

// The shape-generic version (CompiledRegion::is_generic, GenericEntryFn):
// the rows and the row length are runtime parameters, params = [rows,
// row_len]. Planned from one signature (`input_dims`), it serves every
// signature that lays the region out the same way: each loaded input read
// whole (dense over the domain), as one row shared by every row, as one
// value per row, or as one value, and the same members and outputs per-row
// (its RowLayout, CompiledRegion::generic_layout()).
// kUnsupported when an input broadcasts along only some of the leading dims
// (e.g. an attention mask [1, 1, S, S] over [B, H, S, S]); those regions
// keep their specializations only.
StatusOr<std::unique_ptr<CompiledRegion>> CompileRowReductionRegionGeneric(JitCompiler& compiler,
                                                                           const graph::Graph& graph,
                                                                           const graph::Region& region,
                                                                           const std::vector<Dims>& input_dims);

// For a call of generic row-reduction `code` on inputs of `input_dims`:
// fills `params` and the dims of each region output. kUnsupported when
// these shapes lay the region out in a way the code's layout does not
// serve (RowLayout::Serves; the caller interprets that call); errors of
// planning as for CompileRowReductionRegion.
Status PrepareGenericRowReductionCall(const CompiledRegion& code, const graph::Graph& graph,
                                      const graph::Region& region, const std::vector<Dims>& input_dims,
                                      std::vector<int64_t>& params, std::vector<Dims>& output_dims);

}  // namespace kiln::jit
