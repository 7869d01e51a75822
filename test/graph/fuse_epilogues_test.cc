// Tests of FuseEpilogues: which chains become one kiln.FusedConv /
// kiln.FusedMatMul node, what that node carries, and the NotFusedWhen...
// guards. Numerical equivalence is checked in
// test/runtime/fuse_epilogues_run_test.cc, which has the kernels.
#include "graph/fuse_epilogues.h"

#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln::graph {
namespace {

using testing::FindLive;
using testing::FloatAttr;
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

// --- Residual add -------------------------------------------------------

// x:[1,2,4,4] -> Conv(W:[3,2,3,3], pads 1) -> [Add(bias:[1,3,1,1])] ->
// Add(r) -> [Relu] -> y, with r:[1,3,4,4] (or `r_dims`) a graph input.
// `residual_first` puts r as the Add's first operand.
struct ResidualConvChain {
  GraphBuilder b;
  ValueId x, w, bias = kNoValue, r;
  NodeId conv, bias_add = kNoNode, residual_add, relu = kNoNode;

  ResidualConvChain(bool with_bias, bool with_relu, bool residual_first, Dims r_dims = {1, 3, 4, 4}) {
    x = b.Input("x", DType::kFloat32, F({1, 2, 4, 4}));
    r = b.Input("r", DType::kFloat32, F(r_dims));
    w = b.Constant("w", MakeTensor<float>({3, 2, 3, 3}, std::vector<float>(54, 0.5f)));
    conv = b.Op("Conv", {x, w}, {"c"}, {{"pads", IntsAttr({1, 1, 1, 1})}}, "conv");
    Typed(b, conv, {1, 3, 4, 4});
    ValueId sum_in = b.Out(conv);
    if (with_bias) {
      bias = b.Constant("bias", MakeTensor<float>({1, 3, 1, 1}, {1, 2, 3}));
      bias_add = b.Op("Add", {sum_in, bias}, {"a"});
      Typed(b, bias_add, {1, 3, 4, 4});
      sum_in = b.Out(bias_add);
    }
    residual_add = b.Op("Add", residual_first ? std::vector<ValueId>{r, sum_in} : std::vector<ValueId>{sum_in, r},
                        {with_relu ? "s" : "y"});
    Typed(b, residual_add, {1, 3, 4, 4});
    ValueId out = b.Out(residual_add);
    if (with_relu) {
      relu = b.Op("Relu", {out}, {"y"});
      Typed(b, relu, {1, 3, 4, 4});
      out = b.Out(relu);
    }
    b.Output(out);
  }
};

TEST(FuseEpiloguesTest, ConvResidualAddFusesWithAndWithoutBiasAndActivation) {
  for (bool with_bias : {false, true}) {
    for (bool with_relu : {false, true}) {
      for (bool residual_first : {false, true}) {
        SCOPED_TRACE(::testing::Message()
                     << "bias " << with_bias << " relu " << with_relu << " residual first " << residual_first);
        ResidualConvChain t(with_bias, with_relu, residual_first);
        Graph& g = t.b.graph();
        auto changed = FuseEpilogues(g);
        ASSERT_TRUE(changed.ok()) << changed.status().ToString();
        EXPECT_TRUE(*changed);
        EXPECT_EQ(g.num_live_nodes(), 1u);
        ASSERT_TRUE(g.Validate().ok());
        const NodeId id = FindLive(g, "FusedConv");
        ASSERT_NE(id, kNoNode);
        const Node& n = g.node(id);
        ASSERT_EQ(n.inputs.size(), kFusedResidualInput + 1);
        EXPECT_EQ(n.inputs[0], t.x);
        EXPECT_EQ(n.inputs[1], t.w);
        EXPECT_EQ(n.inputs[kFusedResidualInput], t.r);
        if (with_bias) {
          ASSERT_NE(n.inputs[2], kNoValue);
          EXPECT_EQ(ToVector<float>(*g.value(n.inputs[2]).constant), (std::vector<float>{1, 2, 3}));
        } else {
          EXPECT_EQ(n.inputs[2], kNoValue);
        }
        if (with_relu) {
          EXPECT_EQ(*n.GetString("activation", ""), "Relu");
        } else {
          EXPECT_EQ(n.FindAttribute("activation"), nullptr);
        }
        EXPECT_EQ(n.outputs[0], g.outputs()[0]);
        // The residual now feeds the fused node and nothing else.
        EXPECT_EQ(g.value(t.r).users, (std::vector<NodeId>{id}));
      }
    }
  }
}

TEST(FuseEpiloguesTest, ConvKeepsItsOwnBiasBesideTheResidual) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, F({1, 1, 3, 3}));
  ValueId r = b.Input("r", DType::kFloat32, F({1, 2, 3, 3}));
  ValueId w = b.Constant("w", MakeTensor<float>({2, 1, 1, 1}, {1, 1}));
  ValueId cb = b.Constant("cb", MakeTensor<float>({2}, {10, 20}));
  NodeId conv = b.Op("Conv", {x, w, cb}, {"c"});
  Typed(b, conv, {1, 2, 3, 3});
  NodeId add = b.Op("Add", {b.Out(conv), r}, {"y"});
  Typed(b, add, {1, 2, 3, 3});
  b.Output(b.Out(add));
  ASSERT_TRUE(*FuseEpilogues(b.graph()));
  const Node& n = b.graph().node(FindLive(b.graph(), "FusedConv"));
  ASSERT_EQ(n.inputs.size(), 4u);
  EXPECT_EQ(n.inputs[2], cb);
  EXPECT_EQ(n.inputs[3], r);
}

