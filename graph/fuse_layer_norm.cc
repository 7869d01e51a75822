#include "graph/fuse_layer_norm.h"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "graph/log.h"
#include "graph/pattern_match.h"

namespace kiln::graph {
namespace {

// LayerNormalization's first version: the fused node claims it whatever
// opset the model imports (see the header).
constexpr int kLayerNormOpset = 17;
// ReduceMean takes its axes as an input from this opset on.
constexpr int kReduceAxesInputOpset = 18;

// Whether `node` is ReduceMean(input) over the last axis of a rank-`rank`
// tensor, keeping dims.
bool IsLastAxisMean(const Graph& graph, const Node& node, ValueId input, int64_t rank) {
  if (!IsDefaultOp(node, "ReduceMean") || node.inputs.empty() || node.inputs[0] != input) return false;
  if (node.outputs.size() != 1 || node.outputs[0] == kNoValue) return false;
  StatusOr<int64_t> keepdims = node.GetInt("keepdims", 1);
  if (!keepdims.ok() || *keepdims != 1) return false;
  std::vector<int64_t> axes;
  if (node.opset < kReduceAxesInputOpset) {
    if (node.inputs.size() != 1) return false;
    StatusOr<std::vector<int64_t>> attr = node.GetInts("axes");
    if (!attr.ok()) return false;
    axes = *attr;
  } else {
    if (node.inputs.size() != 2 || node.inputs[1] == kNoValue) return false;
    const Value& v = graph.value(node.inputs[1]);
    if (!v.constant || v.constant->dtype() != DType::kInt64 || v.constant->rank() != 1) return false;
    const int64_t* p = v.constant->data<int64_t>();
    axes.assign(p, p + v.constant->num_elements());
  }
  return axes.size() == 1 && (axes[0] == -1 || axes[0] == rank - 1);
}

// The nodes of one matched pattern, in data-flow order.
struct LayerNormMatch {
  ValueId x = kNoValue, scale = kNoValue, bias = kNoValue, y = kNoValue;
  float epsilon = 0.0f;
  std::vector<NodeId> nodes;
};

// Matches the pattern starting at ReduceMean `first` (see the header).
std::optional<LayerNormMatch> Match(const Graph& graph, NodeId first) {
  const Node& rm1 = graph.node(first);
  if (rm1.inputs.empty() || rm1.inputs[0] == kNoValue) return std::nullopt;
  LayerNormMatch m;
  m.x = rm1.inputs[0];
  const Value& x = graph.value(m.x);
  if (x.dtype != DType::kFloat32 || !x.shape.rank_known || x.shape.dims.empty()) return std::nullopt;
  const int64_t rank = static_cast<int64_t>(x.shape.dims.size());
  const Dim& last = x.shape.dims.back();
  if (!last.is_concrete()) return std::nullopt;
  const int64_t d_model = last.size;
  if (!IsLastAxisMean(graph, rm1, m.x, rank)) return std::nullopt;
  const ValueId mean = rm1.outputs[0];

  // d = x - mean, used by exactly the Pow and the Div.
  const NodeId sub_id = SoleUserOfType(graph, mean, "Sub");
  if (sub_id == kNoNode) return std::nullopt;
  const Node& sub = graph.node(sub_id);
  if (sub.inputs.size() != 2 || sub.inputs[0] != m.x || sub.inputs[1] != mean) return std::nullopt;
  const ValueId d = sub.outputs[0];
  if (!IsFloatIntermediate(graph, d, 2)) return std::nullopt;
  NodeId pow_id = graph.value(d).users[0];
  NodeId div_id = graph.value(d).users[1];
  if (IsDefaultOp(graph.node(div_id), "Pow")) std::swap(pow_id, div_id);
  if (pow_id == div_id) return std::nullopt;  // Pow(d, d) or Div(d, d)

  // var = ReduceMean(Pow(d, 2)).
  const Node& pow = graph.node(pow_id);
  if (!IsDefaultOp(pow, "Pow") || pow.inputs.size() != 2 || pow.inputs[0] != d || pow.outputs.size() != 1) {
    return std::nullopt;
  }
  const std::optional<float> exponent = ScalarConstant(graph, pow.inputs[1], rank);
  if (!exponent || *exponent != 2.0f) return std::nullopt;
  const NodeId rm2_id = SoleUserOfType(graph, pow.outputs[0], "ReduceMean");
  if (rm2_id == kNoNode || !IsLastAxisMean(graph, graph.node(rm2_id), pow.outputs[0], rank)) return std::nullopt;
  const ValueId var = graph.node(rm2_id).outputs[0];

  // std = Sqrt(var + eps).
  const NodeId add_eps_id = SoleUserOfType(graph, var, "Add");
  if (add_eps_id == kNoNode) return std::nullopt;
  const Node& add_eps = graph.node(add_eps_id);
  const std::optional<float> eps = ScalarConstant(graph, OtherOperand(add_eps, var), rank);
  if (!eps) return std::nullopt;
  m.epsilon = *eps;
  const NodeId sqrt_id = SoleUserOfType(graph, add_eps.outputs[0], "Sqrt");
  if (sqrt_id == kNoNode || graph.node(sqrt_id).inputs.size() != 1) return std::nullopt;
  const ValueId stddev = graph.node(sqrt_id).outputs[0];

  // Div(d, std), the Pow's sibling.
  if (SoleUserOfType(graph, stddev, "Div") != div_id) return std::nullopt;
  const Node& div = graph.node(div_id);
  if (div.inputs.size() != 2 || div.inputs[0] != d || div.inputs[1] != stddev) return std::nullopt;

  // * scale [+ bias], both [D].
  auto per_feature = [&](ValueId id) {
    const Tensor* t = FloatConstant(graph, id);
    return t != nullptr && t->rank() == 1 && t->dim(0) == d_model;
  };
  const NodeId mul_id = SoleUserOfType(graph, div.outputs[0], "Mul");
  if (mul_id == kNoNode) return std::nullopt;
  const Node& mul = graph.node(mul_id);
  m.scale = OtherOperand(mul, div.outputs[0]);
  if (!per_feature(m.scale)) return std::nullopt;
  m.y = mul.outputs[0];
  m.nodes = {first, sub_id, pow_id, rm2_id, add_eps_id, sqrt_id, div_id, mul_id};

  const NodeId add_id = SoleUserOfType(graph, m.y, "Add");
  if (add_id != kNoNode) {
    const ValueId bias = OtherOperand(graph.node(add_id), m.y);
    if (per_feature(bias)) {
      m.bias = bias;
      m.y = graph.node(add_id).outputs[0];
      m.nodes.push_back(add_id);
    }
  }
  return m;
}

StatusOr<bool> TryFuse(Graph& graph, NodeId first) {
  std::optional<LayerNormMatch> m = Match(graph, first);
  if (!m) return false;

  Node fused;
  fused.name = graph.node(first).name.empty() ? std::string("LayerNorm") : graph.node(first).name + "/LayerNorm";
  fused.op_type = "LayerNormalization";
  fused.opset = kLayerNormOpset;
  fused.inputs = {m->x, m->scale};
  if (m->bias != kNoValue) fused.inputs.push_back(m->bias);
  fused.outputs = {m->y};
  Attribute axis;
  axis.kind = Attribute::Kind::kInt;
  axis.i = -1;
  Attribute epsilon;
  epsilon.kind = Attribute::Kind::kFloat;
  epsilon.f = m->epsilon;
  fused.attributes["axis"] = axis;
  fused.attributes["epsilon"] = epsilon;

  // Every check is done: from here only a kiln bug fails.
  for (NodeId id : m->nodes) graph.RemoveNode(id);
  StatusOr<NodeId> added = graph.AddNode(std::move(fused));
  if (!added.ok()) return Internal("layer-norm fusion: ", added.status().message());
  return true;
}

}  // namespace

StatusOr<bool> FuseLayerNorm(Graph& graph) {
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  bool changed = false;
  for (NodeId id : order) {
    // A fused pattern's nodes are dead by the time the sweep reaches them.
    if (!IsDefaultOp(graph.node(id), "ReduceMean")) continue;
    KILN_ASSIGN_OR_RETURN(bool fused, TryFuse(graph, id));
    changed |= fused;
  }
  if (changed) Log().debug("layer-norm fusion: {} live nodes after", graph.num_live_nodes());
  return changed;
}

}  // namespace kiln::graph
