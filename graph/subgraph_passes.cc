#include "graph/subgraph_passes.h"

#include <string>
#include <vector>

namespace kiln::graph {
namespace {

// The branch an If with a constant condition takes, and where its outer-scope
// values start among the If's inputs; null when the condition is not a
// constant bool scalar.
const Graph* TakenBranch(const Graph& graph, const Node& node, size_t* capture_offset) {
  if (node.op_type != "If" || !node.domain.empty() || node.num_explicit_inputs() != 1) return nullptr;
  const ValueId cond = node.inputs[0];
  if (cond == kNoValue || !graph.value(cond).constant) return nullptr;
  const Tensor& c = *graph.value(cond).constant;
  if (c.dtype() != DType::kBool || c.num_elements() != 1) return nullptr;
  const std::string taken = *c.data<bool>() ? "then_branch" : "else_branch";
  size_t offset = node.num_explicit_inputs();
  for (const auto& [name, body] : Subgraphs(node)) {
    if (name == taken) {
      *capture_offset = offset;
      return body;
    }
    offset += body->outer_scope_values().size();
  }
  return nullptr;
}

Status InlineBranch(Graph& graph, NodeId if_id, const Graph& branch, size_t capture_offset) {
  const Node if_node = graph.node(if_id);  // a copy: adding nodes moves the array
  if (branch.outputs().size() != if_node.outputs.size() || !branch.inputs().empty()) {
    return Status::Ok();  // malformed; the If's kernel reports it
  }
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, branch.TopologicalOrder());
  const std::string prefix = if_node.name.empty() ? "if" : if_node.name;
  std::vector<ValueId> mapped(branch.num_values(), kNoValue);
  for (size_t k = 0; k < branch.outer_scope_values().size(); ++k) {
    mapped[static_cast<size_t>(branch.outer_scope_values()[k])] = if_node.inputs[capture_offset + k];
  }
  for (size_t v = 0; v < branch.num_values(); ++v) {
    const Value& value = branch.value(static_cast<ValueId>(v));
    if (value.constant && mapped[v] == kNoValue) {
      KILN_ASSIGN_OR_RETURN(mapped[v], graph.AddConstant(prefix + "/" + value.name, *value.constant));
    }
  }
  // The If goes first so its output values are free to take new producers.
  graph.RemoveNode(if_id);
  std::vector<bool> output_claimed(if_node.outputs.size(), false);
  for (NodeId id : order) {
    Node copy = branch.node(id);
    copy.name = prefix + "/" + copy.name;
    for (ValueId& in : copy.inputs) {
      if (in != kNoValue) in = mapped[static_cast<size_t>(in)];
    }
    for (ValueId& out : copy.outputs) {
      if (out == kNoValue) continue;
      ValueId target = kNoValue;
      for (size_t j = 0; j < branch.outputs().size(); ++j) {
        if (branch.outputs()[j] == out && !output_claimed[j] && if_node.outputs[j] != kNoValue) {
          target = if_node.outputs[j];
          output_claimed[j] = true;
          break;
        }
      }
      if (target == kNoValue) {
        const Value& v = branch.value(out);
        KILN_ASSIGN_OR_RETURN(target, graph.AddValue(graph.UniqueValueName(prefix + "/" + v.name), v.dtype, v.shape));
      }
      mapped[static_cast<size_t>(out)] = target;
      out = target;
    }
    KILN_RETURN_IF_ERROR(graph.AddNode(std::move(copy)).status());
  }
  // Outputs no branch node produced directly: a value passed through, a
  // constant, or a value returned twice.
  for (size_t j = 0; j < if_node.outputs.size(); ++j) {
    if (output_claimed[j] || if_node.outputs[j] == kNoValue) continue;
    Node identity;
    identity.name = prefix + "/output_" + std::to_string(j);
    identity.op_type = "Identity";
    identity.opset = if_node.opset;
    identity.inputs = {mapped[static_cast<size_t>(branch.outputs()[j])]};
    identity.outputs = {if_node.outputs[j]};
    KILN_RETURN_IF_ERROR(graph.AddNode(std::move(identity)).status());
  }
  return Status::Ok();
}

}  // namespace

StatusOr<bool> InlineConstantIfs(Graph& graph) {
  bool changed = false;
  const size_t count = graph.num_nodes();
  for (size_t i = 0; i < count; ++i) {
    const NodeId id = static_cast<NodeId>(i);
    if (graph.node(id).dead) continue;
    size_t capture_offset = 0;
    const Graph* branch = TakenBranch(graph, graph.node(id), &capture_offset);
    if (branch == nullptr) continue;
    // Keeps the branch alive while its If node is removed.
    std::shared_ptr<Graph> keep;
    for (const auto& [name, attr] : graph.node(id).attributes) {
      if (attr.g.get() == branch) keep = attr.g;
    }
    KILN_RETURN_IF_ERROR(InlineBranch(graph, id, *branch, capture_offset));
    changed = changed || graph.node(id).dead;
  }
  return changed;
}

StatusOr<bool> PropagateConstantsIntoBodies(Graph& graph) {
  bool changed = false;
  for (size_t i = 0; i < graph.num_nodes(); ++i) {
    Node& node = graph.node(static_cast<NodeId>(i));
    if (node.dead) continue;
    size_t next = node.num_explicit_inputs();
    for (const auto& [name, body] : MutableSubgraphs(node)) {
      for (ValueId inner : body->outer_scope_values()) {
        const Value& outer = graph.value(node.inputs[next++]);
        Value& v = body->value(inner);
        if (!outer.constant || v.constant) continue;
        v.constant = *outer.constant;  // shares the data, no copy
        changed = true;
      }
    }
  }
  return changed;
}

}  // namespace kiln::graph
