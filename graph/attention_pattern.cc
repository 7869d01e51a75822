#include "graph/attention_pattern.h"

#include <string>

namespace kiln::graph {
namespace {

constexpr int kRank = 4;
constexpr int kHeadAxis = 3;  // logical d

bool IsDefaultOp(const Node& node, const char* op) { return !node.dead && node.domain.empty() && node.op_type == op; }

bool IsFloat32Rank4(const Graph& graph, ValueId v) {
  if (v == kNoValue) return false;
  const Value& value = graph.value(v);
  return value.dtype == DType::kFloat32 && value.shape.rank_known && value.shape.dims.size() == kRank;
}

// Read by exactly one node of the chain and by nothing else.
bool SingleUse(const Graph& graph, ValueId v) {
  const Value& value = graph.value(v);
  return value.users.size() == 1 && !value.is_graph_output;
}

// The node producing `v` when only the chain reads `v`, else kNoNode.
NodeId InnerProducerId(const Graph& graph, ValueId v) {
  if (v == kNoValue || !SingleUse(graph, v)) return kNoNode;
  return graph.value(v).producer;
}
const Node* InnerProducer(const Graph& graph, ValueId v) {
  const NodeId p = InnerProducerId(graph, v);
  return p == kNoNode ? nullptr : &graph.node(p);
}

std::optional<float> ScalarConstant(const Graph& graph, ValueId v) {
  if (v == kNoValue) return std::nullopt;
  const Value& value = graph.value(v);
  if (!value.constant || value.constant->dtype() != DType::kFloat32 || value.constant->num_elements() != 1) {
    return std::nullopt;
  }
  return value.constant->data<float>()[0];
}

// For `node` = Mul or Div by a scalar constant applied to a chain value:
// that value (input 0, or either side of a Mul) and the factor it is
// multiplied by; nullopt otherwise.
std::optional<std::pair<ValueId, float>> AsScale(const Graph& graph, const Node& node) {
  if (node.inputs.size() != 2 || node.outputs.size() != 1) return std::nullopt;
  if (IsDefaultOp(node, "Div")) {
    const std::optional<float> c = ScalarConstant(graph, node.inputs[1]);
    if (!c || *c == 0.0f) return std::nullopt;
    return std::make_pair(node.inputs[0], 1.0f / *c);
  }
  if (!IsDefaultOp(node, "Mul")) return std::nullopt;
  for (int side = 0; side < 2; ++side) {
    const std::optional<float> c = ScalarConstant(graph, node.inputs[static_cast<size_t>(1 - side)]);
    if (c) return std::make_pair(node.inputs[static_cast<size_t>(side)], *c);
  }
  return std::nullopt;
}

// Walks back from `v` through scalar scales (multiplying `scale`) and at
// most one Transpose, appending the nodes to `nodes`. Returns the value read
// from outside and the permutation that took it to `v` (identity without a
// Transpose).
std::pair<ValueId, std::array<int, 4>> WalkOperand(const Graph& graph, ValueId v, float& scale,
                                                   std::vector<NodeId>& nodes) {
  std::array<int, 4> perm{0, 1, 2, 3};
  bool transposed = false;
  while (const Node* p = InnerProducer(graph, v)) {
    if (std::optional<std::pair<ValueId, float>> s = AsScale(graph, *p)) {
      if (!IsFloat32Rank4(graph, s->first)) break;
      nodes.push_back(graph.value(v).producer);
      scale *= s->second;
      v = s->first;
      continue;
    }
    if (transposed || !IsDefaultOp(*p, "Transpose") || p->inputs.size() != 1 || !IsFloat32Rank4(graph, p->inputs[0])) {
      break;
    }
    StatusOr<std::vector<int64_t>> attr = p->GetInts("perm", {});
    if (!attr.ok()) break;
    std::vector<int64_t> given = attr->empty() ? std::vector<int64_t>{3, 2, 1, 0} : *attr;
    if (given.size() != kRank) break;
    std::array<int, 4> next{};
    bool valid = true;
    for (int i = 0; i < kRank; ++i) {
      // `perm` so far maps v's axes to the axes of the Transpose's output.
      next[static_cast<size_t>(i)] = static_cast<int>(given[static_cast<size_t>(perm[static_cast<size_t>(i)])]);
      valid = valid && given[static_cast<size_t>(i)] >= 0 && given[static_cast<size_t>(i)] < kRank;
    }
    if (!valid) break;
    perm = next;
    transposed = true;
    nodes.push_back(graph.value(v).producer);
    v = p->inputs[0];
  }
  return {v, perm};
}

// True when `v` is a MatMul's output, maybe through scalar scales, that
// only the chain reads.
bool ReachesScores(const Graph& graph, ValueId v) {
  while (const Node* p = InnerProducer(graph, v)) {
    if (IsDefaultOp(*p, "MatMul")) return true;
    std::optional<std::pair<ValueId, float>> s = AsScale(graph, *p);
    if (!s) return false;
    v = s->first;
  }
  return false;
}

}  // namespace

std::optional<AttentionPattern> AsAttention(const Graph& graph, const Node& softmax) {
  if (!IsDefaultOp(softmax, "Softmax") || softmax.inputs.size() != 1 || softmax.outputs.size() != 1) {
    return std::nullopt;
  }
  if (!IsFloat32Rank4(graph, softmax.inputs[0]) || !IsFloat32Rank4(graph, softmax.outputs[0])) return std::nullopt;
  // Opset 13+ normalises along `axis`; before, over every axis from it on:
  // both are the key axis only when it is the last.
  StatusOr<int64_t> axis = softmax.GetInt("axis", softmax.opset >= 13 ? -1 : 1);
  if (!axis.ok() || (*axis != -1 && *axis != kRank - 1)) return std::nullopt;

  AttentionPattern p;
  p.nodes.push_back(graph.value(softmax.outputs[0]).producer);

  // Backwards from the Softmax: an optional mask Add, then scales, then the
  // scores MatMul. A scale after the mask would scale the mask too.
  ValueId scores = softmax.inputs[0];
  const Node* qk = nullptr;
  bool scaled = false;
  while (const Node* n = InnerProducer(graph, scores)) {
    if (std::optional<std::pair<ValueId, float>> s = AsScale(graph, *n)) {
      if (!IsFloat32Rank4(graph, s->first)) return std::nullopt;
      p.nodes.push_back(graph.value(scores).producer);
      p.scale *= s->second;
      scores = s->first;
      scaled = true;
      continue;
    }
    if (IsDefaultOp(*n, "Add") && p.mask == kNoValue && !scaled && n->inputs.size() == 2 && n->outputs.size() == 1) {
      // The chain's side leads back to the scores MatMul through scales; the
      // other is the mask.
      const int chain = ReachesScores(graph, n->inputs[0]) ? 0 : 1;
      if (!ReachesScores(graph, n->inputs[static_cast<size_t>(chain)])) return std::nullopt;
      const ValueId mask = n->inputs[static_cast<size_t>(1 - chain)];
      const Value& m = graph.value(mask);
      if (mask == kNoValue || m.dtype != DType::kFloat32 || !m.shape.rank_known || m.shape.dims.size() > kRank) {
        return std::nullopt;
      }
      if (!IsFloat32Rank4(graph, n->inputs[static_cast<size_t>(chain)])) return std::nullopt;
      p.nodes.push_back(graph.value(scores).producer);
      p.mask = mask;
      scores = n->inputs[static_cast<size_t>(chain)];
      continue;
    }
    if (IsDefaultOp(*n, "MatMul")) qk = n;
    break;
  }
  if (qk == nullptr || qk->inputs.size() != 2 || qk->outputs.size() != 1) return std::nullopt;
  p.nodes.push_back(graph.value(scores).producer);
  if (!IsFloat32Rank4(graph, qk->inputs[0]) || !IsFloat32Rank4(graph, qk->inputs[1])) return std::nullopt;

  auto [q, q_perm] = WalkOperand(graph, qk->inputs[0], p.scale, p.nodes);
  auto [k, kt_perm] = WalkOperand(graph, qk->inputs[1], p.scale, p.nodes);
  p.q = q;
  p.k = k;
  p.q_axes = q_perm;
  // The MatMul reads K transposed: its [b, h, d, s] axes are K's (b, h, s, d)
  // with the last two swapped.
  const std::array<int, 4> kt_of_logical{0, 1, 3, 2};
  for (int l = 0; l < kRank; ++l) p.k_axes[static_cast<size_t>(l)] = kt_perm[static_cast<size_t>(kt_of_logical[l])];

  // Forwards from the Softmax: probabilities times V, then an optional
  // Transpose back to [b, s, h, d].
  const Value& probs = graph.value(softmax.outputs[0]);
  if (!SingleUse(graph, softmax.outputs[0])) return std::nullopt;
  const Node& pv = graph.node(probs.users[0]);
  if (!IsDefaultOp(pv, "MatMul") || pv.inputs.size() != 2 || pv.inputs[0] != softmax.outputs[0] ||
      pv.outputs.size() != 1 || !IsFloat32Rank4(graph, pv.inputs[1]) || !IsFloat32Rank4(graph, pv.outputs[0])) {
    return std::nullopt;
  }
  p.nodes.push_back(probs.users[0]);
  float v_scale = 1.0f;
  auto [v, v_perm] = WalkOperand(graph, pv.inputs[1], v_scale, p.nodes);
  // A scale on V would scale the output, which the code does not do.
  if (v_scale != 1.0f) return std::nullopt;
  p.v = v;
  p.v_axes = v_perm;

  p.output = pv.outputs[0];
  const Value& ctx = graph.value(pv.outputs[0]);
  if (ctx.users.size() == 1 && !ctx.is_graph_output) {
    const Node& t = graph.node(ctx.users[0]);
    StatusOr<std::vector<int64_t>> perm = t.GetInts("perm", {});
    if (IsDefaultOp(t, "Transpose") && t.outputs.size() == 1 && IsFloat32Rank4(graph, t.outputs[0]) && perm.ok() &&
        perm->size() == kRank) {
      std::array<int, 4> out_axes{-1, -1, -1, -1};
      bool valid = true;
      for (int i = 0; i < kRank; ++i) {
        const int64_t l = (*perm)[static_cast<size_t>(i)];
        valid = valid && l >= 0 && l < kRank && out_axes[static_cast<size_t>(l)] < 0;
        if (valid) out_axes[static_cast<size_t>(l)] = i;
      }
      if (valid) {
        p.nodes.push_back(ctx.users[0]);
        p.output = t.outputs[0];
        p.out_axes = out_axes;
      }
    }
  }

  for (const std::array<int, 4>* axes : {&p.q_axes, &p.k_axes, &p.v_axes, &p.out_axes}) {
    if ((*axes)[kHeadAxis] != kRank - 1) return std::nullopt;
  }
  for (ValueId x : {p.q, p.k, p.v, p.output}) {
    if (!IsFloat32Rank4(graph, x)) return std::nullopt;
  }
  // The head dim is compiled in: it must be static and agree.
  const Dim& d = graph.value(p.q).shape.dims[kRank - 1];
  if (!d.is_concrete() || d.size < 1) return std::nullopt;
  for (ValueId x : {p.k, p.v, p.output}) {
    if (graph.value(x).shape.dims[kRank - 1] != d) return std::nullopt;
  }
  p.head_dim = d.size;
  if (p.mask != kNoValue) {
    const ShapeInfo& m = graph.value(p.mask).shape;
    // Along the keys the mask is one value or one per key.
    if (!m.dims.empty()) {
      const Dim& last = m.dims.back();
      const Dim& keys = graph.value(p.k).shape.dims[static_cast<size_t>(p.k_axes[2])];
      if (!(last.is_concrete() && last.size == 1) && last != keys) return std::nullopt;
    }
  }
  return p;
}

}  // namespace kiln::graph
