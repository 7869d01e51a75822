// Internal view of a Model for kiln's own tools, benchmarks and tests; not
// part of the public API.
#pragma once

#include "graph/graph.h"
#include "kiln/session.h"

namespace kiln {

struct Model::Impl {
  graph::Graph graph;
  std::vector<TensorInfo> inputs;
  std::vector<TensorInfo> outputs;
  ModelMetadata metadata;
};

// The optimised graph a model runs.
inline const graph::Graph& ModelGraph(const Model& model) { return model.impl().graph; }

}  // namespace kiln
