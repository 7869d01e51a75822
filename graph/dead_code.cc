#include "graph/dead_code.h"

#include <algorithm>
#include <vector>

namespace kiln::graph {

StatusOr<bool> EliminateDeadNodes(Graph& graph) {
  // Mark backwards from the graph outputs: a node is live once one of its
  // outputs is needed, and then all of its inputs are needed. A worklist
  // rather than a topological sweep, so that a cycle in dead code (which
  // Validate reports elsewhere) cannot stop this pass.
  std::vector<bool> live(graph.num_nodes(), false);
  std::vector<ValueId> worklist(graph.outputs().begin(), graph.outputs().end());
  std::vector<bool> seen(graph.num_values(), false);
  while (!worklist.empty()) {
    const ValueId id = worklist.back();
    worklist.pop_back();
    if (id == kNoValue || seen[static_cast<size_t>(id)]) continue;
    seen[static_cast<size_t>(id)] = true;
    const NodeId producer = graph.value(id).producer;
    if (producer == kNoNode || live[static_cast<size_t>(producer)]) continue;
    const Node& node = graph.node(producer);
    if (node.dead) continue;
    live[static_cast<size_t>(producer)] = true;
    for (ValueId in : node.inputs) worklist.push_back(in);
  }

  // Values a sub-graph reads are implicit inputs of its node (see
  // Node::implicit_inputs), so the marking above already kept them.
  bool changed = false;
  for (size_t i = 0; i < graph.num_nodes(); ++i) {
    const NodeId id = static_cast<NodeId>(i);
    if (graph.node(id).dead || live[i]) continue;
    graph.RemoveNode(id);
    changed = true;
  }

  // RemoveNode unlinked the dead users, so `users` now lists live nodes only.
  for (size_t i = 0; i < graph.num_values(); ++i) {
    Value& v = graph.value(static_cast<ValueId>(i));
    if (v.constant && v.users.empty() && !v.is_graph_output) {
      v.constant.reset();
      changed = true;
    }
  }
  return changed;
}

}  // namespace kiln::graph
