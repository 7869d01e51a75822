// Small predicates the fusion passes (fuse_layer_norm, fuse_gelu,
// fuse_epilogues, fold_batch_norm) use to recognise exporters' patterns:
// which node is what op, which value is a constant, which intermediate can
// disappear into a fused node. Internal to graph/.
#pragma once

#include <cmath>
#include <optional>
#include <string_view>

#include "graph/graph.h"

namespace kiln::graph {

// A live node of the default ONNX domain with op type `op`.
inline bool IsDefaultOp(const Node& node, std::string_view op) {
  return !node.dead && node.domain.empty() && node.op_type == op;
}

// Whether `id` is float32, not a graph output, and used exactly `uses`
// times: a value a fusion may remove once it rewrites all of those uses.
inline bool IsFloatIntermediate(const Graph& graph, ValueId id, size_t uses) {
  if (id == kNoValue) return false;
  const Value& v = graph.value(id);
  return v.dtype == DType::kFloat32 && !v.is_graph_output && v.users.size() == uses;
}

// The one node that uses `id` when `id` is a float32 intermediate with a
// single use and that node is a live default-domain `op` with one output;
// kNoNode otherwise.
inline NodeId SoleUserOfType(const Graph& graph, ValueId id, std::string_view op) {
  if (!IsFloatIntermediate(graph, id, 1)) return kNoNode;
  const NodeId user = graph.value(id).users[0];
  const Node& n = graph.node(user);
  if (!IsDefaultOp(n, op) || n.outputs.size() != 1 || n.outputs[0] == kNoValue) return kNoNode;
  return user;
}

// The float32 constant behind `id`, or null.
inline const Tensor* FloatConstant(const Graph& graph, ValueId id) {
  if (id == kNoValue) return nullptr;
  const Value& v = graph.value(id);
  if (!v.constant || v.constant->dtype() != DType::kFloat32) return nullptr;
  return &*v.constant;
}

// A one-element float32 constant whose rank does not exceed `max_rank`
// (so broadcasting it adds no dims); its value, or nullopt.
inline std::optional<float> ScalarConstant(const Graph& graph, ValueId id, int64_t max_rank) {
  const Tensor* t = FloatConstant(graph, id);
  if (t == nullptr || t->num_elements() != 1 || t->rank() > max_rank) return std::nullopt;
  return t->data<float>()[0];
}

// Whether `value` is within `rel` relative error of `expected` (exporters
// write constants like sqrt(2) rounded to a few digits).
inline bool Near(float value, double expected, double rel = 1e-4) {
  return std::fabs(static_cast<double>(value) - expected) <= rel * std::fabs(expected);
}

// For a binary node with `input` as one operand: the other operand
// (kNoValue when `input` is not an operand). Callers use it on commutative
// ops only.
inline ValueId OtherOperand(const Node& node, ValueId input) {
  if (node.inputs.size() != 2) return kNoValue;
  if (node.inputs[0] == input) return node.inputs[1];
  if (node.inputs[1] == input) return node.inputs[0];
  return kNoValue;
}

}  // namespace kiln::graph
