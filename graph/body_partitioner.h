// JIT regions inside sub-graphs: If branches, Loop and Scan bodies, at any
// depth. Each body is partitioned on its own by PartitionGraph, so a region
// never crosses a body's boundary; the values a body reads from outside
// (outer_scope_values) are region inputs like graph inputs.
#pragma once

#include <string>
#include <vector>

#include "graph/graph.h"
#include "graph/partitioner.h"
#include "graph/region.h"
#include "kiln/status.h"

namespace kiln::graph {

// The regions of one body.
struct BodyRegions {
  const Graph* body = nullptr;  // owned by a node's graph attribute
  // Where the body sits, from the top-level graph: "Loop 'l'/body", and for
  // a body inside a body "Loop 'outer'/body/If 'branch'/then_branch". Each
  // region's Region::path is this.
  std::string path;
  std::vector<Region> regions;  // ids continue from the previous body's
};

// Partitions every body of `graph`'s nodes, depth first in topological
// order and attribute order, so the result and the ids are deterministic.
// Region ids start at `first_id` and count up across bodies, so that with
// `first_id` = the number of top-level regions every region of the session
// has its own id. `path` names `graph` itself ("" for the top level).
// Bodies with no region are left out.
StatusOr<std::vector<BodyRegions>> PartitionBodies(const Graph& graph, const PartitionOptions& options, int first_id,
                                                   const std::string& path = "");

// The regions of `body` in `bodies`, or null when it has none.
const BodyRegions* FindBodyRegions(const std::vector<BodyRegions>& bodies, const Graph& body);

}  // namespace kiln::graph
