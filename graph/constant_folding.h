// Constant folding: evaluates, once at load time, every node whose result
// does not depend on the graph inputs, and replaces it by a constant.
//
// Why: exporters (PyTorch's in particular) emit long chains of shape
// arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) and
// weight preprocessing (Transpose, Cast, Reshape of initializers). Folding
// them removes work from every run, and turns the shape operand of
// Reshape/Expand/Slice into a constant, which shape propagation and the
// memory planner can then see through.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "graph/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::graph {

// Computes a node's outputs from its inputs (nullptr for an omitted optional
// input); one tensor per entry of node.outputs (anything for an omitted
// output). graph/ knows no kernels, so the caller provides this: the runtime
// passes one backed by its kernel registry. An error just means "cannot
// fold this node".
using NodeEvaluator =
    std::function<StatusOr<std::vector<Tensor>>(const Node& node, const std::vector<const Tensor*>& inputs)>;

// A folded output larger than this stays a lazily computed node: a constant
// costs memory for the session's whole life, while the node costs a little
// time per run, and big results (a broadcast weight, a ConstantOfShape
// buffer) are usually cheap to recompute compared with the model around
// them.
inline constexpr size_t kMaxFoldedBytes = size_t{16} << 20;

// Folds, in one topological sweep (so whole chains fold in one call):
//  - a deterministic node (not RandomNormal & co, no subgraph attribute)
//    whose present inputs are all constants (initializers or values folded
//    earlier in the sweep), by calling `evaluate`;
//  - Shape and Size of a value whose ShapeInfo is fully concrete, without
//    calling `evaluate`, since only the shape is needed;
//  - Constant (value / value_float(s) / value_int(s)), also without it.
// A folded node is removed and each of its outputs gets `constant` (plus
// the dtype and concrete shape of the result); a graph output that becomes
// constant stays a graph output. An evaluator error, a malformed result or
// an output over kMaxFoldedBytes leaves the node as it is (the error then
// shows when the node runs). An empty `evaluate` folds only Shape, Size and
// Constant.
// Returns whether anything was folded; fails only if the graph has a cycle.
StatusOr<bool> FoldConstants(Graph& graph, const NodeEvaluator& evaluate);

}  // namespace kiln::graph
