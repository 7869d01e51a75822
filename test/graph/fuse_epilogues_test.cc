// Tests of FuseEpilogues: which chains become one kiln.FusedConv /
// kiln.FusedMatMul node, what that node carries, and the NotFusedWhen...
// guards. Numerical equivalence is checked in
// test/runtime/fuse_epilogues_run_test.cc, which has the kernels.
#include "graph/fuse_epilogues.h"

#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln::graph {
namespace {

using testing::FloatAttr;
using testing::FindLive;
using testing::GraphBuilder;
using testing::IntsAttr;
using testing::MakeTensor;
using testing::ToVector;

ShapeInfo F(const Dims& dims) { return ShapeInfo::FromDims(dims); }

// Sets dtype and shape of a node output, as shape propagation would.
void Typed(GraphBuilder& b, NodeId node, const Dims& dims) {
  Value& v = b.graph().value(b.Out(node));
  v.dtype = DType::kFloat32;
  v.shape = F(dims);
}

// The single live node of `g` with op `op_type`, or kNoNode.

// x:[1,2,4,4] -> Conv(W:[3,2,3,3], pads 1) -> Add(bias:[1,3,1,1]) -> Relu -> y
struct ConvChain {
  GraphBuilder b;
  ValueId x, w, bias;
  NodeId conv, add, relu;

  explicit ConvChain(Dims bias_dims = {1, 3, 1, 1}) {
    x = b.Input("x", DType::kFloat32, F({1, 2, 4, 4}));
    w = b.Constant("w", MakeTensor<float>({3, 2, 3, 3}, std::vector<float>(54, 0.5f)));
    bias = b.Constant("bias", MakeTensor<float>(bias_dims, std::vector<float>(3, 0.0f)));
    for (int64_t i = 0; i < 3; ++i) b.graph().value(bias).constant->data<float>()[i] = static_cast<float>(i + 1);
    conv = b.Op("Conv", {x, w}, {"c"}, {{"pads", IntsAttr({1, 1, 1, 1})}, {"strides", IntsAttr({1, 1})}}, "conv");
    Typed(b, conv, {1, 3, 4, 4});
    add = b.Op("Add", {b.Out(conv), bias}, {"a"});
    Typed(b, add, {1, 3, 4, 4});
    relu = b.Op("Relu", {b.Out(add)}, {"y"});
    Typed(b, relu, {1, 3, 4, 4});
    b.Output(b.Out(relu));
  }
};

TEST(FuseEpiloguesTest, ConvAddReluBecomesOneFusedConv) {
  ConvChain t;
  Graph& g = t.b.graph();
  ASSERT_EQ(g.num_live_nodes(), 3u);
  auto changed = FuseEpilogues(g);
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(g.num_live_nodes(), 1u);
  ASSERT_TRUE(g.Validate().ok());

  const NodeId id = FindLive(g, "FusedConv");
  ASSERT_NE(id, kNoNode);
  const Node& n = g.node(id);
  EXPECT_EQ(n.domain, "kiln");
  EXPECT_EQ(n.opset, 1);
  EXPECT_EQ(n.name, "conv");
  EXPECT_EQ(*n.GetString("activation", ""), "Relu");
  EXPECT_EQ(*n.GetInts("pads"), (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(*n.GetInts("strides"), (std::vector<int64_t>{1, 1}));
  ASSERT_EQ(n.inputs.size(), 3u);
  EXPECT_EQ(n.inputs[0], t.x);
  EXPECT_EQ(n.inputs[1], t.w);
  const Value& bias = g.value(n.inputs[2]);
  ASSERT_TRUE(bias.constant.has_value());
  EXPECT_EQ(bias.constant->dims(), (Dims{3}));
  EXPECT_EQ(ToVector<float>(*bias.constant), (std::vector<float>{1, 2, 3}));
  ASSERT_EQ(n.outputs.size(), 1u);
  EXPECT_EQ(n.outputs[0], g.outputs()[0]);
}

TEST(FuseEpiloguesTest, ConvBiasAndAddBiasAreSummed) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, F({1, 1, 3, 3}));
  ValueId w = b.Constant("w", MakeTensor<float>({2, 1, 1, 1}, {1, 1}));
  ValueId cb = b.Constant("cb", MakeTensor<float>({2}, {10, 20}));
  ValueId ab = b.Constant("ab", MakeTensor<float>({2, 1, 1}, {1, 2}));
  NodeId conv = b.Op("Conv", {x, w, cb}, {"c"});
  Typed(b, conv, {1, 2, 3, 3});
  NodeId add = b.Op("Add", {ab, b.Out(conv)}, {"y"});  // bias first: Add commutes
  Typed(b, add, {1, 2, 3, 3});
  b.Output(b.Out(add));
  ASSERT_TRUE(*FuseEpilogues(b.graph()));
  const Node& n = b.graph().node(FindLive(b.graph(), "FusedConv"));
  EXPECT_EQ(n.FindAttribute("activation"), nullptr);
  EXPECT_EQ(ToVector<float>(*b.graph().value(n.inputs[2]).constant), (std::vector<float>{11, 22}));
}

TEST(FuseEpiloguesTest, ConvClipTakesConstantBounds) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, F({1, 1, 3, 3}));
  ValueId w = b.Constant("w", MakeTensor<float>({2, 1, 1, 1}, {1, 1}));
  ValueId lo = b.Constant("lo", MakeTensor<float>({}, {0}));
  ValueId hi = b.Constant("hi", MakeTensor<float>({}, {6}));
  NodeId conv = b.Op("Conv", {x, w}, {"c"});
  Typed(b, conv, {1, 2, 3, 3});
  NodeId clip = b.Op("Clip", {b.Out(conv), lo, hi}, {"y"});
  b.Output(b.Out(clip));
  ASSERT_TRUE(*FuseEpilogues(b.graph()));
  EXPECT_EQ(b.graph().num_live_nodes(), 1u);
  const Node& n = b.graph().node(FindLive(b.graph(), "FusedConv"));
  EXPECT_EQ(*n.GetString("activation", ""), "Clip");
  EXPECT_EQ(*n.GetFloat("activation_alpha", -1), 0.0f);
  EXPECT_EQ(*n.GetFloat("activation_beta", -1), 6.0f);
  EXPECT_EQ(n.inputs.size(), 2u);  // no bias added
}

