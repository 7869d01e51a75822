#include "graph/partitioner.h"

#include <algorithm>
#include <map>
#include <set>

namespace kiln::graph {

const char* RegionKindName(RegionKind kind) {
  switch (kind) {
    case RegionKind::kElementwise: return "elementwise";
  }
  return "?";
}

namespace {

// Ops computed per element, with their opset-independent meaning. Anything
// with data-dependent shapes or cross-element access stays out.
const std::set<std::string>& FusibleOps() {
  static const std::set<std::string> ops = {
      "Abs",  "Add",       "Ceil", "Clip",      "Div",         "Elu",      "Equal",   "Erf",
      "Exp",  "Floor",     "Gelu", "Greater",   "HardSigmoid", "HardSwish", "Identity", "LeakyRelu",
      "Less", "Log",       "Max",  "Min",       "Mul",         "Neg",      "Pow",     "Reciprocal",
      "Relu", "Sigmoid",   "Softplus", "Sqrt",  "Sub",         "Tanh",     "Where",
  };
  return ops;
}

bool SameStaticShape(const ShapeInfo& a, const ShapeInfo& b) {
  if (!a.rank_known || !b.rank_known || a.dims.size() != b.dims.size()) return false;
  for (size_t i = 0; i < a.dims.size(); ++i) {
    const Dim& x = a.dims[i];
    const Dim& y = b.dims[i];
    if (x.is_concrete() != y.is_concrete()) return false;
    if (x.is_concrete() ? x.size != y.size : (x.symbol.empty() || x.symbol != y.symbol)) return false;
  }
  return true;
}

// The value whose static shape and dtype define a node's place in a region:
// its first output.
const Value* PrimaryOutput(const Graph& g, const Node& n) {
  if (n.outputs.empty() || n.outputs[0] == kNoValue) return nullptr;
  return &g.value(n.outputs[0]);
}

bool HasFusibleDType(const Node& node, const Value& out) {
  // Comparisons produce bool masks consumed by Where inside the region; all
  // arithmetic is float32.
  if (node.op_type == "Equal" || node.op_type == "Less" || node.op_type == "Greater") return out.dtype == DType::kBool;
  return out.dtype == DType::kFloat32;
}

}  // namespace

bool IsFusibleElementwise(const Node& node) {
  if (node.dead || !node.domain.empty() || !FusibleOps().count(node.op_type)) return false;
  if (node.outputs.size() != 1) return false;
  // Opsets before 7 had explicit broadcast attributes with other semantics.
  if (node.opset < 7) return false;
  return true;
}

StatusOr<std::vector<Region>> PartitionGraph(const Graph& graph, const PartitionOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  std::vector<int> position(graph.num_nodes(), -1);
  for (size_t i = 0; i < order.size(); ++i) position[static_cast<size_t>(order[i])] = static_cast<int>(i);

  std::vector<int> region_of(graph.num_nodes(), -1);
  struct Building {
    std::vector<NodeId> nodes;
    const Value* domain = nullptr;  // the static shape/dtype every member shares
    int first_position = 0;
  };
  std::vector<Building> building;

  // True when some input of `n` produced outside region `r` depends on `r`:
  // joining would then create a cycle r -> outside -> n(in r).
  auto creates_cycle = [&](NodeId n, int r) {
    std::vector<NodeId> stack;
    std::set<NodeId> seen;
    for (ValueId in : graph.node(n).inputs) {
      if (in == kNoValue) continue;
      NodeId p = graph.value(in).producer;
      if (p != kNoNode && region_of[static_cast<size_t>(p)] != r) stack.push_back(p);
    }
    while (!stack.empty()) {
      NodeId cur = stack.back();
      stack.pop_back();
      if (!seen.insert(cur).second) continue;
      if (region_of[static_cast<size_t>(cur)] == r) return true;
      // Nodes before the region's first member cannot depend on it.
      if (position[static_cast<size_t>(cur)] < building[static_cast<size_t>(r)].first_position) continue;
      for (ValueId in : graph.node(cur).inputs) {
        if (in == kNoValue) continue;
        NodeId p = graph.value(in).producer;
        if (p != kNoNode) stack.push_back(p);
      }
    }
    return false;
  };

  for (NodeId id : order) {
    const Node& node = graph.node(id);
    if (!IsFusibleElementwise(node)) continue;
    const Value* out = PrimaryOutput(graph, node);
    if (out == nullptr || !out->shape.rank_known || !HasFusibleDType(node, *out)) continue;

    int joined = -1;
    for (ValueId in : node.inputs) {
      if (in == kNoValue) continue;
      NodeId p = graph.value(in).producer;
      if (p == kNoNode) continue;
      int r = region_of[static_cast<size_t>(p)];
      if (r < 0 || r == joined) continue;
      const Building& b = building[static_cast<size_t>(r)];
      // Comparison masks may have another dtype than the float domain.
      const bool shape_ok = SameStaticShape(b.domain->shape, out->shape);
      if (!shape_ok || creates_cycle(id, r)) continue;
      joined = r;
      break;
    }
    if (joined < 0) {
      joined = static_cast<int>(building.size());
      building.push_back({{}, out, position[static_cast<size_t>(id)]});
    }
    building[static_cast<size_t>(joined)].nodes.push_back(id);
    region_of[static_cast<size_t>(id)] = joined;
  }

  std::vector<Region> regions;
  for (size_t r = 0; r < building.size(); ++r) {
    const Building& b = building[r];
    if (static_cast<int>(b.nodes.size()) < options.min_region_nodes) continue;
    Region region;
    region.id = static_cast<int>(regions.size());
    region.kind = RegionKind::kElementwise;
    region.nodes = b.nodes;
    std::set<ValueId> produced;
    for (NodeId n : b.nodes) {
      for (ValueId o : graph.node(n).outputs) {
        if (o != kNoValue) produced.insert(o);
      }
    }
    std::set<ValueId> seen_inputs;
    for (NodeId n : b.nodes) {
      for (ValueId in : graph.node(n).inputs) {
        if (in != kNoValue && !produced.count(in) && seen_inputs.insert(in).second) region.inputs.push_back(in);
      }
    }
    for (NodeId n : b.nodes) {
      for (ValueId o : graph.node(n).outputs) {
        if (o == kNoValue) continue;
        const Value& v = graph.value(o);
        bool used_outside = v.is_graph_output;
        for (NodeId u : v.users) {
          if (region_of[static_cast<size_t>(u)] != static_cast<int>(r) || graph.node(u).dead) used_outside = true;
        }
        if (used_outside) region.outputs.push_back(o);
      }
    }
    // Every output must have the domain's shape; a mask or a smaller value
    // escaping the region would need a loop nest of its own.
    bool outputs_ok = !region.outputs.empty();
    for (ValueId o : region.outputs) {
      if (!SameStaticShape(graph.value(o).shape, b.domain->shape)) outputs_ok = false;
    }
    if (!outputs_ok) continue;
    region.reason = std::to_string(b.nodes.size()) + " elementwise ops over " + b.domain->shape.ToString();
    regions.push_back(std::move(region));
  }
  return regions;
}

}  // namespace kiln::graph
