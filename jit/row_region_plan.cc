#include "jit/row_region_plan.h"

#include <algorithm>
#include <string>

namespace kiln::jit::internal {
namespace {

using graph::Node;
using graph::NodeId;
using graph::RowOp;
using graph::RowReduction;
using graph::ValueId;

int64_t Product(const Dims& dims, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end; ++i) n *= dims[i];
  return n;
}

// `dims` right-aligned to `rank` with leading 1s.
Dims Padded(const Dims& dims, size_t rank) {
  Dims out(rank, 1);
  for (size_t k = 0; k < dims.size(); ++k) out[rank - dims.size() + k] = dims[k];
  return out;
}

// Whether a value of `dims` covers the row (false: one element per row).
// kUnsupported when it does neither or does not broadcast into the domain.
StatusOr<bool> CoversRow(const Dims& dims, const RowRegionPlan& plan, const std::string& what) {
  if (dims.size() > plan.domain.size()) {
    return Unsupported("jit: ", what, " ", DimsToString(dims), " has a higher rank than the domain ",
                       DimsToString(plan.domain));
  }
  const Dims p = Padded(dims, plan.domain.size());
  bool full = true;
  bool one = true;
  for (size_t d = 0; d < p.size(); ++d) {
    if (p[d] != 1 && p[d] != plan.domain[d]) {
      return Unsupported("jit: ", what, " ", DimsToString(dims), " does not broadcast into the domain ",
                         DimsToString(plan.domain));
    }
    if (static_cast<int>(d) < plan.axis) continue;
    full = full && p[d] == plan.domain[d];
    one = one && p[d] == 1;
  }
  if (full) return true;
  if (one) return false;
  return Unsupported("jit: ", what, " ", DimsToString(dims), " broadcasts along part of the row of ",
                     DimsToString(plan.domain), " (axes from ", plan.axis, ")");
}

}  // namespace