TEST(FuseEpiloguesTest, MatMulAddLeakyReluBecomesFusedMatMul) {
  GraphBuilder b;
  ValueId a = b.Input("a", DType::kFloat32, F({2, 5, 4}));
  ValueId w = b.Constant("w", MakeTensor<float>({4, 3}, std::vector<float>(12, 1)));
  ValueId bias = b.Constant("bias", MakeTensor<float>({1, 3}, {1, 2, 3}));
  NodeId mm = b.Op("MatMul", {a, w}, {"m"}, {}, "mm");
  Typed(b, mm, {2, 5, 3});
  NodeId add = b.Op("Add", {b.Out(mm), bias}, {"s"});
  Typed(b, add, {2, 5, 3});
  NodeId act = b.Op("LeakyRelu", {b.Out(add)}, {"y"}, {{"alpha", FloatAttr(0.25f)}});
  b.Output(b.Out(act));
  ASSERT_TRUE(*FuseEpilogues(b.graph()));
  EXPECT_EQ(b.graph().num_live_nodes(), 1u);
  const Node& n = b.graph().node(FindLive(b.graph(), "FusedMatMul"));
  EXPECT_EQ(n.domain, "kiln");
  EXPECT_EQ(*n.GetString("activation", ""), "LeakyRelu");
  EXPECT_EQ(*n.GetFloat("activation_alpha", 0), 0.25f);
  EXPECT_EQ(n.FindAttribute("transA"), nullptr);  // a MatMul, not a Gemm
  ASSERT_EQ(n.inputs.size(), 3u);
  EXPECT_EQ(b.graph().value(n.inputs[2]).constant->dims(), (Dims{3}));
}

TEST(FuseEpiloguesTest, GemmAddFoldsBiasIntoC) {
  GraphBuilder b;
  ValueId a = b.Input("a", DType::kFloat32, F({2, 4}));
  ValueId w = b.Constant("w", MakeTensor<float>({3, 4}, std::vector<float>(12, 1)));
  ValueId c = b.Constant("c", MakeTensor<float>({3}, {1, 1, 1}));
  ValueId bias = b.Constant("bias", MakeTensor<float>({3}, {1, 2, 3}));
  NodeId gemm = b.Op("Gemm", {a, w, c}, {"g"}, {{"transB", testing::IntAttr(1)}, {"beta", FloatAttr(2)}});
  Typed(b, gemm, {2, 3});
  NodeId add = b.Op("Add", {b.Out(gemm), bias}, {"s"});
  Typed(b, add, {2, 3});
  NodeId act = b.Op("Tanh", {b.Out(add)}, {"y"});
  b.Output(b.Out(act));
  ASSERT_TRUE(*FuseEpilogues(b.graph()));
  EXPECT_EQ(b.graph().num_live_nodes(), 1u);
  const Node& n = b.graph().node(FindLive(b.graph(), "FusedMatMul"));
  EXPECT_EQ(*n.GetString("activation", ""), "Tanh");
  EXPECT_EQ(*n.GetInt("transA", -1), 0);
  EXPECT_EQ(*n.GetInt("transB", -1), 1);
  EXPECT_EQ(*n.GetFloat("alpha", -1), 1.0f);
  EXPECT_EQ(*n.GetFloat("beta", -1), 1.0f);  // folded into C
  EXPECT_EQ(ToVector<float>(*b.graph().value(n.inputs[2]).constant), (std::vector<float>{3, 4, 5}));
}

