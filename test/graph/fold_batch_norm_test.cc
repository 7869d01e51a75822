// Tests of FoldBatchNormIntoConv: which Conv -> BatchNormalization pairs
// become one Conv, the folded weights and bias against a hand computation,
// and the NotFoldedWhen... guards. Numerical equivalence through the kernels
// is checked in test/runtime/fold_batch_norm_run_test.cc.
#include "graph/fold_batch_norm.h"

#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln::graph {
namespace {

using testing::FindLive;
using testing::FloatAttr;
using testing::GraphBuilder;
using testing::IntAttr;
using testing::MakeTensor;
using testing::ToVector;

ShapeInfo F(const Dims& dims) { return ShapeInfo::FromDims(dims); }

void Typed(GraphBuilder& b, NodeId node, const Dims& dims) {
  Value& v = b.graph().value(b.Out(node));
  v.dtype = DType::kFloat32;
  v.shape = F(dims);
}

// x:[1,1,2,3] -> Conv(W:[2,1,1,2], B) -> BatchNormalization -> y
// The numbers make every folded value exact in float:
//   a  = scale / sqrt(var + eps) = {2 / sqrt(4), 2 / sqrt(16)} = {1, 0.5}
//   W' = {1, 2, 3 * 0.5, 4 * 0.5}                            = {1, 2, 1.5, 2}
//   B' = (B - mean) * a + bias = {(1 - 1) * 1 + 0.5, (-1 - 3) * 0.5 + 1}
//                                                            = {0.5, -1}
// Without B: B' = {-1 * 1 + 0.5, -3 * 0.5 + 1}               = {-0.5, -0.5}
struct ConvBn {
  GraphBuilder b;
  ValueId x, w, conv_bias, scale, shift, mean, var;
  NodeId conv, bn;

  explicit ConvBn(bool with_bias = true, int opset = 15, std::map<std::string, Attribute> bn_attrs = {}) : b(opset) {
    x = b.Input("x", DType::kFloat32, F({1, 1, 2, 3}));
    w = b.Constant("w", MakeTensor<float>({2, 1, 1, 2}, {1, 2, 3, 4}));
    conv_bias = b.Constant("cb", MakeTensor<float>({2}, {1, -1}));
    scale = b.Constant("scale", MakeTensor<float>({2}, {2, 2}));
    shift = b.Constant("shift", MakeTensor<float>({2}, {0.5f, 1}));
    mean = b.Constant("mean", MakeTensor<float>({2}, {1, 3}));
    var = b.Constant("var", MakeTensor<float>({2}, {3, 15}));
    std::vector<ValueId> conv_inputs = {x, w};
    if (with_bias) conv_inputs.push_back(conv_bias);
    conv = b.Op("Conv", conv_inputs, {"c"}, {{"strides", testing::IntsAttr({1, 1})}}, "conv");
    Typed(b, conv, {1, 2, 2, 2});
    bn_attrs.emplace("epsilon", FloatAttr(1.0f));
    bn = b.Op("BatchNormalization", {b.Out(conv), scale, shift, mean, var}, {"y"}, std::move(bn_attrs), "bn");
    Typed(b, bn, {1, 2, 2, 2});
    b.Output(b.Out(bn));
  }

