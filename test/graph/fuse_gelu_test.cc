// Tests of FuseGelu: the three associations of the erf-form GELU that
// exporters write become one Gelu node, and the guards keep anything else
// (wrong constants, shared intermediates, an intermediate graph output)
// as it was. Numerical equivalence is checked end to end in
// test/runtime/fuse_epilogues_run_test.cc (GeluDecomposed).
#include "graph/fuse_gelu.h"

#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln::graph {
namespace {

using testing::CountLive;
using testing::GraphBuilder;
using testing::MakeTensor;

enum class Form { kXTimesA, kATimesHalf, kHalfXTimesA, kMulByInvSqrt2 };

// x:[2, 8] -> GELU in `form` -> y. `sqrt2` and `half` let a test break the
// constants.
struct DecomposedGelu {
  GraphBuilder b{13};
  ValueId x, y;
  NodeId erf;

  explicit DecomposedGelu(Form form, float sqrt2 = 1.41421354f, float half = 0.5f) {
    x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2, 8}));
    ValueId one = b.Constant("one", MakeTensor<float>({}, {1.0f}));
    ValueId h = b.Constant("half", MakeTensor<float>({}, {half}));
    NodeId scale = form == Form::kMulByInvSqrt2
                       ? Typed(b.Op("Mul", {b.Constant("inv_sqrt2", MakeTensor<float>({}, {1.0f / sqrt2})), x}, {"d"}))
                       : Typed(b.Op("Div", {x, b.Constant("sqrt2", MakeTensor<float>({}, {sqrt2}))}, {"d"}));
    erf = Typed(b.Op("Erf", {b.Out(scale)}, {"e"}));
    NodeId add = Typed(b.Op("Add", {one, b.Out(erf)}, {"a"}));
    const ValueId a = b.Out(add);
    NodeId last = kNoNode;
    switch (form) {
      case Form::kXTimesA:
      case Form::kMulByInvSqrt2: {
        NodeId t = Typed(b.Op("Mul", {x, a}, {"t"}));
        last = Typed(b.Op("Mul", {b.Out(t), h}, {"y"}));
        break;
      }
      case Form::kATimesHalf: {
        NodeId t = Typed(b.Op("Mul", {a, h}, {"t"}));
        last = Typed(b.Op("Mul", {x, b.Out(t)}, {"y"}));
        break;
      }
      case Form::kHalfXTimesA: {
        NodeId t = Typed(b.Op("Mul", {h, x}, {"t"}));
        last = Typed(b.Op("Mul", {b.Out(t), a}, {"y"}));
        break;
      }
    }
    y = b.Out(last);
    b.Output(y);
  }

  NodeId Typed(NodeId node) {
    b.graph().value(b.Out(node)).dtype = DType::kFloat32;
    return node;
  }
  Graph& g() { return b.graph(); }
};

TEST(FuseGelu, EveryExportedFormBecomesOneGelu) {
  for (Form form : {Form::kXTimesA, Form::kATimesHalf, Form::kHalfXTimesA, Form::kMulByInvSqrt2}) {
    SCOPED_TRACE(static_cast<int>(form));
    DecomposedGelu t(form);
    auto changed = FuseGelu(t.g());
    ASSERT_TRUE(changed.ok()) << changed.status().ToString();
    EXPECT_TRUE(*changed);
    EXPECT_EQ(t.g().num_live_nodes(), 1u);
    ASSERT_EQ(CountLive(t.g(), "Gelu"), 1u);
    const Node& gelu = t.g().node(t.g().value(t.y).producer);
    EXPECT_EQ(gelu.op_type, "Gelu");
    EXPECT_EQ(gelu.inputs, std::vector<ValueId>{t.x});
    auto approximate = gelu.GetString("approximate", "");
    ASSERT_TRUE(approximate.ok());
    EXPECT_EQ(*approximate, "none");
    EXPECT_TRUE(t.g().Validate().ok());
  }
}

TEST(FuseGelu, NotFusedWhenAConstantIsWrong) {
  for (auto [sqrt2, half] : {std::pair{2.0f, 0.5f}, std::pair{1.41421354f, 0.25f}}) {
    DecomposedGelu t(Form::kXTimesA, sqrt2, half);
    auto changed = FuseGelu(t.g());
    ASSERT_TRUE(changed.ok());
    EXPECT_FALSE(*changed);
    EXPECT_EQ(CountLive(t.g(), "Gelu"), 0u);
    EXPECT_EQ(CountLive(t.g(), "Erf"), 1u);
  }
}

TEST(FuseGelu, NotFusedWhenAnIntermediateIsUsedElsewhere) {
  DecomposedGelu t(Form::kXTimesA);
  // The Erf's output also feeds a graph output: it must survive.
  t.g().AddOutput(t.g().node(t.erf).outputs[0]);
  auto changed = FuseGelu(t.g());
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
  EXPECT_EQ(CountLive(t.g(), "Erf"), 1u);
}

TEST(FuseGelu, XMayHaveOtherUsers) {
  DecomposedGelu t(Form::kATimesHalf);
  NodeId relu = t.b.Op("Relu", {t.x}, {"r"});
  t.g().value(t.b.Out(relu)).dtype = DType::kFloat32;
  t.b.Output(t.b.Out(relu));
  auto changed = FuseGelu(t.g());
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  EXPECT_EQ(CountLive(t.g(), "Gelu"), 1u);
  EXPECT_EQ(CountLive(t.g(), "Relu"), 1u);
}

}  // namespace
}  // namespace kiln::graph
