// LoadOptions::graph_optimization: kBasic keeps every op of the model as
// its own node, kAll fuses the patterns exporters decompose. Both levels
// must compute the same outputs, and the JIT must compile what kBasic
// leaves (decomposed LayerNorm and GELU) into regions of its own.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kiln/session.h"
#include "reference_run_util.h"
#include "runtime/model_internal.h"
#include "test/graph/graph_test_util.h"
#include "test/model_builder.h"
#include "test/tensors.h"
#include "test/tolerance.h"

namespace kiln {
namespace {

using graph::testing::CountLive;
using testing::ExpectNearScaled;
using testing::OnnxModelBuilder;
using testing::RandomFloats;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;
constexpr int64_t kRows = 24;
constexpr int64_t kFeatures = 64;
// MatMul, bias Add, the nine nodes of LayerNorm, the five of GELU.
constexpr size_t kModelNodes = 16;

// x[24, 64] -> MatMul + bias -> LayerNorm -> GELU, decomposed as PyTorch
// exports them (opset 17).
OnnxModelBuilder MatMulLayerNormGelu() {
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {kRows, kFeatures})
      .FloatInit("w", {kFeatures, kFeatures}, RandomFloats(kFeatures * kFeatures, 1, -0.2f, 0.2f))
      .FloatInit("bias", {kFeatures}, RandomFloats(kFeatures, 2, -0.5f, 0.5f))
      .FloatInit("gamma", {kFeatures}, RandomFloats(kFeatures, 3, 0.7f, 1.3f))
      .FloatInit("beta", {kFeatures}, RandomFloats(kFeatures, 4, -0.2f, 0.2f))
      .FloatInit("two", {}, {2.0f})
      .FloatInit("eps", {}, {1e-5f})
      .FloatInit("sqrt2", {}, {1.4142135f})
      .FloatInit("one", {}, {1.0f})
      .FloatInit("half", {}, {0.5f})
      .Output("y");
  b.Node("MatMul", {"x", "w"}, {"m"});
  b.Node("Add", {"m", "bias"}, {"h"});
  OnnxModelBuilder::IntsAttr(b.Node("ReduceMean", {"h"}, {"mean"}), "axes", {-1});
  b.Node("Sub", {"h", "mean"}, {"d"});
  b.Node("Pow", {"d", "two"}, {"sq"});
  OnnxModelBuilder::IntsAttr(b.Node("ReduceMean", {"sq"}, {"var"}), "axes", {-1});
  b.Node("Add", {"var", "eps"}, {"var_eps"});
  b.Node("Sqrt", {"var_eps"}, {"std"});
  b.Node("Div", {"d", "std"}, {"normed"});
  b.Node("Mul", {"normed", "gamma"}, {"scaled"});
  b.Node("Add", {"scaled", "beta"}, {"ln"});
  b.Node("Div", {"ln", "sqrt2"}, {"u"});
  b.Node("Erf", {"u"}, {"e"});
  b.Node("Add", {"e", "one"}, {"a"});
  b.Node("Mul", {"ln", "a"}, {"g"});
  b.Node("Mul", {"g", "half"}, {"y"});
  return b;
}

std::shared_ptr<const Model> Load(GraphOptimization level) {
  const std::string bytes = MatMulLayerNormGelu().Serialize();
  LoadOptions options;
  options.graph_optimization = level;
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size(), "", options);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

std::vector<float> RunTwice(const std::shared_ptr<const Model>& model, TierPolicy tier, const std::vector<float>& x,
                            SessionStats* stats = nullptr) {
  SessionOptions options;
  options.tier = tier;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  options.intra_op_threads = 2;
  auto session = Session::Create(model, options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  if (!session.ok()) return {};
  const Tensor input = Tensor::View(DType::kFloat32, {kRows, kFeatures}, const_cast<float*>(x.data()));
  std::vector<float> y;
  for (int run = 0; run < 2; ++run) {  // kJit compiles on the first run; the second runs the code
    auto out = (*session)->Run({{"x", input}});
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    if (!out.ok()) return {};
    const Tensor& t = (*out)[0].tensor;
    y.assign(t.data<float>(), t.data<float>() + t.num_elements());
  }
  if (stats != nullptr) *stats = (*session)->stats();
  return y;
}

TEST(GraphOptimization, BasicKeepsEveryOpAllFusesThem) {
  const auto basic = Load(GraphOptimization::kBasic);
  const auto all = Load(GraphOptimization::kAll);
  ASSERT_TRUE(basic && all);
  const graph::Graph& b = ModelGraph(*basic);
  EXPECT_EQ(b.num_live_nodes(), kModelNodes);
  EXPECT_EQ(CountLive(b, "ReduceMean"), 2u);
  EXPECT_EQ(CountLive(b, "Erf"), 1u);
  EXPECT_EQ(CountLive(b, "LayerNormalization"), 0u);

  const graph::Graph& a = ModelGraph(*all);
  EXPECT_LT(a.num_live_nodes(), 4u);
  EXPECT_EQ(CountLive(a, "ReduceMean"), 0u);
  EXPECT_EQ(CountLive(a, "Erf"), 0u);
  EXPECT_EQ(CountLive(a, "LayerNormalization"), 1u);
  EXPECT_EQ(CountLive(a, "MatMul"), 0u);  // the bias Add folded into a FusedMatMul
  EXPECT_STREQ(GraphOptimizationName(GraphOptimization::kBasic), "basic");
  EXPECT_STREQ(GraphOptimizationName(GraphOptimization::kAll), "all");
}

TEST(GraphOptimization, LevelsAndTiersAgree) {
  const auto basic = Load(GraphOptimization::kBasic);
  const auto all = Load(GraphOptimization::kAll);
  ASSERT_TRUE(basic && all);
  const std::vector<float> x = RandomFloats(kRows * kFeatures, 5, -2.0f, 2.0f);
  const std::vector<float> reference = RunTwice(basic, TierPolicy::kInterpreter, x);
  ExpectNearScaled(RunTwice(all, TierPolicy::kInterpreter, x), reference, 1e-5);

  // The JIT compiles the MatMul as a GEMM region, and the decomposed
  // LayerNorm and GELU that kBasic leaves as one row-reduction region (the
  // bias Add joins it: it is elementwise and produces the rows).
  SessionStats stats;
  ExpectNearScaled(RunTwice(basic, TierPolicy::kJit, x, &stats), reference, 1e-5);
  ASSERT_EQ(stats.regions.size(), 2u);
  EXPECT_EQ(stats.regions[0].kind, "gemm");
  EXPECT_EQ(stats.regions[1].kind, "row_reduction");
  for (const RegionStats& r : stats.regions) {
    EXPECT_EQ(r.tier, "jit") << r.kind;
    EXPECT_EQ(r.compiled_calls, 1) << r.kind;
    EXPECT_EQ(r.failed_compiles, 0) << r.kind;
  }
}

}  // namespace
}  // namespace kiln
