// Tests of FuseLayerNorm: the decomposed LayerNorm (axes as attribute and,
// from opset 18, as input) becomes one LayerNormalization node carrying
// epsilon, scale and bias; and the NotFusedWhen... guards. Numerical
// equivalence is checked in test/runtime/fuse_layer_norm_run_test.cc.
#include "graph/fuse_layer_norm.h"

#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln::graph {
namespace {

using testing::FindLive;
using testing::GraphBuilder;
using testing::IntAttr;
using testing::IntsAttr;
using testing::MakeTensor;

ShapeInfo F(const Dims& dims) { return ShapeInfo::FromDims(dims); }

// x:[2,3,4] -> decomposed LayerNorm over the last axis -> y, the way
// PyTorch exports nn.LayerNorm(4) before opset 17. Every intermediate is
// typed float32, as shape propagation leaves it.
struct DecomposedLayerNorm {
  GraphBuilder b;
  ValueId x, scale, bias, exponent, eps;
  NodeId mean, sub, pow, var, add_eps, sqrt, div, mul, add_bias;

  explicit DecomposedLayerNorm(int opset = 13, bool with_bias = true) : b(opset) {
    x = b.Input("x", DType::kFloat32, F({2, 3, 4}));
    scale = b.Constant("scale", MakeTensor<float>({4}, {1, 2, 3, 4}));
    bias = b.Constant("bias", MakeTensor<float>({4}, {0.5f, 0, 0, -0.5f}));
    exponent = b.Constant("two", MakeTensor<float>({}, {2}));
    eps = b.Constant("eps", MakeTensor<float>({}, {1e-6f}));
    mean = ReduceLast(x, "mean");
    sub = Typed(b.Op("Sub", {x, b.Out(mean)}, {"d"}));
    pow = Typed(b.Op("Pow", {b.Out(sub), exponent}, {"sq"}));
    var = ReduceLast(b.Out(pow), "var");
    add_eps = Typed(b.Op("Add", {b.Out(var), eps}, {"var_eps"}));
    sqrt = Typed(b.Op("Sqrt", {b.Out(add_eps)}, {"std"}));
    div = Typed(b.Op("Div", {b.Out(sub), b.Out(sqrt)}, {"normed"}));
    mul = Typed(b.Op("Mul", {b.Out(div), scale}, {with_bias ? "scaled" : "y"}));
    if (with_bias) {
      add_bias = Typed(b.Op("Add", {b.Out(mul), bias}, {"y"}));
      b.Output(b.Out(add_bias));
    } else {
      add_bias = kNoNode;
      b.Output(b.Out(mul));
    }
  }

  NodeId ReduceLast(ValueId in, const std::string& out) {
    if (b.graph().default_opset() >= 18) {
      ValueId axes = b.Constant(out + "_axes", MakeTensor<int64_t>({1}, {-1}));
      return Typed(b.Op("ReduceMean", {in, axes}, {out}));
    }
    return Typed(b.Op("ReduceMean", {in}, {out}, {{"axes", IntsAttr({-1})}}));
  }

  NodeId Typed(NodeId node) {
    b.graph().value(b.Out(node)).dtype = DType::kFloat32;
    return node;
  }

