#include "graph/fuse_gelu.h"

#include <optional>
#include <string>
#include <vector>

#include "graph/log.h"
#include "graph/pattern_match.h"

namespace kiln::graph {
namespace {

constexpr double kSqrt2 = 1.41421356237309504880;

struct GeluMatch {
  ValueId x = kNoValue, y = kNoValue;
  std::vector<NodeId> nodes;
};

// The largest rank a scalar constant may have without changing the shape
// of an elementwise op on x; 0 when x's rank is unknown.
int64_t ScalarRankLimit(const Graph& graph, ValueId x) {
  const Value& v = graph.value(x);
  return v.shape.rank_known ? static_cast<int64_t>(v.shape.dims.size()) : 0;
}

// Whether node `id` is a live default-domain Mul of `a` and the scalar
// constant `expected` (either side), with one output.
bool IsMulByScalar(const Graph& graph, NodeId id, ValueId a, double expected, int64_t max_rank) {
  const Node& n = graph.node(id);
  if (!IsDefaultOp(n, "Mul") || n.outputs.size() != 1 || n.outputs[0] == kNoValue) return false;
  const std::optional<float> c = ScalarConstant(graph, OtherOperand(n, a), max_rank);
  return c && Near(*c, expected);
}

// Whether node `id` is a live default-domain Mul of `a` and `b` (either
// order), with one output.
bool IsMulOf(const Graph& graph, NodeId id, ValueId a, ValueId b) {
  const Node& n = graph.node(id);
  return IsDefaultOp(n, "Mul") && n.outputs.size() == 1 && n.outputs[0] != kNoValue && OtherOperand(n, a) == b;
}

// Matches the pattern around Erf node `erf_id` (see the header).
std::optional<GeluMatch> Match(const Graph& graph, NodeId erf_id) {
  const Node& erf = graph.node(erf_id);
  if (erf.inputs.size() != 1 || erf.outputs.size() != 1 || erf.outputs[0] == kNoValue) return std::nullopt;
  const ValueId d = erf.inputs[0];
  if (!IsFloatIntermediate(graph, d, 1)) return std::nullopt;
  const NodeId scale_id = graph.value(d).producer;
  if (scale_id == kNoNode) return std::nullopt;
  const Node& scale = graph.node(scale_id);
  if (scale.inputs.size() != 2) return std::nullopt;

  GeluMatch m;
  // d = x / sqrt(2) (Div is not commutative: x must be the dividend), or
  // d = x * (1 / sqrt(2)).
  if (IsDefaultOp(scale, "Div")) {
    m.x = scale.inputs[0];
    const int64_t max_rank = ScalarRankLimit(graph, m.x);
    const std::optional<float> c = ScalarConstant(graph, scale.inputs[1], max_rank);
    if (!c || !Near(*c, kSqrt2)) return std::nullopt;
  } else if (IsDefaultOp(scale, "Mul")) {
    for (size_t side = 0; side < 2 && m.x == kNoValue; ++side) {
      const ValueId candidate = scale.inputs[side];
      const std::optional<float> c = ScalarConstant(graph, scale.inputs[1 - side], ScalarRankLimit(graph, candidate));
      if (c && Near(*c, 1.0 / kSqrt2)) m.x = candidate;
    }
  }
  if (m.x == kNoValue || graph.value(m.x).dtype != DType::kFloat32) return std::nullopt;
  const int64_t max_rank = ScalarRankLimit(graph, m.x);

  // a = erf(d) + 1.
  const NodeId add_id = SoleUserOfType(graph, erf.outputs[0], "Add");
  if (add_id == kNoNode) return std::nullopt;
  const Node& add = graph.node(add_id);
  const std::optional<float> one = ScalarConstant(graph, OtherOperand(add, erf.outputs[0]), max_rank);
  if (!one || !Near(*one, 1.0)) return std::nullopt;
  const ValueId a = add.outputs[0];
  m.nodes = {scale_id, erf_id, add_id};

  // y = a * x * 0.5 in one of three associations.
  const NodeId mul1_id = SoleUserOfType(graph, a, "Mul");
  if (mul1_id == kNoNode) return std::nullopt;
  const Node& mul1 = graph.node(mul1_id);
  const ValueId partner = OtherOperand(mul1, a);
  const ValueId t = mul1.outputs[0];
  if (partner == m.x) {
    // (x * a) * 0.5
    const NodeId mul2_id = SoleUserOfType(graph, t, "Mul");
    if (mul2_id == kNoNode || !IsMulByScalar(graph, mul2_id, t, 0.5, max_rank)) return std::nullopt;
    m.nodes.insert(m.nodes.end(), {mul1_id, mul2_id});
    m.y = graph.node(mul2_id).outputs[0];
  } else if (IsMulByScalar(graph, mul1_id, a, 0.5, max_rank)) {
    // (a * 0.5) * x
    const NodeId mul2_id = SoleUserOfType(graph, t, "Mul");
    if (mul2_id == kNoNode || !IsMulOf(graph, mul2_id, t, m.x)) return std::nullopt;
    m.nodes.insert(m.nodes.end(), {mul1_id, mul2_id});
    m.y = graph.node(mul2_id).outputs[0];
  } else {
    // (x * 0.5) * a: the half-x product is computed from x on its own.
    if (partner == kNoValue || !IsFloatIntermediate(graph, partner, 1)) return std::nullopt;
    const NodeId half_id = graph.value(partner).producer;
    if (half_id == kNoNode || !IsMulByScalar(graph, half_id, m.x, 0.5, max_rank)) return std::nullopt;
    m.nodes.insert(m.nodes.end(), {half_id, mul1_id});
    m.y = t;
  }
  return m;
}

StatusOr<bool> TryFuse(Graph& graph, NodeId erf_id) {
  std::optional<GeluMatch> m = Match(graph, erf_id);
  if (!m) return false;

  Node fused;
  const std::string& base = graph.node(erf_id).name;
  fused.name = base.empty() ? std::string("Gelu") : base + "/Gelu";
  fused.op_type = "Gelu";
  fused.opset = graph.node(erf_id).opset;
  fused.inputs = {m->x};
  fused.outputs = {m->y};
  Attribute approximate;
  approximate.kind = Attribute::Kind::kString;
  approximate.s = "none";
  fused.attributes["approximate"] = approximate;

  // Every check is done: from here only a kiln bug fails.
  for (NodeId id : m->nodes) graph.RemoveNode(id);
  StatusOr<NodeId> added = graph.AddNode(std::move(fused));
  if (!added.ok()) return Internal("gelu fusion: ", added.status().message());
  return true;
}

}  // namespace

StatusOr<bool> FuseGelu(Graph& graph) {
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  bool changed = false;
  for (NodeId id : order) {
    // A fused pattern's nodes are dead by the time the sweep reaches them.
    if (!IsDefaultOp(graph.node(id), "Erf")) continue;
    KILN_ASSIGN_OR_RETURN(bool fused, TryFuse(graph, id));
    changed |= fused;
  }
  if (changed) Log().debug("gelu fusion: {} live nodes after", graph.num_live_nodes());
  return changed;
}

}  // namespace kiln::graph
