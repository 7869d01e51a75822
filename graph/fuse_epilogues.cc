#include "graph/fuse_epilogues.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/log.h"
#include "graph/pattern_match.h"

namespace kiln::graph {
namespace {

// The one node that uses `id`, when `id` can disappear into a fused node:
// float32, used exactly once and not a graph output. kNoNode otherwise.
NodeId SoleUser(const Graph& graph, ValueId id) {
  const Value& v = graph.value(id);
  if (v.dtype != DType::kFloat32 || v.is_graph_output || v.users.size() != 1) return kNoNode;
  return v.users[0];
}

// Rank and dims known statically, from a constant or the shape info.
int RankOf(const Value& v) {
  if (v.constant) return static_cast<int>(v.constant->rank());
  return v.shape.rank_known ? static_cast<int>(v.shape.dims.size()) : -1;
}
std::optional<int64_t> DimOf(const Value& v, int axis) {
  const int rank = RankOf(v);
  if (axis < 0 || axis >= rank) return std::nullopt;
  if (v.constant) return v.constant->dim(axis);
  const Dim& d = v.shape.dims[static_cast<size_t>(axis)];
  return d.is_concrete() ? std::optional<int64_t>(d.size) : std::nullopt;
}

// An activation kiln's fused kernels can apply, with its parameters.
struct ActivationMatch {
  std::string name;
  float alpha = 0.0f;
  float beta = 0.0f;
};

// A Clip bound: absent (the default) or a float32 scalar constant.
std::optional<float> ClipBound(const Graph& graph, const Node& clip, size_t input, float default_value) {
  if (clip.inputs.size() <= input || clip.inputs[input] == kNoValue) return default_value;
  const Tensor* t = FloatConstant(graph, clip.inputs[input]);
  if (t == nullptr || t->num_elements() != 1) return std::nullopt;
  return t->data<float>()[0];
}

std::optional<ActivationMatch> MatchActivation(const Graph& graph, const Node& node, ValueId input) {
  if (node.dead || !node.domain.empty() || node.inputs.empty() || node.inputs[0] != input || node.outputs.size() != 1) {
    return std::nullopt;
  }
  ActivationMatch m{node.op_type};
  const std::string& op = node.op_type;
  if (op == "Relu" || op == "Sigmoid" || op == "Tanh" || op == "HardSwish") {
    if (node.inputs.size() != 1) return std::nullopt;
    return m;
  }
  if (op == "Gelu") {
    // The erf form only (what exporters write and fuse_gelu produces); the
    // tanh approximation stays a node of its own.
    StatusOr<std::string> approximate = node.GetString("approximate", "none");
    if (node.inputs.size() != 1 || !approximate.ok() || *approximate != "none") return std::nullopt;
    return m;
  }
  auto float_attr = [&](const char* attr, float default_value) -> std::optional<float> {
    StatusOr<float> v = node.GetFloat(attr, default_value);
    return v.ok() ? std::optional<float>(*v) : std::nullopt;
  };
  std::optional<float> alpha, beta;
  if (op == "LeakyRelu") {
    alpha = float_attr("alpha", 0.01f);
    beta = 0.0f;
  } else if (op == "Elu") {
    alpha = float_attr("alpha", 1.0f);
    beta = 0.0f;
  } else if (op == "HardSigmoid") {
    alpha = float_attr("alpha", 0.2f);
    beta = float_attr("beta", 0.5f);
  } else if (op == "Clip") {
    constexpr float kLowest = std::numeric_limits<float>::lowest();
    constexpr float kMax = std::numeric_limits<float>::max();
    if (node.opset < 11) {
      alpha = float_attr("min", kLowest);
      beta = float_attr("max", kMax);
    } else {
      alpha = ClipBound(graph, node, 1, kLowest);
      beta = ClipBound(graph, node, 2, kMax);
    }
    // min > max (ONNX then gives max everywhere) and NaN bounds stay with
    // the Clip kernel, which handles them.
    if (!alpha || !beta || !(*alpha <= *beta)) return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (!alpha || !beta) return std::nullopt;
  m.alpha = *alpha;
  m.beta = *beta;
  return m;
}

// What follows a Conv/MatMul/Gemm that can be folded into it.
struct Epilogue {
  NodeId add = kNoNode;
  const Tensor* bias = nullptr;  // the Add's constant operand
  NodeId residual_add = kNoNode;
  ValueId residual = kNoValue;  // the residual Add's other operand
  NodeId activation_node = kNoNode;
  std::optional<ActivationMatch> activation;
  ValueId output = kNoValue;  // the fused node's output

  bool empty() const { return add == kNoNode && residual_add == kNoNode && activation_node == kNoNode; }
};

// Whether `a` and `b` have the same statically known shape: equal ranks and,
// axis by axis, equal concrete sizes or the same named symbol (which shape
// propagation only shares between dims it knows to be equal). An unknown
// dim matches nothing.
bool SameKnownShape(const Value& a, const Value& b) {
  if (!a.shape.rank_known || !b.shape.rank_known || a.shape.dims.size() != b.shape.dims.size()) return false;
  for (size_t i = 0; i < a.shape.dims.size(); ++i) {
    const Dim& da = a.shape.dims[i];
    const Dim& db = b.shape.dims[i];
    if (!da.is_concrete() && da.symbol.empty()) return false;
    if (!(da == db)) return false;
  }
  return true;
}

// The residual operand of `add` when `add` adds a run-time tensor of
// exactly `in`'s shape to `in` (no broadcasting either way), so the fused
// kernel can read it element for element beside its output; kNoValue
// otherwise. A constant operand is left to the bias step (or to no fusion).
ValueId ResidualOperand(const Graph& graph, const Node& add, ValueId in) {
  if (!IsDefaultOp(add, "Add") || add.inputs.size() != 2 || add.outputs.size() != 1 || add.outputs[0] == kNoValue) {
    return kNoValue;
  }
  const ValueId other = add.inputs[0] == in ? add.inputs[1] : add.inputs[0];
  if (other == kNoValue || other == in) return kNoValue;  // Add(x, x) is not a residual
  const Value& r = graph.value(other);
  if (r.constant || r.dtype != DType::kFloat32) return kNoValue;
  if (!SameKnownShape(graph.value(in), r) || !SameKnownShape(graph.value(add.outputs[0]), r)) return kNoValue;
  return other;
}

// Walks from `out` (the base node's output) through an optional Add of a
// constant that `accept_bias` accepts, an optional Add of a residual (a
// run-time tensor of the output's shape), then an optional activation: the
// order ONNX evaluates them in, which the kernels keep.
//
// The residual needs no cycle check: every path from `out` leaves through
// the single-use chain, so a residual computed from `out` would have to be
// computed from the residual Add's own output.
Epilogue MatchEpilogue(const Graph& graph, ValueId out, const std::function<bool(const Tensor&)>& accept_bias) {
  Epilogue e;
  e.output = out;
  NodeId user = SoleUser(graph, out);
  if (user == kNoNode) return e;
  const Node& add = graph.node(user);
  if (IsDefaultOp(add, "Add") && add.inputs.size() == 2 && add.outputs.size() == 1) {
    const ValueId other = add.inputs[0] == out ? add.inputs[1] : add.inputs[0];
    const Tensor* bias = FloatConstant(graph, other);
    if (bias != nullptr) {
      if (!accept_bias(*bias)) return e;
      e.add = user;
      e.bias = bias;
      e.output = add.outputs[0];
      user = SoleUser(graph, e.output);
      if (user == kNoNode) return e;
    }
  }
  const ValueId residual = ResidualOperand(graph, graph.node(user), e.output);
  if (residual != kNoValue) {
    e.residual_add = user;
    e.residual = residual;
    e.output = graph.node(user).outputs[0];
    user = SoleUser(graph, e.output);
    if (user == kNoNode) return e;
  }
  if (std::optional<ActivationMatch> act = MatchActivation(graph, graph.node(user), e.output)) {
    e.activation_node = user;
    e.activation = std::move(act);
    e.output = graph.node(user).outputs[0];
  }
  return e;
}

// A float32 tensor of `dims` whose elements are `values`; nullopt on
// allocation failure (the fusion is then skipped).
std::optional<Tensor> FloatTensor(const Dims& dims, const std::vector<float>& values) {
  StatusOr<Tensor> t = Tensor::Allocate(DType::kFloat32, dims);
  if (!t.ok()) return std::nullopt;
  if (!values.empty()) std::memcpy(t->raw_data(), values.data(), values.size() * sizeof(float));
  return std::move(t).value();
}

std::vector<float> ToFloats(const Tensor& t) {
  const float* p = t.data<float>();
  return std::vector<float>(p, p + t.num_elements());
}

// Replaces `base` and the epilogue's nodes by `fused` (which has base's
// inputs, attributes and name), whose input `bias_input` becomes a new
// constant `bias` when given. Every check is done before: from here the
// rewrite only fails on a kiln bug.
Status Rewrite(Graph& graph, NodeId base, const Epilogue& e, Node fused, std::optional<Tensor> bias,
               size_t bias_input) {
  if (e.activation) {
    fused.attributes["activation"] = Attribute::String(e.activation->name);
    fused.attributes["activation_alpha"] = Attribute::Float(e.activation->alpha);
    fused.attributes["activation_beta"] = Attribute::Float(e.activation->beta);
  }
  if (bias) {
    KILN_ASSIGN_OR_RETURN(ValueId bias_id, graph.AddConstant(fused.name + "/fused_bias", std::move(*bias)));
    if (fused.inputs.size() <= bias_input) fused.inputs.resize(bias_input + 1, kNoValue);
    fused.inputs[bias_input] = bias_id;
  }
  if (e.residual != kNoValue) {
    if (fused.inputs.size() <= kFusedResidualInput) fused.inputs.resize(kFusedResidualInput + 1, kNoValue);
    fused.inputs[kFusedResidualInput] = e.residual;
  }
  fused.domain = kKilnDomain;
  fused.opset = 1;
  fused.outputs = {e.output};
  graph.RemoveNode(base);
  if (e.add != kNoNode) graph.RemoveNode(e.add);
  if (e.residual_add != kNoNode) graph.RemoveNode(e.residual_add);
  if (e.activation_node != kNoNode) graph.RemoveNode(e.activation_node);
  StatusOr<NodeId> added = graph.AddNode(std::move(fused));
  if (!added.ok()) return Internal("epilogue fusion: ", added.status().message());
  return Status::Ok();
}

// Conv -> [Add(bias per output channel)] -> [activation] => FusedConv.
StatusOr<bool> TryFuseConv(Graph& graph, NodeId id) {
  const Node& conv = graph.node(id);
  if (conv.inputs.size() < 2 || conv.outputs.size() != 1 || conv.inputs[0] == kNoValue) return false;
  const Value& w = graph.value(conv.inputs[1]);
  const int rank = RankOf(w);  // the output's rank too
  const std::optional<int64_t> filters = DimOf(w, 0);
  const bool has_bias = conv.inputs.size() > 2 && conv.inputs[2] != kNoValue;
  const Tensor* conv_bias = has_bias ? FloatConstant(graph, conv.inputs[2]) : nullptr;
  auto accept_bias = [&](const Tensor& t) {
    // [1, M, 1, ...] or [M, 1, ...]: one value per output channel.
    if (rank < 3 || !filters || (has_bias && conv_bias == nullptr)) return false;
    const int r = static_cast<int>(t.rank());
    const int channel_axis = r == rank ? 1 : r == rank - 1 ? 0 : -1;
    if (channel_axis < 0) return false;
    for (int d = 0; d < r; ++d) {
      if (t.dim(d) != (d == channel_axis ? *filters : 1)) return false;
    }
    return true;
  };
  Epilogue e = MatchEpilogue(graph, conv.outputs[0], accept_bias);
  if (e.empty()) return false;

  std::optional<Tensor> bias;
  if (e.bias != nullptr) {
    std::vector<float> sum = ToFloats(*e.bias);
    if (conv_bias != nullptr) {
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += conv_bias->data<float>()[i];
    }
    bias = FloatTensor({*filters}, sum);
    if (!bias) return false;
  }
  Node fused = conv;
  fused.op_type = "FusedConv";
  KILN_RETURN_IF_ERROR(Rewrite(graph, id, e, std::move(fused), std::move(bias), 2));
  return true;
}

// MatMul -> [Add(bias [N] or [1, N])] -> [activation] => FusedMatMul.
StatusOr<bool> TryFuseMatMul(Graph& graph, NodeId id) {
  const Node& matmul = graph.node(id);
  if (matmul.inputs.size() != 2 || matmul.outputs.size() != 1) return false;
  const Value& a = graph.value(matmul.inputs[0]);
  const Value& b = graph.value(matmul.inputs[1]);
  const int b_rank = RankOf(b);
  const std::optional<int64_t> n = DimOf(b, b_rank - 1);
  auto accept_bias = [&](const Tensor& t) {
    if (b_rank < 2 || !n) return false;
    if (t.rank() == 1) return t.dim(0) == *n;
    // [1, N] would add a dim to a 1-D result.
    return t.rank() == 2 && t.dim(0) == 1 && t.dim(1) == *n && RankOf(a) >= 2;
  };
  Epilogue e = MatchEpilogue(graph, matmul.outputs[0], accept_bias);
  if (e.empty()) return false;

  std::optional<Tensor> bias;
  if (e.bias != nullptr) {
    bias = FloatTensor({*n}, ToFloats(*e.bias));
    if (!bias) return false;
  }
  Node fused = matmul;
  fused.op_type = "FusedMatMul";
  KILN_RETURN_IF_ERROR(Rewrite(graph, id, e, std::move(fused), std::move(bias), 2));
  return true;
}

// Gemm -> [Add(bias [N] or [1, N])] -> [activation] => FusedMatMul with
// Gemm's attributes; the bias is folded into C.
StatusOr<bool> TryFuseGemm(Graph& graph, NodeId id) {
  const Node& gemm = graph.node(id);
  if (gemm.inputs.size() < 2 || gemm.outputs.size() != 1) return false;
  StatusOr<int64_t> trans_a = gemm.GetInt("transA", 0);
  StatusOr<int64_t> trans_b = gemm.GetInt("transB", 0);
  StatusOr<float> alpha = gemm.GetFloat("alpha", 1.0f);
  StatusOr<float> beta = gemm.GetFloat("beta", 1.0f);
  if (!trans_a.ok() || !trans_b.ok() || !alpha.ok() || !beta.ok()) return false;
  const Value& b = graph.value(gemm.inputs[1]);
  const std::optional<int64_t> n = RankOf(b) == 2 ? DimOf(b, *trans_b != 0 ? 0 : 1) : std::nullopt;
  const bool has_c = gemm.inputs.size() > 2 && gemm.inputs[2] != kNoValue;
  const Tensor* c = has_c ? FloatConstant(graph, gemm.inputs[2]) : nullptr;
  auto accept_bias = [&](const Tensor& t) {
    if (!n || (has_c && (c == nullptr || c->rank() > 2))) return false;
    if (c != nullptr && c->rank() >= 1 && c->dim(c->rank() - 1) != 1 && c->dim(c->rank() - 1) != *n) return false;
    return (t.rank() == 1 && t.dim(0) == *n) || (t.rank() == 2 && t.dim(0) == 1 && t.dim(1) == *n);
  };
  Epilogue e = MatchEpilogue(graph, gemm.outputs[0], accept_bias);
  if (e.empty()) return false;

  Node fused = gemm;
  fused.op_type = "FusedMatMul";
  fused.attributes["transA"] = Attribute::Int(*trans_a);
  fused.attributes["transB"] = Attribute::Int(*trans_b);
  fused.attributes["alpha"] = Attribute::Float(*alpha);
  fused.attributes["beta"] = Attribute::Float(*beta);
  std::optional<Tensor> new_c;
  if (e.bias != nullptr) {
    // C' = beta * C + bias, broadcast to [rows of C (or 1), N].
    const int64_t rows = c != nullptr && c->rank() == 2 ? c->dim(0) : 1;
    const int64_t c_cols = c == nullptr || c->rank() == 0 ? 1 : c->dim(c->rank() - 1);
    std::vector<float> sum(static_cast<size_t>(rows * *n));
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < *n; ++j) {
        const float cv = c == nullptr ? 0.0f : *beta * c->data<float>()[i * c_cols + (c_cols == 1 ? 0 : j)];
        sum[static_cast<size_t>(i * *n + j)] = cv + e.bias->data<float>()[j];
      }
    }
    new_c = FloatTensor(rows == 1 ? Dims{*n} : Dims{rows, *n}, sum);
    if (!new_c) return false;
    fused.attributes["beta"] = Attribute::Float(1.0f);
  }
  KILN_RETURN_IF_ERROR(Rewrite(graph, id, e, std::move(fused), std::move(new_c), 2));
  return true;
}

}  // namespace

StatusOr<bool> FuseEpilogues(Graph& graph) {
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  bool changed = false;
  for (NodeId id : order) {
    const Node& node = graph.node(id);
    if (node.dead || !node.domain.empty()) continue;
    bool fused = false;
    if (node.op_type == "Conv") {
      KILN_ASSIGN_OR_RETURN(fused, TryFuseConv(graph, id));
    } else if (node.op_type == "MatMul") {
      KILN_ASSIGN_OR_RETURN(fused, TryFuseMatMul(graph, id));
    } else if (node.op_type == "Gemm") {
      KILN_ASSIGN_OR_RETURN(fused, TryFuseGemm(graph, id));
    }
    changed |= fused;
  }
  if (changed) Log().debug("epilogue fusion: {} live nodes after", graph.num_live_nodes());
  return changed;
}

}  // namespace kiln::graph