TEST(FuseEpiloguesTest, ResidualWithSymbolicDimsFusesWhenTheSymbolsMatch) {
  GraphBuilder b;
  const ShapeInfo shape{true, {Dim::Symbolic("batch"), Dim::Symbolic("seq"), Dim::Concrete(4)}};
  ValueId a = b.Input("a", DType::kFloat32, shape);
  ValueId r = b.Input("r", DType::kFloat32, shape);
  ValueId w = b.Constant("w", MakeTensor<float>({4, 4}, std::vector<float>(16, 1)));
  NodeId mm = b.Op("MatMul", {a, w}, {"m"});
  b.graph().value(b.Out(mm)).dtype = DType::kFloat32;
  b.graph().value(b.Out(mm)).shape = shape;
  NodeId add = b.Op("Add", {r, b.Out(mm)}, {"y"});
  b.graph().value(b.Out(add)).dtype = DType::kFloat32;
  b.graph().value(b.Out(add)).shape = shape;
  b.Output(b.Out(add));
  ASSERT_TRUE(*FuseEpilogues(b.graph()));
  const Node& n = b.graph().node(FindLive(b.graph(), "FusedMatMul"));
  ASSERT_EQ(n.inputs.size(), 4u);
  EXPECT_EQ(n.inputs[2], kNoValue);
  EXPECT_EQ(n.inputs[3], r);
}

