// A region is a connected set of nodes that the JIT compiles into one
// function. The partitioner (partitioner.h) finds them; the runtime profiles
// and dispatches them; jit/ generates code for them.
#pragma once

#include <string>
#include <vector>

#include "graph/graph.h"

namespace kiln::graph {

enum class RegionKind {
  // Elementwise ops (with broadcasting) fused into one loop nest: every
  // output has the region's output shape; inputs broadcast into it.
  kElementwise,
};
const char* RegionKindName(RegionKind kind);

struct Region {
  int id = 0;
  RegionKind kind = RegionKind::kElementwise;
  std::vector<NodeId> nodes;     // in topological order
  std::vector<ValueId> inputs;   // values read from outside (graph inputs, constants, other nodes' outputs)
  std::vector<ValueId> outputs;  // values used outside the region or graph outputs
  std::string reason;            // why these nodes were grouped (for `kiln info --regions`)
};

}  // namespace kiln::graph