  Graph& g() { return b.graph(); }
};

TEST(FoldBatchNormTest, ConvBnBecomesOneConvWithFoldedWeights) {
  ConvBn t;
  Graph& g = t.g();
  const ValueId y = t.b.Out(t.bn);
  ASSERT_EQ(g.num_live_nodes(), 2u);
  auto changed = FoldBatchNormIntoConv(g);
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(g.num_live_nodes(), 1u);
  ASSERT_TRUE(g.Validate().ok());
  EXPECT_EQ(FindLive(g, "BatchNormalization"), kNoNode);

  const NodeId id = FindLive(g, "Conv");
  ASSERT_NE(id, kNoNode);
  const Node& n = g.node(id);
  EXPECT_EQ(n.domain, "");
  EXPECT_EQ(n.name, "conv");
  EXPECT_EQ(*n.GetInts("strides"), (std::vector<int64_t>{1, 1}));
  ASSERT_EQ(n.inputs.size(), 3u);
  EXPECT_EQ(n.inputs[0], t.x);
  ASSERT_EQ(n.outputs.size(), 1u);
  EXPECT_EQ(n.outputs[0], y);
  EXPECT_EQ(g.outputs()[0], y);

  const Value& w = g.value(n.inputs[1]);
  ASSERT_TRUE(w.constant.has_value());
  EXPECT_EQ(w.dtype, DType::kFloat32);
  EXPECT_EQ(w.constant->dims(), (Dims{2, 1, 1, 2}));
  EXPECT_EQ(ToVector<float>(*w.constant), (std::vector<float>{1, 2, 1.5f, 2}));
  const Value& bias = g.value(n.inputs[2]);
  ASSERT_TRUE(bias.constant.has_value());
  EXPECT_EQ(bias.constant->dims(), (Dims{2}));
  EXPECT_EQ(ToVector<float>(*bias.constant), (std::vector<float>{0.5f, -1}));
}

TEST(FoldBatchNormTest, ConvWithoutBiasGetsOne) {
  ConvBn t(/*with_bias=*/false);
  ASSERT_TRUE(*FoldBatchNormIntoConv(t.g()));
  const Node& n = t.g().node(FindLive(t.g(), "Conv"));
  ASSERT_EQ(n.inputs.size(), 3u);
  EXPECT_EQ(ToVector<float>(*t.g().value(n.inputs[1]).constant), (std::vector<float>{1, 2, 1.5f, 2}));
  EXPECT_EQ(ToVector<float>(*t.g().value(n.inputs[2]).constant), (std::vector<float>{-0.5f, -0.5f}));
}

TEST(FoldBatchNormTest, SharedInitializersAreNotModified) {
  ConvBn t;
  // A second Conv reads the same W and B: they must keep their values.
  NodeId other = t.b.Op("Conv", {t.x, t.w, t.conv_bias}, {"other"});
  t.b.Output(t.b.Out(other));
  ASSERT_TRUE(*FoldBatchNormIntoConv(t.g()));
  EXPECT_EQ(t.g().num_live_nodes(), 2u);
  EXPECT_EQ(ToVector<float>(*t.g().value(t.w).constant), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(ToVector<float>(*t.g().value(t.conv_bias).constant), (std::vector<float>{1, -1}));
  EXPECT_EQ(t.g().node(other).inputs[1], t.w);
  ASSERT_TRUE(t.g().Validate().ok());
}

TEST(FoldBatchNormTest, Opset9WithoutTrainingAttributesFolds) {
  ConvBn t(/*with_bias=*/true, /*opset=*/9);
  ASSERT_TRUE(*FoldBatchNormIntoConv(t.g()));
  EXPECT_EQ(t.g().num_live_nodes(), 1u);
}

TEST(FoldBatchNormTest, NotFoldedWhenBnNotAfterConv) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, F({1, 2, 2, 2}));
  ValueId p = b.Constant("p", MakeTensor<float>({2}, {1, 1}));
  NodeId relu = b.Op("Relu", {x}, {"r"});
  Typed(b, relu, {1, 2, 2, 2});
  NodeId bn = b.Op("BatchNormalization", {b.Out(relu), p, p, p, p}, {"y"});
  b.Output(b.Out(bn));
  ASSERT_FALSE(*FoldBatchNormIntoConv(b.graph()));
  EXPECT_EQ(b.graph().num_live_nodes(), 2u);

  // A BN reading a graph input directly has no producer at all.
  GraphBuilder b2;
  ValueId x2 = b2.Input("x", DType::kFloat32, F({1, 2, 2, 2}));
  ValueId p2 = b2.Constant("p", MakeTensor<float>({2}, {1, 1}));
  b2.Output(b2.Out(b2.Op("BatchNormalization", {x2, p2, p2, p2, p2}, {"y"})));
  ASSERT_FALSE(*FoldBatchNormIntoConv(b2.graph()));
}

TEST(FoldBatchNormTest, NotFoldedWhenConvOutputUsedTwice) {
  ConvBn t;
  t.b.Op("Neg", {t.b.Out(t.conv)}, {"other"});
  t.b.Output(t.g().FindValue("other").value());
  ASSERT_FALSE(*FoldBatchNormIntoConv(t.g()));
  EXPECT_EQ(t.g().num_live_nodes(), 3u);
}