// a:[2,5,4] x w:[4,3] -> MatMul -> Add(bias [3]) -> Add(r [2,5,3]) -> ...
TEST(FuseEpiloguesTest, MatMulBiasResidualGeluBecomesFusedMatMul) {
  GraphBuilder b;
  ValueId a = b.Input("a", DType::kFloat32, F({2, 5, 4}));
  ValueId r = b.Input("r", DType::kFloat32, F({2, 5, 3}));
  ValueId w = b.Constant("w", MakeTensor<float>({4, 3}, std::vector<float>(12, 1)));
  ValueId bias = b.Constant("bias", MakeTensor<float>({3}, {1, 2, 3}));
  NodeId mm = b.Op("MatMul", {a, w}, {"m"}, {}, "mm");
  Typed(b, mm, {2, 5, 3});
  NodeId add = b.Op("Add", {bias, b.Out(mm)}, {"s"});
  Typed(b, add, {2, 5, 3});
  NodeId res = b.Op("Add", {r, b.Out(add)}, {"t"});
  Typed(b, res, {2, 5, 3});
  NodeId act = b.Op("Gelu", {b.Out(res)}, {"y"});
  Typed(b, act, {2, 5, 3});
  b.Output(b.Out(act));
  ASSERT_TRUE(*FuseEpilogues(b.graph()));
  EXPECT_EQ(b.graph().num_live_nodes(), 1u);
  const Node& n = b.graph().node(FindLive(b.graph(), "FusedMatMul"));
  EXPECT_EQ(n.name, "mm");
  EXPECT_EQ(*n.GetString("activation", ""), "Gelu");
  EXPECT_EQ(n.FindAttribute("transA"), nullptr);
  ASSERT_EQ(n.inputs.size(), 4u);
  EXPECT_EQ(ToVector<float>(*b.graph().value(n.inputs[2]).constant), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(n.inputs[3], r);
}

TEST(FuseEpiloguesTest, GemmResidualKeepsCAndAddsTheResidual) {
  GraphBuilder b;
  ValueId a = b.Input("a", DType::kFloat32, F({2, 4}));
  ValueId r = b.Input("r", DType::kFloat32, F({2, 3}));
  ValueId w = b.Constant("w", MakeTensor<float>({3, 4}, std::vector<float>(12, 1)));
  ValueId c = b.Constant("c", MakeTensor<float>({3}, {1, 1, 1}));
  ValueId bias = b.Constant("bias", MakeTensor<float>({3}, {1, 2, 3}));
  NodeId gemm = b.Op("Gemm", {a, w, c}, {"g"}, {{"transB", testing::IntAttr(1)}, {"beta", FloatAttr(2)}});
  Typed(b, gemm, {2, 3});
  NodeId add = b.Op("Add", {b.Out(gemm), bias}, {"s"});
  Typed(b, add, {2, 3});
  NodeId res = b.Op("Add", {b.Out(add), r}, {"t"});
  Typed(b, res, {2, 3});
  NodeId act = b.Op("Relu", {b.Out(res)}, {"y"});
  b.Output(b.Out(act));
  ASSERT_TRUE(*FuseEpilogues(b.graph()));
  EXPECT_EQ(b.graph().num_live_nodes(), 1u);
  const Node& n = b.graph().node(FindLive(b.graph(), "FusedMatMul"));
  EXPECT_EQ(*n.GetInt("transB", -1), 1);
  EXPECT_EQ(*n.GetFloat("beta", -1), 1.0f);  // bias folded into C
  ASSERT_EQ(n.inputs.size(), 4u);
  EXPECT_EQ(ToVector<float>(*b.graph().value(n.inputs[2]).constant), (std::vector<float>{3, 4, 5}));
  EXPECT_EQ(n.inputs[3], r);
  EXPECT_EQ(*n.GetString("activation", ""), "Relu");
}

TEST(FuseEpiloguesTest, ResidualNotFusedWhenItBroadcasts) {
  // [1, 3, 1, 4] and [3, 4, 4] both broadcast against [1, 3, 4, 4]; neither
  // is an element-for-element residual. The Conv (+ bias) still fuses.
  for (const Dims& r_dims : {Dims{1, 3, 1, 4}, Dims{3, 4, 4}, Dims{4}}) {
    SCOPED_TRACE(DimsToString(r_dims));
    ResidualConvChain t(/*with_bias=*/true, /*with_relu=*/true, /*residual_first=*/false, r_dims);
    Graph& g = t.b.graph();
    ASSERT_TRUE(*FuseEpilogues(g));
    const NodeId id = FindLive(g, "FusedConv");
    ASSERT_NE(id, kNoNode);
    EXPECT_EQ(g.node(id).inputs.size(), 3u);
    EXPECT_EQ(g.node(id).outputs[0], t.b.Out(t.bias_add));
    EXPECT_EQ(g.node(id).FindAttribute("activation"), nullptr);
    EXPECT_NE(FindLive(g, "Add"), kNoNode);
    EXPECT_NE(FindLive(g, "Relu"), kNoNode);
  }
}

TEST(FuseEpiloguesTest, ResidualNotFusedWhenTheConvIsBroadcast) {
  // conv output [1, 3, 1, 4] + r [1, 3, 4, 4]: the result is r's shape, not
  // the conv's.
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, F({1, 1, 1, 4}));
  ValueId r = b.Input("r", DType::kFloat32, F({1, 3, 4, 4}));
  ValueId w = b.Constant("w", MakeTensor<float>({3, 1, 1, 1}, {1, 1, 1}));
  NodeId conv = b.Op("Conv", {x, w}, {"c"});
  Typed(b, conv, {1, 3, 1, 4});
  NodeId add = b.Op("Add", {b.Out(conv), r}, {"y"});
  Typed(b, add, {1, 3, 4, 4});
  b.Output(b.Out(add));
  ASSERT_FALSE(*FuseEpilogues(b.graph()));
  EXPECT_EQ(b.graph().num_live_nodes(), 2u);
}

