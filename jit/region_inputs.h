// Internal to jit/: how a region's inputs and outputs enter generated code,
// decided from the graph alone. Every code generator and the row-region
// planner (row_region_plan.h) share these; the header includes nothing from
// LLVM, so the planner stays LLVM-free.
#pragma once

#include <vector>

#include "graph/graph.h"
#include "graph/region.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::jit::internal {

// The two element kinds that flow through a region: float32 data and
// bool masks (i1 in registers, one byte in memory).
enum class Kind { kFloat, kBool };

// kUnsupported for a dtype other than float32 and bool.
StatusOr<Kind> KindOf(DType dtype);

// numpy / ONNX multidirectional broadcasting; kInvalidArgument when `a` and
// `b` do not broadcast.
StatusOr<Dims> Broadcast(const Dims& a, const Dims& b);

// How a region input enters the code, independent of shapes.
struct InputSpec {
  Kind kind = Kind::kFloat;
  bool baked = false;    // a single-element constant: an immediate, its buffer is never read
  double immediate = 0;  // its value (bool as 0/1)
};

// How one region input enters the code: a single-element constant is baked
// in; anything else must be float32 or bool (kUnsupported otherwise).
StatusOr<InputSpec> ClassifyInput(const graph::Value& value);

// Checks what the elementwise generators require of any region
// (elementwise kind, at least one node and one output) and classifies its
// inputs (region.inputs order). kUnsupported for a dtype other than
// float32/bool.
StatusOr<std::vector<InputSpec>> ClassifyInputs(const graph::Graph& graph, const graph::Region& region);

// The kind of each region output (region.outputs order).
StatusOr<std::vector<Kind>> OutputKinds(const graph::Graph& graph, const graph::Region& region);

}  // namespace kiln::jit::internal
