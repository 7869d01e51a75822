// Depthwise-convolution regions end to end: channels-last depthwise Conv
// nodes (graph/depthwise_pattern.h) run through JIT-compiled code and must
// match the NCHW interpreter (oneDNN) on awkward geometry: channel counts
// off the vector width, strides, dilations, asymmetric and oversized
// padding, a one-pixel-wide image, batches, and every epilogue piece (bias,
// residual, activations).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kiln/session.h"
#include "test/model_builder.h"
#include "test/tensors.h"
#include "test/tolerance.h"

namespace kiln {
namespace {

using testing::OnnxModelBuilder;
using testing::RandomFloats;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

struct DepthwiseCase {
  Dims x;  // NCHW
  int64_t kernel;
  int64_t stride;
  int64_t dilation;
  std::vector<int64_t> pads;  // top, left, bottom, right
  bool bias;
  bool residual;
  const char* activation;  // "" for none; "Relu6" is Clip(0, 6)
};

Dims OutputDims(const DepthwiseCase& c) {
  const int64_t span = (c.kernel - 1) * c.dilation + 1;
  return {c.x[0], c.x[1], (c.x[2] + c.pads[0] + c.pads[2] - span) / c.stride + 1,
          (c.x[3] + c.pads[1] + c.pads[3] - span) / c.stride + 1};
}

std::unique_ptr<Session> MakeSession(const std::string& bytes, ChannelsLast layout, TierPolicy tier, int threads) {
  LoadOptions load;
  load.channels_last = layout;
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size(), "", load);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return nullptr;
  SessionOptions options;
  options.tier = tier;
  options.intra_op_threads = threads;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  auto session = Session::Create(*model, options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  return session.ok() ? std::move(session).value() : nullptr;
}

std::vector<float> RunOnce(Session& session, const std::vector<NamedTensor>& inputs) {
  auto out = session.Run(inputs);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? testing::ToVector<float>((*out)[0].tensor) : std::vector<float>{};
}

class DepthwiseShapes : public ::testing::TestWithParam<DepthwiseCase> {};

TEST_P(DepthwiseShapes, MatchNchwInterpreter) {
  const DepthwiseCase& c = GetParam();
  const int64_t channels = c.x[1];
  const Dims y = OutputDims(c);
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, c.x)
      .FloatInit("w", {channels, 1, c.kernel, c.kernel},
                 RandomFloats(static_cast<size_t>(channels * c.kernel * c.kernel), 41, -0.5f, 0.5f))
      .FloatInit("bias", {channels}, RandomFloats(static_cast<size_t>(channels), 42))
      .Output("y");
  if (c.residual) b.Input("r", kFloat, y);
  onnx::NodeProto& conv = b.Node(
      "Conv", c.bias ? std::vector<std::string>{"x", "w", "bias"} : std::vector<std::string>{"x", "w"}, {"conv"});
  OnnxModelBuilder::IntAttr(conv, "group", channels);
  OnnxModelBuilder::IntsAttr(conv, "strides", {c.stride, c.stride});
  OnnxModelBuilder::IntsAttr(conv, "dilations", {c.dilation, c.dilation});
  OnnxModelBuilder::IntsAttr(conv, "pads", c.pads);
  std::string last = "conv";
  if (c.residual) {
    b.Node("Add", {last, "r"}, {"summed"});
    last = "summed";
  }
  if (std::string(c.activation) == "Relu6") {
    b.FloatInit("lo", {}, {0.0f}).FloatInit("hi", {}, {6.0f});
    b.Node("Clip", {last, "lo", "hi"}, {"activated"});
    last = "activated";
  } else if (*c.activation != 0) {
    b.Node(c.activation, {last}, {"activated"});
    last = "activated";
  }
  b.Node("Identity", {last}, {"y"});
  const std::string bytes = b.Serialize();

  std::vector<float> x = RandomFloats(static_cast<size_t>(testing::ElementCount(c.x)), 43, -3.f, 3.f);
  std::vector<float> r = RandomFloats(static_cast<size_t>(testing::ElementCount(y)), 44);
  std::vector<NamedTensor> inputs = {{"x", Tensor::View(DType::kFloat32, c.x, x.data())}};
  if (c.residual) inputs.push_back({"r", Tensor::View(DType::kFloat32, y, r.data())});
  auto reference = MakeSession(bytes, ChannelsLast::kOff, TierPolicy::kInterpreter, 1);
  ASSERT_NE(reference, nullptr);
  const std::vector<float> expected = RunOnce(*reference, inputs);
  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    auto jit = MakeSession(bytes, ChannelsLast::kOn, TierPolicy::kJit, threads);
    ASSERT_NE(jit, nullptr);
    RunOnce(*jit, inputs);
    testing::ExpectNearScaled(RunOnce(*jit, inputs), expected, 1e-5);
    int depthwise = 0;
    for (const RegionStats& region : jit->stats().regions) {
      if (region.kind != "depthwise_conv") continue;
      ++depthwise;
      EXPECT_EQ(region.tier, "jit") << region.description;
      EXPECT_EQ(region.compiled_calls, 1) << region.description;
      EXPECT_GT(region.compiled_flops, 0) << region.description;
    }
    EXPECT_EQ(depthwise, 1);
  }
}

INSTANTIATE_TEST_SUITE_P(Geometry, DepthwiseShapes,
                         ::testing::Values(
                             // A partial vector of channels, a batch, HardSwish.
                             DepthwiseCase{{2, 13, 9, 11}, 3, 1, 1, {1, 1, 1, 1}, true, false, "HardSwish"},
                             // 5x5 stride 2 with a residual.
                             DepthwiseCase{{1, 37, 14, 13}, 5, 2, 1, {2, 2, 2, 2}, true, true, "Relu"},
                             // Whole vectors, dilation 2, no bias and no activation.
                             DepthwiseCase{{1, 16, 10, 10}, 3, 1, 2, {2, 2, 2, 2}, false, false, ""},
                             // Channels in a loop block and a tail; asymmetric padding.
                             DepthwiseCase{{1, 96, 8, 9}, 3, 2, 1, {0, 1, 1, 0}, true, false, "Relu6"},
                             // Many channels with a partial last vector over a small image.
                             DepthwiseCase{{1, 600, 7, 7}, 3, 1, 1, {1, 1, 1, 1}, true, true, "Sigmoid"},
                             // A one-pixel-wide image, and a window larger than the input.
                             DepthwiseCase{{1, 24, 5, 1}, 3, 1, 1, {1, 1, 1, 1}, true, false, "LeakyRelu"},
                             DepthwiseCase{{1, 8, 2, 2}, 5, 1, 1, {2, 2, 2, 2}, true, false, "Tanh"},
                             // A row length that is no multiple of the pixel tile.
                             DepthwiseCase{{1, 32, 3, 19}, 3, 1, 1, {1, 1, 1, 1}, true, false, "HardSigmoid"}));

TEST(DepthwiseRegion, OffWithTheOptionOrAMultiplier) {
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {1, 4, 6, 6})
      .FloatInit("w", {8, 1, 3, 3}, RandomFloats(72, 45))  // two filters per channel: not depthwise
      .Output("y");
  onnx::NodeProto& conv = b.Node("Conv", {"x", "w"}, {"y"});
  OnnxModelBuilder::IntAttr(conv, "group", 4);
  auto jit = MakeSession(b.Serialize(), ChannelsLast::kOn, TierPolicy::kJit, 1);
  ASSERT_NE(jit, nullptr);
  for (const RegionStats& region : jit->stats().regions) EXPECT_NE(region.kind, "depthwise_conv");
}

}  // namespace
}  // namespace kiln