TEST(FuseEpiloguesTest, ResidualNotFusedWhenShapesAreUnknown) {
  for (bool unknown_residual : {false, true}) {
    ResidualConvChain t(/*with_bias=*/false, /*with_relu=*/false, /*residual_first=*/false);
    Graph& g = t.b.graph();
    if (unknown_residual) {
      g.value(t.r).shape = ShapeInfo{true, {Dim::Concrete(1), Dim::Concrete(3), Dim{}, Dim::Concrete(4)}};
    } else {
      g.value(t.b.Out(t.conv)).shape = ShapeInfo::Unknown();
    }
    ASSERT_FALSE(*FuseEpilogues(g));
    EXPECT_EQ(g.num_live_nodes(), 2u);
  }
}

TEST(FuseEpiloguesTest, ResidualNotFusedWhenAddsItsOwnInput) {
  // Add(c, c) doubles the conv output: no residual tensor to read.
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, F({1, 1, 3, 3}));
  ValueId w = b.Constant("w", MakeTensor<float>({2, 1, 1, 1}, {1, 1}));
  NodeId conv = b.Op("Conv", {x, w}, {"c"});
  Typed(b, conv, {1, 2, 3, 3});
  NodeId add = b.Op("Add", {b.Out(conv), b.Out(conv)}, {"y"});
  Typed(b, add, {1, 2, 3, 3});
  b.Output(b.Out(add));
  ASSERT_FALSE(*FuseEpilogues(b.graph()));
  EXPECT_EQ(b.graph().num_live_nodes(), 2u);
}

TEST(FuseEpiloguesTest, ResidualNotFusedWhenConvOutputUsedTwice) {
  // The conv output also feeds a second node: it must stay materialised,
  // so nothing fuses.
  ResidualConvChain t(/*with_bias=*/false, /*with_relu=*/true, /*residual_first=*/false);
  t.b.Op("Neg", {t.b.Out(t.conv)}, {"other"});
  t.b.Output(t.b.graph().FindValue("other").value());
  ASSERT_FALSE(*FuseEpilogues(t.b.graph()));
  EXPECT_EQ(t.b.graph().num_live_nodes(), 4u);
}

TEST(FuseEpiloguesTest, ResidualNotFusedWhenBiasSumUsedTwice) {
  // Conv + bias fuse; the bias sum's second use keeps it, and the residual
  // Add with it.
  ResidualConvChain t(/*with_bias=*/true, /*with_relu=*/true, /*residual_first=*/true);
  t.b.Op("Neg", {t.b.Out(t.bias_add)}, {"other"});
  t.b.Output(t.b.graph().FindValue("other").value());
  Graph& g = t.b.graph();
  ASSERT_TRUE(*FuseEpilogues(g));
  const NodeId id = FindLive(g, "FusedConv");
  ASSERT_NE(id, kNoNode);
  EXPECT_EQ(g.node(id).inputs.size(), 3u);
  EXPECT_EQ(g.node(id).outputs[0], t.b.Out(t.bias_add));
  EXPECT_NE(FindLive(g, "Add"), kNoNode);
}