  Graph& g() { return b.graph(); }
};

void ExpectOneLayerNorm(DecomposedLayerNorm& t, bool with_bias) {
  Graph& g = t.g();
  const ValueId y = g.outputs()[0];
  auto changed = FuseLayerNorm(g);
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(g.num_live_nodes(), 1u);
  ASSERT_TRUE(g.Validate().ok());
  const NodeId id = FindLive(g, "LayerNormalization");
  ASSERT_NE(id, kNoNode);
  const Node& n = g.node(id);
  EXPECT_EQ(n.domain, "");
  EXPECT_EQ(n.opset, 17);
  EXPECT_EQ(*n.GetInt("axis", 0), -1);
  EXPECT_EQ(*n.GetFloat("epsilon", 0), 1e-6f);
  const std::vector<ValueId> want_inputs =
      with_bias ? std::vector<ValueId>{t.x, t.scale, t.bias} : std::vector<ValueId>{t.x, t.scale};
  EXPECT_EQ(n.inputs, want_inputs);
  EXPECT_EQ(n.outputs, (std::vector<ValueId>{y}));
}

TEST(FuseLayerNormTest, DecomposedLayerNormBecomesOneNode) {
  DecomposedLayerNorm t;
  ASSERT_EQ(t.g().num_live_nodes(), 9u);
  ExpectOneLayerNorm(t, /*with_bias=*/true);
}

TEST(FuseLayerNormTest, Opset18AxesInput) {
  DecomposedLayerNorm t(/*opset=*/18);
  ExpectOneLayerNorm(t, /*with_bias=*/true);
}

TEST(FuseLayerNormTest, WithoutBiasAdd) {
  DecomposedLayerNorm t(/*opset=*/13, /*with_bias=*/false);
  ASSERT_EQ(t.g().num_live_nodes(), 8u);
  ExpectOneLayerNorm(t, /*with_bias=*/false);
}

TEST(FuseLayerNormTest, ConstantsOnTheLeftOfCommutativeOps) {
  DecomposedLayerNorm t;
  Graph& g = t.g();
  std::swap(g.node(t.mul).inputs[0], g.node(t.mul).inputs[1]);
  std::swap(g.node(t.add_bias).inputs[0], g.node(t.add_bias).inputs[1]);
  std::swap(g.node(t.add_eps).inputs[0], g.node(t.add_eps).inputs[1]);
  ExpectOneLayerNorm(t, /*with_bias=*/true);
}

TEST(FuseLayerNormTest, InputWithOtherUsersStillFuses) {
  // x also feeds a residual Add: only the LayerNorm's own nodes go.
  DecomposedLayerNorm t;
  NodeId residual = t.b.Op("Add", {t.x, t.b.Out(t.add_bias)}, {"res"});
  t.b.Output(t.b.Out(residual));
  ASSERT_TRUE(*FuseLayerNorm(t.g()));
  EXPECT_EQ(t.g().num_live_nodes(), 2u);
  EXPECT_NE(FindLive(t.g(), "LayerNormalization"), kNoNode);
}

TEST(FuseLayerNormTest, AxisGivenAsLastIndex) {
  DecomposedLayerNorm t;
  t.g().node(t.mean).attributes["axes"] = IntsAttr({2});
  ASSERT_TRUE(*FuseLayerNorm(t.g()));
}

TEST(FuseLayerNormTest, NotFusedWhenExponentIsNotTwo) {
  DecomposedLayerNorm t;
  t.g().value(t.exponent).constant = MakeTensor<float>({}, {3});
  ASSERT_FALSE(*FuseLayerNorm(t.g()));
  EXPECT_EQ(t.g().num_live_nodes(), 9u);
}

TEST(FuseLayerNormTest, NotFusedWhenMeanUsedTwice) {
  DecomposedLayerNorm t;
  t.b.Output(t.b.Out(t.b.Op("Neg", {t.b.Out(t.mean)}, {"other"})));
  ASSERT_FALSE(*FuseLayerNorm(t.g()));
}

TEST(FuseLayerNormTest, NotFusedWhenDeviationHasAThirdUser) {
  DecomposedLayerNorm t;
  t.b.Output(t.b.Out(t.b.Op("Neg", {t.b.Out(t.sub)}, {"other"})));
  ASSERT_FALSE(*FuseLayerNorm(t.g()));
}

TEST(FuseLayerNormTest, NotFusedWhenIntermediateIsGraphOutput) {
  DecomposedLayerNorm t;
  t.b.Output(t.b.Out(t.sqrt));
  ASSERT_FALSE(*FuseLayerNorm(t.g()));
}

TEST(FuseLayerNormTest, NotFusedWhenReducingAnotherAxis) {
  DecomposedLayerNorm t;
  t.g().node(t.var).attributes["axes"] = IntsAttr({1});
  ASSERT_FALSE(*FuseLayerNorm(t.g()));
}

TEST(FuseLayerNormTest, NotFusedWithoutKeepdims) {
  DecomposedLayerNorm t;
  t.g().node(t.mean).attributes["keepdims"] = IntAttr(0);
  ASSERT_FALSE(*FuseLayerNorm(t.g()));
}

TEST(FuseLayerNormTest, NotFusedWhenSubOperandsSwapped) {
  DecomposedLayerNorm t;
  std::swap(t.g().node(t.sub).inputs[0], t.g().node(t.sub).inputs[1]);
  ASSERT_FALSE(*FuseLayerNorm(t.g()));
}

TEST(FuseLayerNormTest, NotFusedWhenScaleIsNotConstant) {
  DecomposedLayerNorm t;
  t.g().value(t.scale).constant.reset();
  ASSERT_FALSE(*FuseLayerNorm(t.g()));
}

TEST(FuseLayerNormTest, NotFusedWhenScaleHasWrongShape) {
  DecomposedLayerNorm t;
  t.g().value(t.scale).constant = MakeTensor<float>({1}, {2});
  ASSERT_FALSE(*FuseLayerNorm(t.g()));
}

TEST(FuseLayerNormTest, NotFusedWhenEpsilonIsNotScalar) {
  DecomposedLayerNorm t;
  t.g().value(t.eps).constant = MakeTensor<float>({4}, {1, 1, 1, 1});
  ASSERT_FALSE(*FuseLayerNorm(t.g()));
}

TEST(FuseLayerNormTest, NotFusedWhenNotFloat32) {
  DecomposedLayerNorm t;
  t.g().value(t.b.Out(t.div)).dtype = DType::kFloat64;
  ASSERT_FALSE(*FuseLayerNorm(t.g()));
}

TEST(FuseLayerNormTest, NotFusedWhenLastDimUnknown) {
  DecomposedLayerNorm t;
  t.g().value(t.x).shape = testing::Shape({testing::D(2), testing::D(3), testing::S("d")});
  ASSERT_FALSE(*FuseLayerNorm(t.g()));
}

}  // namespace
}  // namespace kiln::graph