StatusOr<RowRegionPlan> PlanRowRegion(const graph::Graph& graph, const graph::Region& region,
                                      const std::vector<Dims>& input_dims) {
  RowRegionPlan plan;
  if (region.kind != graph::RegionKind::kRowReduction) {
    return Unsupported("jit: region kind ", graph::RegionKindName(region.kind), " is not a row reduction");
  }
  if (region.nodes.empty() || region.outputs.empty()) {
    return InvalidArgument("jit: region ", region.id, " has no nodes or no outputs");
  }
  if (input_dims.size() != region.inputs.size()) {
    return InvalidArgument("jit: region ", region.id, " has ", region.inputs.size(), " inputs but ", input_dims.size(),
                           " dims were given");
  }
  const size_t num_values = graph.num_values();
  plan.dims.assign(num_values, std::nullopt);
  plan.input_index.assign(num_values, -1);
  plan.per_row.assign(num_values, false);
  plan.level.assign(num_values, 0);
  plan.reduction_of.assign(graph.num_nodes(), -1);
  for (size_t i = 0; i < region.inputs.size(); ++i) {
    for (int64_t d : input_dims[i]) {
      if (d < 0) return InvalidArgument("jit: negative dim in ", DimsToString(input_dims[i]));
    }
    plan.dims[static_cast<size_t>(region.inputs[i])] = input_dims[i];
    plan.input_index[static_cast<size_t>(region.inputs[i])] = static_cast<int>(i);
  }

  // Dims of every member's output, the domain and the pass levels.
  bool have_domain = false;
  for (NodeId id : region.nodes) {
    const Node& node = graph.node(id);
    if (node.outputs.empty() || node.outputs[0] == graph::kNoValue) {
      return Unsupported("jit: ", node.Describe(), " has no first output");
    }
    std::optional<RowReduction> reduction = graph::AsRowReduction(graph, node);
    const size_t data_inputs = reduction && reduction->op != RowOp::kLayerNorm ? 1 : node.inputs.size();
    int level = 0;
    for (size_t k = 0; k < data_inputs; ++k) {
      const ValueId v = node.inputs[k];
      if (v == graph::kNoValue) continue;
      if (!plan.dims[static_cast<size_t>(v)]) {
        return InvalidArgument("jit: ", node.Describe(), " reads '", graph.value(v).name,
                               "' before it is computed (region nodes must be in topological order)");
      }
      level = std::max(level, plan.level[static_cast<size_t>(v)]);
    }
    Dims out;
    if (reduction) {
      const Dims& x = *plan.dims[static_cast<size_t>(node.inputs[0])];
      if (static_cast<int>(x.size()) != reduction->rank) {
        return InvalidArgument("jit: ", node.Describe(), ": input dims ", DimsToString(x), " do not have rank ",
                               reduction->rank);
      }
      if (!have_domain) {
        plan.domain = x;
        plan.axis = reduction->axis;
        have_domain = true;
      } else if (x != plan.domain || reduction->axis != plan.axis) {
        return Unsupported("jit: ", node.Describe(), " reduces ", DimsToString(x), " from axis ", reduction->axis,
                           ", not the region's domain ", DimsToString(plan.domain), " from axis ", plan.axis);
      }
      ReductionPlan r;
      r.node = id;
      r.op = *reduction;
      r.stage = plan.level[static_cast<size_t>(node.inputs[0])];
      const bool two =
          reduction->op == RowOp::kSoftmax || reduction->op == RowOp::kLogSoftmax || reduction->op == RowOp::kLayerNorm;
      r.accumulations = two ? 2 : 1;
      plan.num_passes = std::max(plan.num_passes, r.stage + r.accumulations);
      level = std::max(level, r.stage + r.accumulations);
      out = x;
      if (!two) {
        for (size_t d = static_cast<size_t>(reduction->axis); d < out.size(); ++d) out[d] = 1;
      }
      plan.reduction_of[static_cast<size_t>(id)] = static_cast<int>(plan.reductions.size());
      plan.reductions.push_back(r);
    } else if (graph::IsFusibleElementwise(node)) {
      for (ValueId v : node.inputs) {
        if (v == graph::kNoValue) continue;
        KILN_ASSIGN_OR_RETURN(out, Broadcast(out, *plan.dims[static_cast<size_t>(v)]));
      }
    } else {
      return Unsupported("jit: op ", node.op_type, " (", node.Describe(),
                         ") is not supported by the row-reduction code generator");
    }
    plan.dims[static_cast<size_t>(node.outputs[0])] = out;
    plan.level[static_cast<size_t>(node.outputs[0])] = level;
  }
  if (!have_domain) return InvalidArgument("jit: region ", region.id, " has no reduction");
  KILN_RETURN_IF_ERROR(CheckedNumElements(plan.domain, DType::kFloat32).status());
  plan.rows = Product(plan.domain, 0, static_cast<size_t>(plan.axis));
  plan.row_len = Product(plan.domain, static_cast<size_t>(plan.axis), plan.domain.size());
  if (plan.rows == 0 || plan.row_len == 0) {
    // A reduction over an empty row has no well-defined vector form worth
    // compiling (max of nothing, mean of nothing): the interpreter does it.
    return Unsupported("jit: empty domain ", DimsToString(plan.domain));
  }

  // Row-shaped or per-row: every member, and the reductions' data inputs
  // exactly the domain.
  for (NodeId id : region.nodes) {
    const Node& node = graph.node(id);
    const ValueId out = node.outputs[0];
    KILN_ASSIGN_OR_RETURN(bool full,
                          CoversRow(*plan.dims[static_cast<size_t>(out)], plan, "'" + graph.value(out).name + "'"));
    plan.per_row[static_cast<size_t>(out)] = !full;
    if (plan.reduction_of[static_cast<size_t>(id)] >= 0) {
      // Scale and B of a LayerNorm must also fit the row.
      for (size_t k = 1; node.op_type == "LayerNormalization" && k < node.inputs.size(); ++k) {
        const ValueId v = node.inputs[k];
        if (v != graph::kNoValue) {
          const std::string what = "'" + graph.value(v).name + "'";
          KILN_RETURN_IF_ERROR(CoversRow(*plan.dims[static_cast<size_t>(v)], plan, what).status());
        }
      }
    }
  }

  // Inputs. A value used only as a ReduceX's axes is never read.
  plan.inputs.assign(region.inputs.size(), RowInputPlan{});
  std::vector<bool> data_use(num_values, false);
  for (NodeId id : region.nodes) {
    const Node& node = graph.node(id);
    const bool axes_second = plan.reduction_of[static_cast<size_t>(id)] >= 0 && node.op_type != "LayerNormalization";
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      if (node.inputs[k] != graph::kNoValue && !(axes_second && k == 1)) {
        data_use[static_cast<size_t>(node.inputs[k])] = true;
      }
    }
  }
  const size_t rank = plan.domain.size();
  for (size_t i = 0; i < region.inputs.size(); ++i) {
    RowInputPlan& p = plan.inputs[i];
    const ValueId v = region.inputs[i];
    const graph::Value& value = graph.value(v);
    if (!data_use[static_cast<size_t>(v)]) {
      p.unused = true;
      p.spec.baked = true;
      continue;
    }
    KILN_ASSIGN_OR_RETURN(p.spec, ClassifyInput(value));
    if (p.spec.baked) continue;
    KILN_ASSIGN_OR_RETURN(bool full, CoversRow(input_dims[i], plan, "input '" + value.name + "'"));
    p.per_row = !full;
    plan.per_row[static_cast<size_t>(v)] = !full;
    const Dims padded = Padded(input_dims[i], rank);
    int64_t stride = 1;
    std::vector<int64_t> strides(rank);
    for (size_t d = rank; d-- > 0;) {
      strides[d] = stride;
      stride *= padded[d];
    }
    p.outer_dense = true;
    for (size_t d = 0; d < static_cast<size_t>(plan.axis); ++d) {
      p.outer_strides.push_back(padded[d] == 1 ? 0 : strides[d]);
      if (padded[d] != plan.domain[d]) p.outer_dense = false;
    }
  }
  for (size_t i = 0; i < region.inputs.size(); ++i) {
    if (plan.inputs[i].spec.baked) plan.per_row[static_cast<size_t>(region.inputs[i])] = true;
  }

  // Outputs: the domain's dims, or its leading dims then 1s.
  for (ValueId o : region.outputs) {
    if (!plan.dims[static_cast<size_t>(o)] || plan.input_index[static_cast<size_t>(o)] >= 0) {
      return InvalidArgument("jit: region output '", graph.value(o).name, "' is not produced by the region");
    }
    const Dims& d = *plan.dims[static_cast<size_t>(o)];
    bool per_row = d.size() == rank;
    for (size_t k = 0; per_row && k < rank; ++k) {
      per_row = static_cast<int>(k) < plan.axis ? d[k] == plan.domain[k] : d[k] == 1;
    }
    if (d != plan.domain && !per_row) {
      return Unsupported("jit: region output '", graph.value(o).name, "' has dims ", DimsToString(d),
                         ", neither the domain ", DimsToString(plan.domain), " nor one value per row");
    }
    plan.output_dims.push_back(d);
    plan.output_per_row.push_back(d != plan.domain);
    KILN_ASSIGN_OR_RETURN(Kind kind, KindOf(graph.value(o).dtype));
    plan.output_kinds.push_back(kind);
  }
  return plan;
}

