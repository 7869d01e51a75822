// Splits a graph into regions the JIT can compile as one function. Today's
// regions are elementwise chains and trees: ops applied element by element
// (with numpy broadcasting) whose outputs all have the same static shape,
// fused so that each input is read once and each output written once, with
// no intermediate buffers.
#pragma once

#include <vector>

#include "graph/graph.h"
#include "graph/region.h"
#include "kiln/status.h"

namespace kiln::graph {

struct PartitionOptions {
  // Regions with fewer nodes stay interpreted: one elementwise op is already
  // a single vectorised pass in the interpreter, so compiling it buys little.
  int min_region_nodes = 2;
};

// True for ops the elementwise region compiler handles (op type and the
// attributes that change its meaning, e.g. Gelu's approximation).
bool IsFusibleElementwise(const Node& node);

// Regions in a deterministic order (by their first node's topological
// position), ids 0..n-1. Nodes not in any region run in the interpreter.
// A node joins the region of one of its producers when it is fusible, its
// output has the region's static shape and dtype, and joining creates no
// cycle (no path leaves the region and comes back into the node).
StatusOr<std::vector<Region>> PartitionGraph(const Graph& graph, const PartitionOptions& options = {});

}  // namespace kiln::graph
