// The activation epilogue of kiln's fused ops (FusedConv, FusedMatMul in
// domain "kiln", written by graph/fuse_epilogues.cc): parsed once from the
// node's "activation", "activation_alpha" and "activation_beta" attributes,
// applied as oneDNN post-ops on the primitive (so the activation runs while
// the output tile is still in cache), or by a plain loop on the paths that
// do not go through oneDNN.
#pragma once

#include <cstdint>

#include <oneapi/dnnl/dnnl.hpp>

#include "graph/graph.h"
#include "kernels/kernel.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::kernels {

enum class Activation { kNone, kRelu, kLeakyRelu, kClip, kSigmoid, kTanh, kHardSwish, kHardSigmoid, kElu, kGeluErf };

struct Epilogue {
  Activation activation = Activation::kNone;
  // LeakyRelu/Elu: alpha. Clip: [alpha, beta] = [min, max]. HardSigmoid:
  // alpha * x + beta, clamped to [0, 1].
  float alpha = 0.0f;
  float beta = 0.0f;

  bool empty() const { return activation == Activation::kNone; }
  // Appends the activation's eltwise post-ops (none when empty). May throw
  // dnnl::error.
  void AppendPostOps(dnnl::post_ops& ops) const;
  // Applies the activation in place to data[0, n).
  void Apply(float* data, int64_t n) const;
  // data[i] = activation(data[i] + residual[i]) for i in [0, n), in one
  // pass spread over ctx's threads; no residual when `residual` is null.
  // For kernels whose primitive cannot take the residual as a post-op.
  void ApplyWithResidual(const KernelContext& ctx, float* data, const float* residual, int64_t n) const;
};

// Appends the residual add (kiln.FusedConv/FusedMatMul input 3, see
// graph/fuse_epilogues.h) as a binary_add post-op whose src1 is a full
// tensor of `desc`, and returns the execution argument that src1 is passed
// as. Append it before the activation's post-ops: ONNX adds the residual
// first. May throw dnnl::error.
int AppendResidualPostOp(dnnl::post_ops& ops, const dnnl::memory::desc& desc);

// data[i] += residual[i] for i in [0, n): the residual add on the paths that
// do not go through oneDNN.
void AddResidual(float* data, const float* residual, int64_t n);

// Checks the residual input of a fused node: float32 with exactly the
// output's dims (the fusion only fuses residuals that need no broadcasting).
Status CheckResidual(const char* op, const Tensor& residual, const Dims& out_dims);

// Reads the epilogue attributes of a fused node; an absent "activation"
// means none. Unsupported for an activation name kiln does not fuse.
StatusOr<Epilogue> ParseEpilogue(const graph::Node& node, const char* op);

}  // namespace kiln::kernels
