#include "graph/fold_batch_norm.h"

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "graph/log.h"
#include "graph/pattern_match.h"

namespace kiln::graph {
namespace {

// A float32 constant of shape [channels], or nullptr.
const Tensor* PerChannelConstant(const Graph& graph, ValueId id, int64_t channels) {
  const Tensor* t = FloatConstant(graph, id);
  if (t == nullptr || t->rank() != 1 || t->dim(0) != channels) return nullptr;
  return t;
}

// Whether the only present output of `node` is output 0. BatchNormalization
// before opset 14 may list its training outputs (mean, var, saved stats);
// a node that does cannot simply disappear.
bool OnlyFirstOutput(const Node& node) {
  if (node.outputs.empty() || node.outputs[0] == kNoValue) return false;
  for (size_t i = 1; i < node.outputs.size(); ++i) {
    if (node.outputs[i] != kNoValue) return false;
  }
  return true;
}

// Whether `bn` computes its inference-mode formula, with the epsilon it uses.
bool IsInferenceBatchNorm(const Node& bn, float& epsilon) {
  if (!IsDefaultOp(bn, "BatchNormalization") || bn.opset < 7) return false;
  if (bn.inputs.size() != 5 || !OnlyFirstOutput(bn)) return false;
  StatusOr<int64_t> training_mode = bn.GetInt("training_mode", 0);
  if (!training_mode.ok() || *training_mode != 0) return false;
  if (bn.opset < 9) {
    // spatial=0 (opsets 7-8) means per-activation statistics of shape
    // [C, D1, ...], not per channel.
    StatusOr<int64_t> spatial = bn.GetInt("spatial", 1);
    if (!spatial.ok() || *spatial != 1) return false;
  }
  StatusOr<float> eps = bn.GetFloat("epsilon", 1e-5f);
  if (!eps.ok()) return false;
  epsilon = *eps;
  return true;
}

// Folds BatchNormalization `bn_id` into the Conv producing its input, when
// the guards in the header hold. Every check and allocation happens before
// the graph changes: from the first AddConstant on, only a kiln bug fails.
StatusOr<bool> TryFold(Graph& graph, NodeId bn_id) {
  const Node& bn = graph.node(bn_id);
  float epsilon = 0.0f;
  if (!IsInferenceBatchNorm(bn, epsilon)) return false;
  const ValueId conv_out = bn.inputs[0];
  if (conv_out == kNoValue) return false;
  const Value& mid = graph.value(conv_out);
  if (mid.dtype != DType::kFloat32 || mid.is_graph_output || mid.users.size() != 1) return false;
  if (mid.producer == kNoNode) return false;
  const NodeId conv_id = mid.producer;
  const Node& conv = graph.node(conv_id);
  if (!IsDefaultOp(conv, "Conv") || conv.outputs.size() != 1 || conv.inputs.size() < 2) return false;
  if (conv.inputs[0] == kNoValue) return false;

  const Tensor* w = FloatConstant(graph, conv.inputs[1]);
  if (w == nullptr || w->rank() < 3 || w->dim(0) <= 0) return false;
  const int64_t channels = w->dim(0);
  const bool has_bias = conv.inputs.size() > 2 && conv.inputs[2] != kNoValue;
  const Tensor* conv_bias = has_bias ? PerChannelConstant(graph, conv.inputs[2], channels) : nullptr;
  if (has_bias && conv_bias == nullptr) return false;
  const Tensor* scale = PerChannelConstant(graph, bn.inputs[1], channels);
  const Tensor* shift = PerChannelConstant(graph, bn.inputs[2], channels);
  const Tensor* mean = PerChannelConstant(graph, bn.inputs[3], channels);
  const Tensor* var = PerChannelConstant(graph, bn.inputs[4], channels);
  if (scale == nullptr || shift == nullptr || mean == nullptr || var == nullptr) return false;

  // a = scale / sqrt(var + eps) per output channel, in double so that W'
  // and B' are rounded once.
  std::vector<double> factor(static_cast<size_t>(channels));
  for (int64_t m = 0; m < channels; ++m) {
    const double a = static_cast<double>(scale->data<float>()[m]) /
                     std::sqrt(static_cast<double>(var->data<float>()[m]) + static_cast<double>(epsilon));
    if (!std::isfinite(a)) return false;
    factor[static_cast<size_t>(m)] = a;
  }
  StatusOr<Tensor> new_w = Tensor::Allocate(DType::kFloat32, w->dims());
  StatusOr<Tensor> new_b = Tensor::Allocate(DType::kFloat32, {channels});
  if (!new_w.ok() || !new_b.ok()) return false;
  const int64_t per_channel = w->num_elements() / channels;
  for (int64_t m = 0; m < channels; ++m) {
    const double a = factor[static_cast<size_t>(m)];
    const float* src = w->data<float>() + m * per_channel;
    float* dst = new_w->data<float>() + m * per_channel;
    for (int64_t i = 0; i < per_channel; ++i) dst[i] = static_cast<float>(src[i] * a);
    const double b = conv_bias != nullptr ? conv_bias->data<float>()[m] : 0.0;
    new_b->data<float>()[m] = static_cast<float>((b - mean->data<float>()[m]) * a + shift->data<float>()[m]);
  }

  // Rewrite: a copy of the Conv reading W' and B' and writing the BN's
  // output replaces both nodes (Graph relinks producers/users on AddNode).
  // Copies first: adding values may move the references above.
  const std::string w_name = graph.value(conv.inputs[1]).name;
  Node folded = conv;
  const ValueId y = bn.outputs[0];
  KILN_ASSIGN_OR_RETURN(ValueId w_id, graph.AddConstant(w_name + "/bn_folded", std::move(new_w).value()));
  KILN_ASSIGN_OR_RETURN(ValueId b_id, graph.AddConstant(w_name + "/bn_folded_bias", std::move(new_b).value()));
  folded.inputs.resize(3, kNoValue);
  folded.inputs[1] = w_id;
  folded.inputs[2] = b_id;
  folded.outputs = {y};
  graph.RemoveNode(conv_id);
  graph.RemoveNode(bn_id);
  StatusOr<NodeId> added = graph.AddNode(std::move(folded));
  if (!added.ok()) return Internal("batch-norm folding: ", added.status().message());
  return true;
}

}  // namespace

StatusOr<bool> FoldBatchNormIntoConv(Graph& graph) {
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  bool changed = false;
  for (NodeId id : order) {
    if (!IsDefaultOp(graph.node(id), "BatchNormalization")) continue;
    KILN_ASSIGN_OR_RETURN(bool folded, TryFold(graph, id));
    changed |= folded;
  }
  if (changed) Log().debug("batch-norm folding: {} live nodes after", graph.num_live_nodes());
  return changed;
}

}  // namespace kiln::graph
