// Internal to jit/ (and its tests): the planner of row-reduction regions.
// From the graph and the dims of a region's inputs it decides, without
// generating any code, how the domain splits into [rows, row_len], how
// each input is read, which values are one per row, which reductions
// accumulate in which pass over the row, and the dims of the outputs.
// RowEmitter (row_reduction_codegen.cc) turns a plan into LLVM IR; this
// header and its library include nothing from LLVM.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "graph/graph.h"
#include "graph/partitioner.h"
#include "graph/region.h"
#include "jit/region_inputs.h"
#include "jit/row_layout.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::jit::internal {

// How one region input is read.
struct RowInputPlan {
  InputSpec spec;
  bool unused = false;   // a reduction's constant axes: never read (spec.baked is set too)
  bool per_row = false;  // one element per row (splatted), else a whole row
  // Elements per step of each leading (non-row) domain dim; 0 where the
  // input broadcasts along it.
  std::vector<int64_t> outer_strides;
  bool outer_dense = false;  // offset = row * (elements per row)
};

// A reduction member and when its accumulations run.
struct ReductionPlan {
  graph::NodeId node = graph::kNoNode;
  graph::RowReduction op;
  int stage = 0;          // the pass of its first accumulation
  int accumulations = 1;  // Softmax, LogSoftmax and LayerNorm need a second one
};

struct RowRegionPlan {
  Dims domain;   // the reductions' common input dims
  int axis = 0;  // their first reduced axis: the row is every axis from it on
  int64_t rows = 0;
  int64_t row_len = 0;
  std::vector<RowInputPlan> inputs;       // region.inputs order
  std::vector<int> input_index;           // value id -> region input index, or -1
  std::vector<std::optional<Dims>> dims;  // value id -> dims (inputs and members)
  std::vector<bool> per_row;              // value id -> one value per row
  std::vector<int> level;                 // value id -> first pass it is known in
  std::vector<int> reduction_of;          // node id -> index into reductions, or -1
  std::vector<ReductionPlan> reductions;  // in region order
  int num_passes = 0;                     // accumulation passes (the output pass not counted)
  std::vector<Dims> output_dims;          // region.outputs order
  std::vector<bool> output_per_row;
  std::vector<Kind> output_kinds;
};

// Plans `region` of `graph` for inputs of `input_dims` (region.inputs
// order). All reductions must share their input dims (the domain) and
// first reduced axis; every other input must broadcast into the domain
// and, along the row, either cover it whole or be one element; outputs are
// row-shaped or one value per row.
//
// Errors: kUnsupported for what the row code does not handle (another
// region kind, an op or dtype, an input broadcast along part of the row,
// an empty domain); kInvalidArgument/kInvalidModel when the dims or the
// region are malformed.
StatusOr<RowRegionPlan> PlanRowRegion(const graph::Graph& graph, const graph::Region& region,
                                      const std::vector<Dims>& input_dims);

// The layout shape-generic code compiled from `plan` would read, or that a
// call with `plan`'s dims lays out. kUnsupported when an input broadcasts
// along some but not all of the leading dims (e.g. an attention mask
// [1, 1, S, S] over [B, H, S, S]): generic row code reads inputs whole,
// per row or once.
StatusOr<RowLayout> GenericRowLayout(const RowRegionPlan& plan);

}  // namespace kiln::jit::internal
