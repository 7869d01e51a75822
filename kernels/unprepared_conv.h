// A 2-D float32 convolution that needs no preparation: no oneDNN primitive
// to create and no weight reorder kept. It gathers windows of X (NCHW or
// NHWC) a block of output positions at a time and multiplies them with
// UnpackedSgemm by ONNX's [M, C/G, kH, kW] weight (for NHWC, permuted per
// call so that each tap's channels are copied as one run); pointwise
// convolutions multiply X as it is; depthwise convolutions run as a direct
// loop, over channel rows in NHWC. A Conv kernel computes with it while its primitive
// is still being built in the background (OpKernel::TakePreparation), so
// the first run does not wait for primitive creation; it is slower than
// oneDNN's kernels and not meant for steady state.
#pragma once

#include <cstdint>

#include "kernels/kernel.h"
#include "kernels/window_geometry.h"
#include "kiln/tensor.h"

namespace kiln::kernels {

// Y = conv(X, W) + bias, for X [N, C, H, W] (`x_nchw`, in NCHW order
// whatever the layout) stored NCHW or, with `channels_last`, NHWC; W
// [M, C/group, kH, kW]; Y in X's layout with `g.output` spatial sizes. The
// caller has checked the shapes; `bias` may be null. No activation or
// residual: the caller applies its epilogue to Y.
void UnpreparedConv2d(const KernelContext& ctx, const float* x, const Dims& x_nchw, bool channels_last, const float* w,
                      const Dims& w_dims, int64_t group, const float* bias, const WindowGeometry& g, float* y);

}  // namespace kiln::kernels