StatusOr<RowLayout> GenericRowLayout(const RowRegionPlan& plan) {
  RowLayout layout;
  for (const RowInputPlan& p : plan.inputs) {
    if (p.spec.baked) {
      layout.inputs.push_back(RowInputLayout::kNotRead);
      continue;
    }
    bool zero_strides = true;
    for (int64_t stride : p.outer_strides) zero_strides = zero_strides && stride == 0;
    RowInputLayout input;
    if (p.outer_dense && zero_strides) {
      // A single row: dense and shared read the same elements.
      input = p.per_row ? RowInputLayout::kPerRowOrSharedValue : RowInputLayout::kDenseOrSharedRow;
    } else if (p.outer_dense) {
      input = p.per_row ? RowInputLayout::kPerRow : RowInputLayout::kDense;
    } else if (zero_strides) {
      input = p.per_row ? RowInputLayout::kSharedValue : RowInputLayout::kSharedRow;
    } else {
      return Unsupported("jit: an input broadcasts along some of the leading dims of ", DimsToString(plan.domain),
                         "; the shape-generic row code reads inputs whole, per row or once");
    }
    layout.inputs.push_back(input);
  }
  for (size_t v = 0; v < plan.per_row.size(); ++v) {
    if (plan.dims[v]) layout.value_per_row.push_back(plan.per_row[v]);
  }
  layout.output_per_row = plan.output_per_row;
  return layout;
}

}  // namespace kiln::jit::internal
