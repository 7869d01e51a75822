// The convolutions the JIT compiles into depthwise regions: channels-last
// (graph/channels_last.h) 2-D kiln.FusedConv nodes with one filter per
// channel (group = C = M, W a constant [C, 1, KH, KW]). Each output channel
// reads only its own input channel, so the work is memory-bound and the
// gain is in keeping a pixel's channels in vector registers across the
// taps and applying the epilogue there (MobileNet, EfficientNet, PP-OCR).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "graph/gemm_pattern.h"
#include "graph/graph.h"

namespace kiln::graph {

// Y[n, oh, ow, c] = act(sum over (kh, kw) of X[n, ih, iw, c] * W[c, 0, kh, kw]
//                       + bias[c] + residual[n, oh, ow, c]),
// ih = oh * stride_h - pad_top + kh * dilation_h (taps outside X add 0),
// likewise iw. X and Y are NHWC.
struct DepthwisePattern {
  ValueId x = kNoValue;
  ValueId weight = kNoValue;
  ValueId bias = kNoValue;      // optional, a constant [C]
  ValueId residual = kNoValue;  // optional, Y's shape
  int64_t channels = 0;
  std::array<int64_t, 2> kernel{};     // KH, KW
  std::array<int64_t, 2> strides{};    // along H, W
  std::array<int64_t, 2> dilations{};  // along H, W
  std::array<int64_t, 4> pads{};       // top, left, bottom, right
  EpilogueActivation activation;
};

// The depthwise convolution `node` computes, or nullopt when it is not one
// the JIT compiles: float32, channels-last, explicit padding (auto_pad
// NOTSET or VALID), a constant weight and bias, an activation the epilogue
// supports.
std::optional<DepthwisePattern> AsDepthwiseConv(const Graph& graph, const Node& node);

// Output height and width of `p` on an input of height `in_h`, width `in_w`
// (each < 1 when the window does not fit).
std::array<int64_t, 2> DepthwiseOutputSize(const DepthwisePattern& p, int64_t in_h, int64_t in_w);

}  // namespace kiln::graph
