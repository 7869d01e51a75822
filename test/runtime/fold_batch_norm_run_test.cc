// Batch-norm folding end to end: models with Conv -> BatchNormalization
// [-> Relu] run through kiln::Session (where the pipeline folds the BN into
// the Conv, and epilogue fusion then takes the Relu), and their outputs must
// match the unrewritten graph run node by node with its own kernels.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/session.h"
#include "reference_run_util.h"
#include "runtime/model_internal.h"
#include "session_check_util.h"
#include "test/model_builder.h"
#include "test/tensors.h"

namespace kiln {
namespace {

using testing::ElementCount;
using testing::OnnxModelBuilder;
using testing::RandomFloats;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

size_t CountLive(const graph::Graph& g, const std::string& op_type, const std::string& domain) {
  size_t n = 0;
  for (size_t i = 0; i < g.num_nodes(); ++i) {
    const graph::Node& node = g.node(static_cast<graph::NodeId>(i));
    n += !node.dead && node.op_type == op_type && node.domain == domain;
  }
  return n;
}

// Loads `b`, checks that the pipeline left `expected_nodes` live nodes, one
// of them `op` (in `domain`), and no BatchNormalization; then runs it with
// 1 and 2 threads and compares with the unrewritten reference.
void ExpectFoldedMatchesReference(OnnxModelBuilder& b, const Dims& input_dims, const std::string& op,
                                  const std::string& domain, size_t expected_nodes) {
  const std::string bytes = b.Serialize();
  // NCHW throughout, so that the count is the same on every host (the
  // channels-last run below adds Transposes at the edges).
  std::shared_ptr<const Model> model = testing::LoadWithLayout(bytes, ChannelsLast::kOff);
  ASSERT_NE(model, nullptr);
  const graph::Graph& g = ModelGraph(*model);
  EXPECT_EQ(g.num_live_nodes(), expected_nodes);
  EXPECT_EQ(CountLive(g, "BatchNormalization", ""), 0u);
  EXPECT_GE(CountLive(g, op, domain), 1u) << "no live " << domain << "." << op;

  std::vector<float> x = RandomFloats(ElementCount(input_dims), 1, -2.0f, 2.0f);
  Tensor input = Tensor::View(DType::kFloat32, input_dims, x.data());
  auto reference = testing::RunUnoptimizedReference(bytes, {{"x", input}});
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  testing::ExpectInterpretedMatches(model, input, *reference);
  testing::ExpectChannelsLastMatches(bytes, input, *reference);
}

// x -> Conv(w[, cb]) -> BatchNormalization -> [Relu] -> y, with `cout`
// output channels and `group` groups.
void BuildConvBn(OnnxModelBuilder& b, const Dims& x_dims, int64_t cout, int64_t group, bool conv_bias, bool relu) {
  const int64_t cin_per_group = x_dims[1] / group;
  b.Input("x", kFloat, x_dims)
      .FloatInit("w", {cout, cin_per_group, 3, 3}, RandomFloats(cout * cin_per_group * 9, 2, -0.5f, 0.5f))
      .FloatInit("cb", {cout}, RandomFloats(cout, 3))
      .FloatInit("gamma", {cout}, RandomFloats(cout, 4, 0.5f, 1.5f))
      .FloatInit("beta", {cout}, RandomFloats(cout, 5, -0.2f, 0.2f))
      .FloatInit("mean", {cout}, RandomFloats(cout, 6, -0.3f, 0.3f))
      .FloatInit("var", {cout}, RandomFloats(cout, 7, 0.5f, 1.5f))
      .Output("y");
  onnx::NodeProto& conv =
      b.Node("Conv", conv_bias ? std::vector<std::string>{"x", "w", "cb"} : std::vector<std::string>{"x", "w"}, {"c"});
  OnnxModelBuilder::IntsAttr(conv, "pads", {1, 1, 1, 1});
  OnnxModelBuilder::IntAttr(conv, "group", group);
  onnx::NodeProto& bn =
      b.Node("BatchNormalization", {"c", "gamma", "beta", "mean", "var"}, {relu ? std::string("n") : "y"});
  OnnxModelBuilder::FloatAttr(bn, "epsilon", 1e-3f);
  if (relu) b.Node("Relu", {"n"}, {"y"});
}

TEST(FoldBatchNormRunTest, ConvBnReluBecomesFusedConvAndMatchesUnfused) {
  for (int opset : {9, 13, 15}) {
    for (bool conv_bias : {false, true}) {
      SCOPED_TRACE("opset " + std::to_string(opset) + (conv_bias ? " with conv bias" : ""));
      OnnxModelBuilder b(opset);
      BuildConvBn(b, {2, 3, 9, 9}, 8, 1, conv_bias, /*relu=*/true);
      ExpectFoldedMatchesReference(b, {2, 3, 9, 9}, "FusedConv", "kiln", 1);
    }
  }
}

TEST(FoldBatchNormRunTest, ConvBnWithoutActivationStaysPlainConv) {
  OnnxModelBuilder b;
  BuildConvBn(b, {1, 4, 7, 7}, 6, 1, /*conv_bias=*/true, /*relu=*/false);
  ExpectFoldedMatchesReference(b, {1, 4, 7, 7}, "Conv", "", 1);
}

TEST(FoldBatchNormRunTest, GroupedConvBnRelu) {
  OnnxModelBuilder b;
  BuildConvBn(b, {1, 4, 8, 8}, 8, 2, /*conv_bias=*/false, /*relu=*/true);
  ExpectFoldedMatchesReference(b, {1, 4, 8, 8}, "FusedConv", "kiln", 1);
}

}  // namespace
}  // namespace kiln
