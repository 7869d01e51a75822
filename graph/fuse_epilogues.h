// Epilogue fusion: folds the bias add, the residual add and the activation
// that follow a convolution or a matrix product into that node, so the
// kernel applies them (as oneDNN post-ops) while each output tile is still
// in cache, instead of more passes over the whole output in memory.
//
// Rewrites, when every guard below holds:
//   Conv -> [Add(per-channel constant)] -> [Add(R)] -> [activation]       => kiln.FusedConv
//   MatMul -> [Add(constant [N] or [1, N])] -> [Add(R)] -> [activation]  => kiln.FusedMatMul
//   Gemm -> [Add(constant [N] or [1, N])] -> [Add(R)] -> [activation]    => kiln.FusedMatMul
// with at least one of the bracketed steps present. activation is one of
// Relu, LeakyRelu, Clip (constant min/max), Sigmoid, Tanh, HardSwish,
// HardSigmoid, Elu, Gelu (erf form). R is a residual (the identity branch
// of a ResNet block, the skip connection of a transformer layer): a
// non-constant float32 operand, on either side of its Add, whose
// statically known shape is exactly the Add's other operand's (no
// broadcasting). The kernels keep ONNX's order: ((base + bias) + R), then
// the activation.
//
// The fused node (domain "kiln", opset 1) keeps the original node's name,
// inputs and attributes and adds:
//   - FusedConv: the Add's bias folded into input 2 (B), as [M];
//   - FusedMatMul from MatMul: the bias as input 2, as [N];
//   - FusedMatMul from Gemm: the bias folded into C (beta * C + bias, with
//     beta then 1); it always carries transA, transB, alpha and beta, which
//     is how the kernel tells a fused Gemm from a fused MatMul;
//   - the residual R, when there is one, as input kFusedResidualInput (3)
//     of either op, after the optional input 2 (kNoValue when absent);
//   - "activation" (the ONNX op name) with "activation_alpha" and
//     "activation_beta" (LeakyRelu/Elu alpha; Clip min/max; HardSigmoid
//     alpha/beta), when there is an activation.
// Guards: every intermediate value is float32, has exactly one use and is
// not a graph output; the bias (and Clip's min/max) are constants.
#pragma once

#include <cstddef>

#include "graph/graph.h"
#include "kiln/status.h"

namespace kiln::graph {

inline constexpr const char* kKilnDomain = "kiln";

// The input of kiln.FusedConv and kiln.FusedMatMul that holds the residual
// (after X/A, W/B and the bias or C).
inline constexpr size_t kFusedResidualInput = 3;

// Returns whether anything was fused.
StatusOr<bool> FuseEpilogues(Graph& graph);

}  // namespace kiln::graph
