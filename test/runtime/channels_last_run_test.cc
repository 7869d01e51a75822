// Channels-last islands end to end (graph/channels_last.h): CNN-shaped
// models loaded with ChannelsLast::kOn must have NHWC convolutions and
// pools with Transposes only at the island's edges, and give the outputs of
// the same model loaded NCHW and of the unrewritten graph run node by node,
// in the interpreter and in the JIT tier (whose elementwise regions then
// run on NHWC shapes).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "graph/channels_last.h"
#include "kiln/session.h"
#include "reference_run_util.h"
#include "runtime/model_internal.h"
#include "session_check_util.h"
#include "test/model_builder.h"
#include "test/tensors.h"
#include "test/tolerance.h"

namespace kiln {
namespace {

using testing::ElementCount;
using testing::OnnxModelBuilder;
using testing::RandomFloats;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

struct LiveOps {
  int transposes = 0;
  int nhwc_convs = 0;
  int nchw_convs = 0;
  int kiln_pools = 0;
};

LiveOps CountOps(const graph::Graph& g) {
  LiveOps ops;
  for (size_t i = 0; i < g.num_nodes(); ++i) {
    const graph::Node& n = g.node(static_cast<graph::NodeId>(i));
    if (n.dead) continue;
    ops.transposes += n.op_type == "Transpose";
    const bool conv = n.op_type == "Conv" || n.op_type == "FusedConv";
    const bool nhwc = n.FindAttribute(graph::kChannelsLastAttr) != nullptr;
    ops.nhwc_convs += conv && nhwc;
    ops.nchw_convs += conv && !nhwc;
    ops.kiln_pools += n.domain == "kiln" && n.op_type.find("Pool") != std::string::npos;
  }
  return ops;
}

std::vector<std::vector<float>> RunAll(const std::shared_ptr<const Model>& model, TierPolicy tier, int threads,
                                       const std::vector<NamedTensor>& inputs) {
  SessionOptions options;
  options.tier = tier;
  options.intra_op_threads = threads;
  auto session = Session::Create(model, options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  if (!session.ok()) return {};
  std::vector<std::vector<float>> result;
  // Twice: the JIT tier compiles on the first call and serves the second.
  for (int run = 0; run < 2; ++run) {
    auto out = (*session)->Run(inputs);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    if (!out.ok()) return {};
    result.clear();
    for (const NamedTensor& t : *out) result.push_back(testing::ToVector<float>(t.tensor));
  }
  return result;
}

// Loads `b` both ways, checks the channels-last graph's structure, and
// compares every output of every (tier, threads) run with the NCHW
// interpreter's, and the first output with the node-by-node reference.
void ExpectIslandMatches(const OnnxModelBuilder& b, const std::vector<NamedTensor>& inputs, const LiveOps& expected) {
  const std::string bytes = b.Serialize();
  std::shared_ptr<const Model> nchw = testing::LoadWithLayout(bytes, ChannelsLast::kOff);
  std::shared_ptr<const Model> nhwc = testing::LoadWithLayout(bytes, ChannelsLast::kOn);
  ASSERT_TRUE(nchw && nhwc);
  EXPECT_EQ(CountOps(ModelGraph(*nchw)).nhwc_convs, 0);
  const LiveOps ops = CountOps(ModelGraph(*nhwc));
  EXPECT_EQ(ops.transposes, expected.transposes);
  EXPECT_EQ(ops.nhwc_convs, expected.nhwc_convs);
  EXPECT_EQ(ops.nchw_convs, expected.nchw_convs);
  EXPECT_EQ(ops.kiln_pools, expected.kiln_pools);
  // The caller sees the model's own NCHW signature either way.
  ASSERT_EQ(nhwc->outputs().size(), nchw->outputs().size());
  for (size_t i = 0; i < nhwc->outputs().size(); ++i) {
    EXPECT_EQ(nhwc->outputs()[i].name, nchw->outputs()[i].name);
  }

  const std::vector<std::vector<float>> expected_out = RunAll(nchw, TierPolicy::kInterpreter, 1, inputs);
  ASSERT_FALSE(expected_out.empty());
  std::map<std::string, Tensor> by_name;
  for (const NamedTensor& t : inputs) by_name.emplace(t.name, t.tensor);
  auto reference = testing::RunUnoptimizedReference(bytes, by_name);
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  testing::ExpectNearScaled(expected_out[0], testing::ToVector<float>(*reference), 1e-5);
  for (TierPolicy tier : {TierPolicy::kInterpreter, TierPolicy::kJit}) {
    for (int threads : {1, 2}) {
      SCOPED_TRACE(std::string(TierPolicyName(tier)) + ", " + std::to_string(threads) + " threads");
      const std::vector<std::vector<float>> got = RunAll(nhwc, tier, threads, inputs);
      ASSERT_EQ(got.size(), expected_out.size());
      for (size_t i = 0; i < got.size(); ++i) testing::ExpectNearScaled(got[i], expected_out[i], 1e-5);
    }
  }
}

onnx::NodeProto& Conv(OnnxModelBuilder& b, const std::string& x, const std::string& y, int64_t cin, int64_t cout,
                      int64_t k, int64_t stride, int64_t group, unsigned seed) {
  const std::string w = y + "_w", bias = y + "_b";
  b.FloatInit(w, {cout, cin / group, k, k}, RandomFloats(cout * (cin / group) * k * k, seed, -0.4f, 0.4f));
  b.FloatInit(bias, {cout}, RandomFloats(cout, seed + 1, -0.2f, 0.2f));
  onnx::NodeProto& n = b.Node("Conv", {x, w, bias}, {y});
  OnnxModelBuilder::IntsAttr(n, "pads", {k / 2, k / 2, k / 2, k / 2});
  OnnxModelBuilder::IntsAttr(n, "strides", {stride, stride});
  if (group != 1) OnnxModelBuilder::IntAttr(n, "group", group);
  return n;
}

std::vector<NamedTensor> Inputs(const std::map<std::string, Dims>& dims, std::vector<std::vector<float>>& storage) {
  std::vector<NamedTensor> inputs;
  unsigned seed = 11;
  for (const auto& [name, d] : dims) {
    storage.push_back(RandomFloats(ElementCount(d), seed++, -2.0f, 2.0f));
    inputs.push_back({name, Tensor::View(DType::kFloat32, d, storage.back().data())});
  }
  return inputs;
}

// A ResNet stem and block on odd sizes: Conv/2 -> Relu -> MaxPool (ceil
// mode) -> Conv -> Add(residual) -> Relu -> AveragePool (counting pads) ->
// 1x1 Conv -> GlobalAveragePool -> Flatten. One island: one Transpose in,
// one out (after the global pool), four NHWC convs and three pools.
TEST(ChannelsLastRunTest, ResNetBlockIsOneIsland) {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {1, 3, 17, 19}).Output("y");
  Conv(b, "x", "c1", 3, 8, 3, 2, 1, 1);
  b.Node("Relu", {"c1"}, {"r1"});
  onnx::NodeProto& pool = b.Node("MaxPool", {"r1"}, {"p1"});
  OnnxModelBuilder::IntsAttr(pool, "kernel_shape", {3, 3});
  OnnxModelBuilder::IntsAttr(pool, "strides", {2, 2});
  OnnxModelBuilder::IntsAttr(pool, "pads", {1, 1, 1, 1});
  OnnxModelBuilder::IntAttr(pool, "ceil_mode", 1);
  Conv(b, "p1", "c2", 8, 8, 3, 1, 1, 3);
  b.Node("Add", {"c2", "p1"}, {"s2"});
  b.Node("Relu", {"s2"}, {"r2"});
  onnx::NodeProto& avg = b.Node("AveragePool", {"r2"}, {"a2"});
  OnnxModelBuilder::IntsAttr(avg, "kernel_shape", {2, 2});
  OnnxModelBuilder::IntsAttr(avg, "pads", {1, 1, 1, 1});
  OnnxModelBuilder::IntAttr(avg, "count_include_pad", 1);
  Conv(b, "a2", "c3", 8, 16, 1, 1, 1, 5);
  Conv(b, "c3", "c4", 16, 16, 3, 1, 1, 7);
  b.Node("GlobalAveragePool", {"c4"}, {"g"});
  onnx::NodeProto& flatten = b.Node("Flatten", {"g"}, {"y"});
  OnnxModelBuilder::IntAttr(flatten, "axis", 1);
  std::vector<std::vector<float>> storage;
  ExpectIslandMatches(b, Inputs({{"x", {1, 3, 17, 19}}}, storage),
                      LiveOps{.transposes = 2, .nhwc_convs = 4, .nchw_convs = 0, .kiln_pools = 3});
}

// MobileNet's inverted residual with squeeze-excite, batch 2: depthwise
// Conv -> HardSwish -> GAP -> 1x1 -> Relu -> 1x1 -> HardSigmoid ->
// Mul(scale, features) -> Add(constant [C, 1, 1]) -> 1x1 Conv. The
// HardSwish output is also a graph output (an island value read outside),
// and the per-channel constant is permuted at load time.
TEST(ChannelsLastRunTest, SqueezeExciteBlockWithInnerGraphOutput) {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {2, 8, 10, 10}).Output("y").Output("features");
  Conv(b, "x", "dw", 8, 8, 3, 1, 8, 1);
  b.Node("HardSwish", {"dw"}, {"features"});
  b.Node("GlobalAveragePool", {"features"}, {"squeezed"});
  Conv(b, "squeezed", "fc1", 8, 4, 1, 1, 1, 3);
  b.Node("Relu", {"fc1"}, {"fc1r"});
  Conv(b, "fc1r", "fc2", 4, 8, 1, 1, 1, 5);
  onnx::NodeProto& hs = b.Node("HardSigmoid", {"fc2"}, {"scale"});
  OnnxModelBuilder::FloatAttr(hs, "alpha", 1.0f / 6.0f);
  b.Node("Mul", {"scale", "features"}, {"excited"});
  b.FloatInit("channel_shift", {8, 1, 1}, RandomFloats(8, 9, -1.0f, 1.0f));
  b.Node("Add", {"excited", "channel_shift"}, {"shifted"});
  Conv(b, "shifted", "y", 8, 4, 1, 1, 1, 7);
  std::vector<std::vector<float>> storage;
  // In: x. Out: y and features.
  ExpectIslandMatches(b, Inputs({{"x", {2, 8, 10, 10}}}, storage),
                      LiveOps{.transposes = 3, .nhwc_convs = 4, .nchw_convs = 0, .kiln_pools = 1});
}

// An operand computed outside the island (a second model input) is
// transposed in; GlobalMaxPool joins the island; the batch is symbolic.
TEST(ChannelsLastRunTest, OutsideOperandAndSymbolicBatch) {
  OnnxModelBuilder b;
  // 12 channels: GlobalMaxPool's NHWC loop takes a vector of 8 and a tail.
  b.Input("x", kFloat, {-1, 4, 7, 5}, {"N"}).Input("z", kFloat, {-1, 12, 7, 5}, {"N"}).Output("y");
  Conv(b, "x", "c1", 4, 12, 3, 1, 1, 1);
  b.Node("Mul", {"c1", "z"}, {"m"});
  Conv(b, "m", "c2", 12, 12, 3, 2, 1, 3);
  b.Node("GlobalMaxPool", {"c2"}, {"y"});
  std::vector<std::vector<float>> storage;
  ExpectIslandMatches(b, Inputs({{"x", {3, 4, 7, 5}}, {"z", {3, 12, 7, 5}}}, storage),
                      LiveOps{.transposes = 3, .nhwc_convs = 2, .nchw_convs = 0, .kiln_pools = 1});
}

// Without a convolution nothing changes: pools and elementwise ops alone
// are no island.
TEST(ChannelsLastRunTest, NoConvolutionNoIsland) {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {1, 4, 8, 8}).Output("y");
  b.Node("Relu", {"x"}, {"r"});
  onnx::NodeProto& pool = b.Node("MaxPool", {"r"}, {"y"});
  OnnxModelBuilder::IntsAttr(pool, "kernel_shape", {2, 2});
  std::vector<std::vector<float>> storage;
  ExpectIslandMatches(b, Inputs({{"x", {1, 4, 8, 8}}}, storage),
                      LiveOps{.transposes = 0, .nhwc_convs = 0, .nchw_convs = 0, .kiln_pools = 0});
}

}  // namespace
}  // namespace kiln
