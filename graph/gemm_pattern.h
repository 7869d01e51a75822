// The matrix products the JIT compiles into GEMM regions: MatMul, Gemm and
// kiln.FusedMatMul (graph/fuse_epilogues.h) whose right-hand side is a
// constant 2-D weight, and channels-last 1x1 convolutions (unit strides, no
// padding, one group; graph/channels_last.h), which are GEMMs over pixels. The weight is what makes a product worth a
// compile: it is packed once into the generated kernel's layout, and N and K become compile-time constants.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "graph/graph.h"

namespace kiln::graph {

// A fused node's activation as graph/fuse_epilogues.h writes it: the ONNX
// op name ("" for none) and its parameters.
struct EpilogueActivation {
  std::string name;
  float alpha = 0.0f;
  float beta = 0.0f;
};

// `node`'s fused activation, or nullopt when its attributes do not read or
// name an activation the compute kernels' epilogue lacks.
std::optional<EpilogueActivation> ReadEpilogueActivation(const Node& node);

// Y = act(alpha * A * B + beta * bias + residual), with A [..., K]
// (rank >= 2; its leading dims flatten into M), B a constant [K, N] (or its
// transpose [N, K] when `weight_transposed`; a 1x1 convolution's
// [N, K, 1, 1] is that in memory), bias a constant of N elements
// ([N] or [1, N]) and residual exactly Y's shape.
struct GemmPattern {
  ValueId a = kNoValue;
  ValueId weight = kNoValue;
  bool weight_transposed = false;
  ValueId bias = kNoValue;      // optional
  ValueId residual = kNoValue;  // optional
  float alpha = 1.0f;
  float beta = 1.0f;  // the bias's scale (Gemm's beta)
  EpilogueActivation activation;
  int64_t k = 0;
  int64_t n = 0;
};

// The GEMM `node` computes, or nullopt when it is not one the JIT compiles:
// float32 throughout, a constant 2-D weight, A of known rank >= 2 (Gemm:
// rank 2 and transA = 0), a constant bias of N elements if any, and an
// activation the GEMM epilogue supports.
std::optional<GemmPattern> AsGemm(const Graph& graph, const Node& node);

}  // namespace kiln::graph