TEST(FoldBatchNormTest, NotFoldedWhenConvOutputIsGraphOutput) {
  ConvBn t;
  t.b.Output(t.b.Out(t.conv));
  ASSERT_FALSE(*FoldBatchNormIntoConv(t.g()));
  EXPECT_EQ(t.g().num_live_nodes(), 2u);
}

TEST(FoldBatchNormTest, NotFoldedWhenMeanIsNotConstant) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, F({1, 1, 2, 2}));
  ValueId mean = b.Input("mean", DType::kFloat32, F({2}));
  ValueId w = b.Constant("w", MakeTensor<float>({2, 1, 1, 1}, {1, 1}));
  ValueId p = b.Constant("p", MakeTensor<float>({2}, {1, 1}));
  NodeId conv = b.Op("Conv", {x, w}, {"c"});
  Typed(b, conv, {1, 2, 2, 2});
  b.Output(b.Out(b.Op("BatchNormalization", {b.Out(conv), p, p, mean, p}, {"y"})));
  ASSERT_FALSE(*FoldBatchNormIntoConv(b.graph()));
  EXPECT_EQ(b.graph().num_live_nodes(), 2u);
}

TEST(FoldBatchNormTest, NotFoldedWhenWeightIsNotConstant) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, F({1, 1, 2, 2}));
  ValueId w = b.Input("w", DType::kFloat32, F({2, 1, 1, 1}));
  ValueId p = b.Constant("p", MakeTensor<float>({2}, {1, 1}));
  NodeId conv = b.Op("Conv", {x, w}, {"c"});
  Typed(b, conv, {1, 2, 2, 2});
  b.Output(b.Out(b.Op("BatchNormalization", {b.Out(conv), p, p, p, p}, {"y"})));
  ASSERT_FALSE(*FoldBatchNormIntoConv(b.graph()));
}

TEST(FoldBatchNormTest, NotFoldedInTrainingMode) {
  ConvBn t(/*with_bias=*/true, /*opset=*/15, {{"training_mode", IntAttr(1)}});
  ASSERT_FALSE(*FoldBatchNormIntoConv(t.g()));
  EXPECT_EQ(t.g().num_live_nodes(), 2u);
}

TEST(FoldBatchNormTest, NotFoldedWhenTrainingOutputsPresent) {
  ConvBn t(/*with_bias=*/true, /*opset=*/9);
  // Rebuild the BN with its running-mean output listed.
  Node bn = t.g().node(t.bn);
  t.g().RemoveNode(t.bn);
  bn.outputs.push_back(t.b.NewValue("running_mean"));
  ASSERT_TRUE(t.g().AddNode(std::move(bn)).ok());
  ASSERT_FALSE(*FoldBatchNormIntoConv(t.g()));
}

TEST(FoldBatchNormTest, NotFoldedWhenSpatialIsZero) {
  ConvBn t(/*with_bias=*/true, /*opset=*/7, {{"spatial", IntAttr(0)}});
  ASSERT_FALSE(*FoldBatchNormIntoConv(t.g()));
}

TEST(FoldBatchNormTest, NotFoldedBeforeOpset7) {
  ConvBn t(/*with_bias=*/true, /*opset=*/6);
  ASSERT_FALSE(*FoldBatchNormIntoConv(t.g()));
}

TEST(FoldBatchNormTest, NotFoldedWhenStatisticsHaveWrongShape) {
  ConvBn t;
  t.g().value(t.var).constant = MakeTensor<float>({1}, {3});
  ASSERT_FALSE(*FoldBatchNormIntoConv(t.g()));
}

TEST(FoldBatchNormTest, NotFoldedWhenNotFloat32) {
  ConvBn t;
  t.g().value(t.b.Out(t.conv)).dtype = DType::kFloat64;
  ASSERT_FALSE(*FoldBatchNormIntoConv(t.g()));
}

TEST(FoldBatchNormTest, NotFoldedWhenFactorIsNotFinite) {
  // var + eps = 0: the BN kernel's division by zero stays where it is.
  ConvBn t;
  t.g().value(t.var).constant = MakeTensor<float>({2}, {-1, 15});
  ASSERT_FALSE(*FoldBatchNormIntoConv(t.g()));
}

}  // namespace
}  // namespace kiln::graph
