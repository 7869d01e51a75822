// LayerNorm fusion: recognises the decomposed layer normalisation that
// PyTorch exports for nn.LayerNorm before opset 17 (and that hand-written
// models spell out), and replaces it by one LayerNormalization node.
//
// Why: the decomposed form is nine elementwise and reduction kernels, each
// a pass over the activations with its own temporary; the LayerNormalization
// kernel reads each row once for its statistics and once to normalise.
//
// Rewrites, when every guard below holds:
//   mean = ReduceMean(x, axes=[-1], keepdims=1)
//   d    = Sub(x, mean)
//   var  = ReduceMean(Pow(d, 2), axes=[-1], keepdims=1)
//   y    = Add(Mul(Div(d, Sqrt(Add(var, eps))), scale), bias)
// => y = LayerNormalization(x, scale, bias, axis=-1, epsilon=eps), with
// domain "" and opset 17 (the op's first version, which kiln's kernel
// registry serves whatever opset the model imports). The last Add is
// optional (LayerNormalization without B). Mul and both Adds accept their
// constant on either side. ReduceMean's axes may be the attribute (before
// opset 18) or a constant input (18 on), as [-1] or [rank - 1].
// Guards: x and every intermediate float32; every intermediate used once
// and not a graph output, except d, used exactly by the Pow and the Div
// (x may have other users); the Pow exponent a one-element float32
// constant equal to 2; eps a one-element float32 constant; scale and bias
// float32 constants of shape [D], D the last dim of x, which must be known
// (so the broadcasts of the decomposed form give x's shape, as
// LayerNormalization does).
#pragma once

#include "graph/graph.h"
#include "kiln/status.h"

namespace kiln::graph {

// Returns whether anything was fused.
StatusOr<bool> FuseLayerNorm(Graph& graph);

}  // namespace kiln::graph
