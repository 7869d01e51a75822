// Epilogue fusion: folds the bias add and the activation that follow a
// convolution or a matrix product into that node, so the kernel applies
// them (as oneDNN post-ops) while each output tile is still in cache,
// instead of two more passes over the whole output in memory.
//
// Rewrites, when every guard below holds:
//   Conv -> [Add(per-channel constant)] -> [activation]         => kiln.FusedConv
//   MatMul -> [Add(constant [N] or [1, N])] -> [activation]    => kiln.FusedMatMul
//   Gemm -> [Add(constant [N] or [1, N])] -> [activation]      => kiln.FusedMatMul
// with at least one of the bracketed steps present. activation is one of
// Relu, LeakyRelu, Clip (constant min/max), Sigmoid, Tanh, HardSwish,
// HardSigmoid, Elu, Gelu (erf form).
//
// The fused node (domain "kiln", opset 1) keeps the original node's name,
// inputs and attributes and adds:
//   - FusedConv: the Add's bias folded into input 2 (B), as [M];
//   - FusedMatMul from MatMul: the bias as input 2, as [N];
//   - FusedMatMul from Gemm: the bias folded into C (beta * C + bias, with
//     beta then 1); it always carries transA, transB, alpha and beta, which
//     is how the kernel tells a fused Gemm from a fused MatMul;
//   - "activation" (the ONNX op name) with "activation_alpha" and
//     "activation_beta" (LeakyRelu/Elu alpha; Clip min/max; HardSigmoid
//     alpha/beta), when there is an activation.
// Guards: every intermediate value is float32, has exactly one use and is
// not a graph output; the bias (and Clip's min/max) are constants.
#pragma once

#include "graph/graph.h"
#include "kiln/status.h"

namespace kiln::graph {

inline constexpr const char* kKilnDomain = "kiln";

// Returns whether anything was fused.
StatusOr<bool> FuseEpilogues(Graph& graph);

}  // namespace kiln::graph
