// The load-time graph pipeline: the one place that lists which passes run
// on a freshly loaded graph, in which order, and why in that order (see
// pipeline.cc). Passes never register themselves.
#pragma once

#include <string>

#include "graph/constant_folding.h"
#include "graph/graph.h"
#include "kiln/status.h"

namespace kiln::graph {

struct PipelineOptions {
  // Evaluates a node on constant inputs for constant folding; the runtime
  // passes one backed by its kernels. Empty: only Shape/Size/Constant
  // are folded.
  NodeEvaluator evaluator;
  // Run the passes that replace op patterns with fused kernels (LayerNorm,
  // GELU, epilogues). Off, every node left is one of the model's ops.
  bool fuse_kernels = true;
  // With fuse_kernels: run convolutional sub-graphs in NHWC (see
  // channels_last.h). Worth it when the host's convolution kernels work in
  // NHWC themselves; the runtime asks its kernels (graph cannot know).
  bool channels_last = false;
  // When non-empty (or, if empty, when the environment variable
  // KILN_DUMP_GRAPH names a folder), PrintGraph's output is written there
  // before the first pass and after every pass, as NN_<pass>.txt
  // (00_loaded.txt, 01_eliminate_dead_nodes.txt, 02_propagate_shapes.txt,
  // ...). The folder is created if needed; failing to write is an error,
  // since someone asked for the dump.
  std::string dump_dir;
};

// Validates `graph`, then runs the passes of pipeline.cc on it in place.
// On failure the graph may be partly optimised but stays valid (every pass
// leaves a consistent graph after each rewrite).
Status RunGraphPipeline(Graph& graph, const PipelineOptions& options);

}  // namespace kiln::graph