TEST(FuseEpiloguesTest, ResidualUsedTwiceStillFuses) {
  // The residual itself may have other users (it is read, not removed).
  ResidualConvChain t(/*with_bias=*/false, /*with_relu=*/true, /*residual_first=*/false);
  t.b.Op("Neg", {t.r}, {"other"});
  t.b.Output(t.b.graph().FindValue("other").value());
  Graph& g = t.b.graph();
  ASSERT_TRUE(*FuseEpilogues(g));
  const NodeId id = FindLive(g, "FusedConv");
  ASSERT_NE(id, kNoNode);
  EXPECT_EQ(g.node(id).inputs[kFusedResidualInput], t.r);
  EXPECT_EQ(g.value(t.r).users.size(), 2u);
  EXPECT_EQ(g.num_live_nodes(), 2u);
}

TEST(FuseEpiloguesTest, ResidualSumUsedTwiceKeepsTheActivationOut) {
  // The residual sum is also read elsewhere: Conv + residual fuse, the Relu
  // stays a node of its own.
  ResidualConvChain t(/*with_bias=*/false, /*with_relu=*/true, /*residual_first=*/false);
  t.b.Op("Neg", {t.b.Out(t.residual_add)}, {"other"});
  t.b.Output(t.b.graph().FindValue("other").value());
  Graph& g = t.b.graph();
  ASSERT_TRUE(*FuseEpilogues(g));
  const NodeId id = FindLive(g, "FusedConv");
  ASSERT_NE(id, kNoNode);
  EXPECT_EQ(g.node(id).inputs[kFusedResidualInput], t.r);
  EXPECT_EQ(g.node(id).outputs[0], t.b.Out(t.residual_add));
  EXPECT_EQ(g.node(id).FindAttribute("activation"), nullptr);
  EXPECT_NE(FindLive(g, "Relu"), kNoNode);
}

TEST(FuseEpiloguesTest, ResidualNotFusedWhenIntermediateIsGraphOutput) {
  for (bool bias_sum_is_output : {false, true}) {
    ResidualConvChain t(/*with_bias=*/true, /*with_relu=*/true, /*residual_first=*/false);
    t.b.Output(bias_sum_is_output ? t.b.Out(t.bias_add) : t.b.Out(t.conv));
    Graph& g = t.b.graph();
    ASSERT_TRUE(FuseEpilogues(g).ok());
    const NodeId id = FindLive(g, "FusedConv");
    if (bias_sum_is_output) {
      // Conv + bias fuse into the graph output; the residual Add stays.
      ASSERT_NE(id, kNoNode);
      EXPECT_EQ(g.node(id).inputs.size(), 3u);
      EXPECT_NE(FindLive(g, "Add"), kNoNode);
    } else {
      EXPECT_EQ(id, kNoNode);
      EXPECT_EQ(g.num_live_nodes(), 4u);
    }
  }
}

TEST(FuseEpiloguesTest, ResidualNotFusedWhenConstant) {
  // A constant full-shape addend is no bias (not per channel) and no
  // residual.
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, F({1, 1, 3, 3}));
  ValueId w = b.Constant("w", MakeTensor<float>({2, 1, 1, 1}, {1, 1}));
  ValueId k = b.Constant("k", MakeTensor<float>({1, 2, 3, 3}, std::vector<float>(18, 1)));
  NodeId conv = b.Op("Conv", {x, w}, {"c"});
  Typed(b, conv, {1, 2, 3, 3});
  NodeId add = b.Op("Add", {b.Out(conv), k}, {"y"});
  Typed(b, add, {1, 2, 3, 3});
  b.Output(b.Out(add));
  ASSERT_FALSE(*FuseEpilogues(b.graph()));
}

TEST(FuseEpiloguesTest, ResidualNotFusedWhenNotFloat32) {
  ResidualConvChain t(/*with_bias=*/false, /*with_relu=*/false, /*residual_first=*/false);
  t.b.graph().value(t.r).dtype = DType::kFloat64;
  ASSERT_FALSE(*FuseEpilogues(t.b.graph()));
}

}  // namespace
}  // namespace kiln::graph
