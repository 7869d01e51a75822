// GELU fusion: recognises the erf-form GELU that PyTorch exports for
// nn.GELU() before opset 20 (and that BERT-style models spell out), and
// replaces it by one Gelu node.
//
// Why: the decomposed form is five elementwise kernels, each a pass over the
// activations; one Gelu is one pass, and a Gelu that follows a MatMul or a
// Conv then becomes a oneDNN post-op of that node (fuse_epilogues), applied
// while the output tile is still in cache.
//
// Rewrites, when every guard below holds:
//   d = Div(x, sqrt(2))          or  Mul(x, 1/sqrt(2))   (constant either side)
//   a = Add(Erf(d), 1)
//   y = Mul(Mul(x, a), 0.5)      or  Mul(Mul(a, 0.5), x)
//                                or  Mul(Mul(x, 0.5), a)  (operands either side)
// => y = Gelu(x, approximate="none"), domain "" (the op of opset 20, which
// kiln's kernels serve whatever opset the model imports).
// Guards: x and every intermediate float32; every intermediate used once
// and not a graph output (x may have other users); the constants
// one-element float32 within 1e-4 relative of their exact values, of rank
// at most x's (so broadcasting them does not change the output's shape).
#pragma once

#include "graph/graph.h"
#include "kiln/status.h"

namespace kiln::graph {

// Returns whether anything was fused.
StatusOr<bool> FuseGelu(Graph& graph);

}  // namespace kiln::graph
