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
#include "kiln/status.h"

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
};

// Reads the epilogue attributes of a fused node; an absent "activation"
// means none. Unsupported for an activation name kiln does not fuse.
StatusOr<Epilogue> ParseEpilogue(const graph::Node& node, const char* op);

}  // namespace kiln::kernels
