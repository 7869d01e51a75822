// Dead-code elimination: removes what cannot influence a graph output.
//
// Why: exporters leave unused branches behind, and constant folding strands
// the initializers and shape nodes it folded away. Dropping them saves run
// time (no dead kernels), memory (no unused weights kept alive) and keeps
// printed graphs readable.
#pragma once

#include "graph/graph.h"
#include "kiln/status.h"

namespace kiln::graph {

// Removes every live node none of whose outputs reaches a graph output
// (through any chain of uses), then clears Value::constant of initializers
// and folded constants that no live node uses and that are not graph
// outputs, releasing their data. ONNX nodes have no side effects, so
// reachability is the whole story. The values If/Loop/Scan bodies read from
// the enclosing graph are their node's implicit inputs, so they count as
// used. Sub-graphs themselves are not visited (RunGraphPipeline recurses).
// Returns whether anything was removed.
StatusOr<bool> EliminateDeadNodes(Graph& graph);

}  // namespace kiln::graph