TEST(FuseEpiloguesTest, NotFusedWhenIntermediateUsedTwice) {
  ConvChain t;
  // A second use of the Add's result: it must stay materialised.
  t.b.Op("Neg", {t.b.Out(t.add)}, {"other"});
  t.b.Output(t.b.graph().FindValue("other").value());
  auto changed = FuseEpilogues(t.b.graph());
  ASSERT_TRUE(changed.ok());
  // Conv + Add still fuse (the Add's output is what stays); Relu does not.
  const NodeId fused = FindLive(t.b.graph(), "FusedConv");
  ASSERT_NE(fused, kNoNode);
  EXPECT_EQ(t.b.graph().node(fused).FindAttribute("activation"), nullptr);
  EXPECT_NE(FindLive(t.b.graph(), "Relu"), kNoNode);
  EXPECT_EQ(t.b.graph().node(fused).outputs[0], t.b.Out(t.add));
}

TEST(FuseEpiloguesTest, NotFusedWhenConvOutputUsedTwice) {
  ConvChain t;
  t.b.Op("Neg", {t.b.Out(t.conv)}, {"other"});
  t.b.Output(t.b.graph().FindValue("other").value());
  ASSERT_FALSE(*FuseEpilogues(t.b.graph()));
  EXPECT_EQ(t.b.graph().num_live_nodes(), 4u);
}

TEST(FuseEpiloguesTest, NotFusedWhenBiasIsNotConstant) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, F({1, 1, 3, 3}));
  ValueId bias = b.Input("bias", DType::kFloat32, F({1, 2, 1, 1}));
  ValueId w = b.Constant("w", MakeTensor<float>({2, 1, 1, 1}, {1, 1}));
  NodeId conv = b.Op("Conv", {x, w}, {"c"});
  Typed(b, conv, {1, 2, 3, 3});
  NodeId add = b.Op("Add", {b.Out(conv), bias}, {"a"});
  Typed(b, add, {1, 2, 3, 3});
  NodeId relu = b.Op("Relu", {b.Out(add)}, {"y"});
  b.Output(b.Out(relu));
  ASSERT_FALSE(*FuseEpilogues(b.graph()));
  EXPECT_EQ(b.graph().num_live_nodes(), 3u);
}

TEST(FuseEpiloguesTest, NotFusedWhenBiasIsNotPerChannel) {
  // [3] broadcasts along the last (width) axis of [1, 3, 4, 4], not the
  // channels.
  ConvChain t(/*bias_dims=*/{3});
  ASSERT_FALSE(*FuseEpilogues(t.b.graph()));
  EXPECT_EQ(t.b.graph().num_live_nodes(), 3u);
}

TEST(FuseEpiloguesTest, NotFusedWhenIntermediateIsGraphOutput) {
  ConvChain t;
  t.b.Output(t.b.Out(t.conv));
  ASSERT_FALSE(*FuseEpilogues(t.b.graph()));
  EXPECT_EQ(t.b.graph().num_live_nodes(), 3u);
}

TEST(FuseEpiloguesTest, NotFusedWhenActivationUnsupported) {
  GraphBuilder b;
  ValueId a = b.Input("a", DType::kFloat32, F({2, 4}));
  ValueId w = b.Constant("w", MakeTensor<float>({4, 3}, std::vector<float>(12, 1)));
  NodeId mm = b.Op("MatMul", {a, w}, {"m"});
  Typed(b, mm, {2, 3});
  NodeId act = b.Op("Softplus", {b.Out(mm)}, {"y"});
  b.Output(b.Out(act));
  ASSERT_FALSE(*FuseEpilogues(b.graph()));
  EXPECT_EQ(b.graph().num_live_nodes(), 2u);
}

TEST(FuseEpiloguesTest, NotFusedWhenClipBoundsAreComputed) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, F({1, 1, 3, 3}));
  ValueId hi = b.Input("hi", DType::kFloat32, F({}));
  ValueId w = b.Constant("w", MakeTensor<float>({2, 1, 1, 1}, {1, 1}));
  NodeId conv = b.Op("Conv", {x, w}, {"c"});
  Typed(b, conv, {1, 2, 3, 3});
  NodeId clip = b.Op("Clip", {b.Out(conv), kNoValue, hi}, {"y"});
  b.Output(b.Out(clip));
  ASSERT_FALSE(*FuseEpilogues(b.graph()));
}

TEST(FuseEpiloguesTest, NotFusedWhenNotFloat32) {
  ConvChain t;
  t.b.graph().value(t.b.Out(t.conv)).dtype = DType::kFloat64;
  ASSERT_FALSE(*FuseEpilogues(t.b.graph()));
}

}  // namespace
}  // namespace kiln::graph
