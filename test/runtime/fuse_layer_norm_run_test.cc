// LayerNorm fusion end to end: models with the decomposed LayerNorm PyTorch
// exports run through kiln::Session (where the pipeline fuses it into one
// LayerNormalization, whatever opset the model imports), and their outputs
// must match the unrewritten graph run node by node with its own kernels.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/session.h"
#include "reference_run_util.h"
#include "runtime/model_internal.h"
#include "session_check_util.h"
#include "test/graph/graph_test_util.h"
#include "test/model_builder.h"
#include "test/tensors.h"

namespace kiln {
namespace {

using graph::testing::CountLive;
using testing::ElementCount;
using testing::OnnxModelBuilder;
using testing::RandomFloats;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

// x:[dims] -> decomposed LayerNorm over the last axis (d features) ->
// [Relu] -> y. A Relu after it keeps y an ordinary intermediate.
void BuildDecomposedLayerNorm(OnnxModelBuilder& b, int opset, const Dims& x_dims, bool relu) {
  const int64_t d = x_dims.back();
  b.Input("x", kFloat, x_dims)
      .FloatInit("gamma", {d}, RandomFloats(d, 2, 0.7f, 1.3f))
      .FloatInit("beta", {d}, RandomFloats(d, 3, -0.2f, 0.2f))
      .FloatInit("two", {}, {2.0f})
      .FloatInit("eps", {}, {1e-5f})
      .Output("y");
  auto reduce_mean = [&](const std::string& in, const std::string& out) {
    if (opset >= 18) {
      b.Int64Init(out + "_axes", {1}, {-1});
      b.Node("ReduceMean", {in, out + "_axes"}, {out});
    } else {
      OnnxModelBuilder::IntsAttr(b.Node("ReduceMean", {in}, {out}), "axes", {-1});
    }
  };
  reduce_mean("x", "mean");
  b.Node("Sub", {"x", "mean"}, {"d"});
  b.Node("Pow", {"d", "two"}, {"sq"});
  reduce_mean("sq", "var");
  b.Node("Add", {"var", "eps"}, {"var_eps"});
  b.Node("Sqrt", {"var_eps"}, {"std"});
  b.Node("Div", {"d", "std"}, {"normed"});
  b.Node("Mul", {"normed", "gamma"}, {"scaled"});
  b.Node("Add", {"scaled", "beta"}, {relu ? std::string("ln") : "y"});
  if (relu) b.Node("Relu", {"ln"}, {"y"});
}

void ExpectFusedMatchesReference(OnnxModelBuilder& b, const Dims& input_dims, size_t expected_nodes) {
  const std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const graph::Graph& g = ModelGraph(**model);
  EXPECT_EQ(g.num_live_nodes(), expected_nodes);
  EXPECT_EQ(CountLive(g, "LayerNormalization"), 1u);
  EXPECT_EQ(CountLive(g, "ReduceMean"), 0u);

  // An offset mean, as activations often have, exercises the centring.
  std::vector<float> x = RandomFloats(ElementCount(input_dims), 1, -1.5f, 2.5f);
  Tensor input = Tensor::View(DType::kFloat32, input_dims, x.data());
  auto reference = testing::RunUnoptimizedReference(bytes, {{"x", input}});
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  testing::ExpectInterpretedMatches(*model, input, *reference);
}

TEST(FuseLayerNormRunTest, DecomposedLayerNormMatchesUnfused) {
  for (int opset : {11, 13, 17, 18}) {
    for (const Dims& dims : {Dims{2, 5, 16}, Dims{3, 64}, Dims{1, 16, 64}}) {
      SCOPED_TRACE("opset " + std::to_string(opset) + " x " + DimsToString(dims));
      OnnxModelBuilder b(opset);
      BuildDecomposedLayerNorm(b, opset, dims, /*relu=*/false);
      ExpectFusedMatchesReference(b, dims, 1);
    }
  }
}

TEST(FuseLayerNormRunTest, FollowedByAnotherOp) {
  OnnxModelBuilder b(13);
  BuildDecomposedLayerNorm(b, 13, {4, 8, 32}, /*relu=*/true);
  ExpectFusedMatchesReference(b, {4, 8, 32}, 2);
}

}  // namespace
}  // namespace kiln
