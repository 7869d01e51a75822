// Human-readable views of a Graph: a text listing for logs, tests and
// KILN_DUMP_GRAPH, and Graphviz DOT for looking at a model's structure.
// Neither rewrites anything; both accept any graph, including one with a
// cycle or dangling links (they print what is there rather than fail), so
// they stay usable while debugging a pass that broke the graph.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"

namespace kiln::graph {

// The graph as text, one line per item, deterministic for a given graph:
//
//   graph "name" opsets {"": 13}
//   input  %x:float32[N,3,224,224]
//   const  %w:float32[64,3,3,3]
//   const  %axes:int64[1] = [0]
//   const  %eps:float32[] = 1e-05
//   %y:float32[N,64,222,222] = Conv(%x, %w, %b) {kernel_shape=[3,3]}  # conv1
//   output %y
//
// Constants are summarised by dtype and shape (small integer ones and float
// scalars also show their values, which is what makes folded shape
// arithmetic readable). Live nodes
// come in topological order (model order if the graph has a cycle); an
// omitted optional input prints as `_`; a value without a name as `%#<id>`.
// A node's implicit inputs (values its sub-graphs read) follow a `|`, and
// each sub-graph follows its node, indented, with `outer` lines for the
// values it reads from enclosing graphs:
//
//   %y:float32[3] = If(%cond | %x) {else_branch=<graph>, then_branch=<graph>}
//     else_branch "g" {
//       outer  %x:float32[3]
//       ...
//     }
std::string PrintGraph(const Graph& graph);

struct DotOptions {
  // Fill colour group per node id (index = NodeId, -1 = no colour). Shorter
  // than num_nodes() is fine: missing entries mean -1. A partitioner uses
  // this to show its regions.
  std::vector<int> node_color_group;
  // Per colour group (index = group), a line added to its nodes' labels and
  // used as their tooltip, e.g. "region 3: gemm". Missing entries: none.
  std::vector<std::string> group_labels;
  // Colour groups of the nodes inside If/Loop/Scan bodies: per body graph,
  // a group per node id as in node_color_group, labelled by group_labels.
  // Each group is drawn as a cluster of its own inside its body's cluster
  // (a partitioner's regions inside bodies).
  std::vector<std::pair<const Graph*, std::vector<int>>> body_color_groups;
  // Draw initializers and folded constants as their own boxes. Off is
  // useful for big models, where weights crowd out the structure.
  bool include_constants = true;
};

// The graph in Graphviz DOT. Each live node is a box labelled with its op
// type and name; graph inputs, constants and graph outputs are ellipses and
// notes; every edge is labelled with the dtype and shape of the value it
// carries.
// If/Loop/Scan bodies are drawn as dashed clusters next to their node.
std::string GraphToDot(const Graph& graph, const DotOptions& options = {});

}  // namespace kiln::graph
