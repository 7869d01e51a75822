// Load-time passes about sub-graphs (If/Loop/Scan bodies).
#pragma once

#include "graph/graph.h"
#include "kiln/status.h"

namespace kiln::graph {

// Replaces every If whose condition is a constant (often only after
// folding: a flag computed from shapes or from another constant) by the
// nodes of the branch it takes, renamed into this graph; the If's outputs
// keep their ids and names. Why: a branch never taken costs a kernel per
// run and keeps its weights alive, and the inlined nodes join the
// enclosing graph's folding, fusion and JIT regions. Returns whether any
// If was replaced.
StatusOr<bool> InlineConstantIfs(Graph& graph);

// Makes each outer-scope value of a body a constant there when the value
// it stands for is a constant of the enclosing graph (weights a loop body
// reads from outside). Why: the body's kernels then see constant inputs,
// so folding can use them and MatMul/Conv prepare packed weights once
// instead of taking the slow path every iteration. The value stays in the
// body's outer_scope_values() (the node still passes it in; the body's
// interpreter reads the constant). Not recursive: the pipeline applies it
// again inside each body. Returns whether anything changed.
StatusOr<bool> PropagateConstantsIntoBodies(Graph& graph);

}  // namespace kiln::graph
