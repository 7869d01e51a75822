#include "graph/partitioner.h"

#include <gtest/gtest.h>

#include "graph/onnx_loader.h"
#include "test/model_builder.h"

namespace kiln::graph {
namespace {

using kiln::testing::OnnxModelBuilder;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

Graph LoadOrDie(const OnnxModelBuilder& b) {
  std::string bytes = b.Serialize();
  auto g = LoadOnnxModel(bytes.data(), bytes.size(), LoadOptions{});
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return std::move(g).value();
}

std::vector<std::string> OpsOf(const Graph& g, const Region& r) {
  std::vector<std::string> ops;
  for (NodeId n : r.nodes) ops.push_back(g.node(n).op_type);
  return ops;
}

TEST(Partitioner, DecomposedGeluIsOneRegion) {
  // 0.5 * x * (1 + erf(x / sqrt(2))), as PyTorch exports it.
  OnnxModelBuilder b;
  b.Input("x", kFloat, {-1, 64}, {"batch"})
      .FloatInit("sqrt2", {}, {1.41421356f})
      .FloatInit("one", {}, {1.f})
      .FloatInit("half", {}, {0.5f})
      .Output("y");
  b.Node("Div", {"x", "sqrt2"}, {"d"});
  b.Node("Erf", {"d"}, {"e"});
  b.Node("Add", {"e", "one"}, {"a"});
  b.Node("Mul", {"x", "a"}, {"m"});
  b.Node("Mul", {"m", "half"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok()) << regions.status().ToString();
  ASSERT_EQ(regions->size(), 1u);
  const Region& r = (*regions)[0];
  EXPECT_EQ(OpsOf(g, r), (std::vector<std::string>{"Div", "Erf", "Add", "Mul", "Mul"}));
  // x and the three constants come in; only y leaves.
  EXPECT_EQ(r.inputs.size(), 4u);
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_EQ(g.value(r.outputs[0]).name, "y");
  EXPECT_NE(r.reason.find("[batch, 64]"), std::string::npos) << r.reason;
}

TEST(Partitioner, MatMulWithAConstantWeightIsAGemmRegionBetweenChains) {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {4, 8}).FloatInit("w", {8, 8}, std::vector<float>(64, 0.1f)).Output("y");
  b.Node("Neg", {"x"}, {"t1"});
  b.Node("Relu", {"t1"}, {"t2"});
  b.Node("MatMul", {"t2", "w"}, {"m"});
  b.Node("Sigmoid", {"m"}, {"s"});
  b.Node("Tanh", {"s"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok());
  ASSERT_EQ(regions->size(), 3u);
  EXPECT_EQ(OpsOf(g, (*regions)[0]), (std::vector<std::string>{"Neg", "Relu"}));
  EXPECT_EQ(OpsOf(g, (*regions)[1]), (std::vector<std::string>{"MatMul"}));
  EXPECT_EQ((*regions)[1].kind, RegionKind::kGemm);
  EXPECT_EQ((*regions)[1].inputs.size(), 2u);  // A and the weight
  // The static shapes give the work of a call: 2 * 4 * 8 * 8 FLOPs.
  EXPECT_NE((*regions)[1].reason.find("0.5 kFLOP per call"), std::string::npos) << (*regions)[1].reason;
  EXPECT_EQ(OpsOf(g, (*regions)[2]), (std::vector<std::string>{"Sigmoid", "Tanh"}));
  EXPECT_EQ((*regions)[2].id, 2);

  // Without GEMM regions the MatMul only splits the chains.
  PartitionOptions no_gemm;
  no_gemm.gemm_regions = false;
  auto without = PartitionGraph(g, no_gemm);
  ASSERT_TRUE(without.ok());
  ASSERT_EQ(without->size(), 2u);
  EXPECT_EQ(OpsOf(g, (*without)[1]), (std::vector<std::string>{"Sigmoid", "Tanh"}));
}

TEST(Partitioner, NotAGemmRegionWhenTheWeightIsNotConstant) {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {4, 8}).Input("w", kFloat, {8, 8}).Output("y");
  b.Node("MatMul", {"x", "w"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok());
  EXPECT_TRUE(regions->empty());
}

TEST(Partitioner, NotAGemmRegionWhenATransposes) {
  OnnxModelBuilder b;
  b.Input("a", kFloat, {8, 4}).FloatInit("w", {8, 6}, std::vector<float>(48, 0.1f)).Output("y");
  onnx::NodeProto& gemm = b.Node("Gemm", {"a", "w"}, {"y"});
  OnnxModelBuilder::IntAttr(gemm, "transA", 1);
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok());
  EXPECT_TRUE(regions->empty());
}

TEST(Partitioner, NotFusedWhenJoiningWouldCreateACycle) {
  // t2 feeds both MatMul and Add; Add also reads MatMul's output. Putting
  // Add in t2's region would make region -> MatMul -> region.
  OnnxModelBuilder b;
  b.Input("x", kFloat, {4, 8}).FloatInit("w", {8, 8}, std::vector<float>(64, 0.1f)).Output("y");
  b.Node("Neg", {"x"}, {"t1"});
  b.Node("Relu", {"t1"}, {"t2"});
  b.Node("MatMul", {"t2", "w"}, {"m"});
  b.Node("Add", {"t2", "m"}, {"c"});
  b.Node("Exp", {"c"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok());
  ASSERT_EQ(regions->size(), 3u);
  EXPECT_EQ(OpsOf(g, (*regions)[0]), (std::vector<std::string>{"Neg", "Relu"}));
  EXPECT_EQ(OpsOf(g, (*regions)[1]), (std::vector<std::string>{"MatMul"}));
  EXPECT_EQ(OpsOf(g, (*regions)[2]), (std::vector<std::string>{"Add", "Exp"}));
  // t2 is used outside its region (by MatMul and Add), so it is an output.
  ASSERT_EQ((*regions)[0].outputs.size(), 1u);
  EXPECT_EQ(g.value((*regions)[0].outputs[0]).name, "t2");
}

TEST(Partitioner, NotFusedWhenShapesDiffer) {
  // The [8] bias chain is smaller than the [4, 8] domain: it stays apart.
  OnnxModelBuilder b;
  b.Input("x", kFloat, {4, 8}).Input("bias", kFloat, {8}).Output("y");
  b.Node("Exp", {"bias"}, {"eb"});
  b.Node("Add", {"x", "eb"}, {"a"});
  b.Node("Relu", {"a"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok());
  ASSERT_EQ(regions->size(), 1u);
  EXPECT_EQ(OpsOf(g, (*regions)[0]), (std::vector<std::string>{"Add", "Relu"}));
}

TEST(Partitioner, NotFusedWhenOpIsNotElementwise) {
  // Hardmax is neither elementwise nor a row reduction the JIT handles.
  OnnxModelBuilder b;
  b.Input("x", kFloat, {4, 8}).Output("y");
  b.Node("Hardmax", {"x"}, {"s"});
  b.Node("Relu", {"s"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok());
  EXPECT_TRUE(regions->empty());
}

TEST(Partitioner, ElementwiseOnlyRegionsKeepTheirKind) {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {4, 8}).Output("y");
  b.Node("Neg", {"x"}, {"t"});
  b.Node("Relu", {"t"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok());
  ASSERT_EQ(regions->size(), 1u);
  EXPECT_EQ((*regions)[0].kind, RegionKind::kElementwise);
  EXPECT_EQ((*regions)[0].row_axis, -1);
}

// LayerNormalization then an exact GELU spelled out, as in a transformer
// MLP block: one row reduction region over [2, 16, 64], rows of 64.
TEST(Partitioner, LayerNormGeluIsOneRowReductionRegion) {
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {2, 16, 64})
      .FloatInit("gamma", {64}, std::vector<float>(64, 1.f))
      .FloatInit("beta", {64}, std::vector<float>(64, 0.f))
      .FloatInit("sqrt2", {}, {1.41421356f})
      .FloatInit("one", {}, {1.f})
      .FloatInit("half", {}, {0.5f})
      .Output("y");
  b.Node("LayerNormalization", {"x", "gamma", "beta"}, {"ln"});
  b.Node("Div", {"ln", "sqrt2"}, {"d"});
  b.Node("Erf", {"d"}, {"e"});
  b.Node("Add", {"e", "one"}, {"a"});
  b.Node("Mul", {"ln", "a"}, {"m"});
  b.Node("Mul", {"m", "half"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok()) << regions.status().ToString();
  ASSERT_EQ(regions->size(), 1u);
  const Region& r = (*regions)[0];
  EXPECT_EQ(r.kind, RegionKind::kRowReduction);
  EXPECT_EQ(r.row_axis, 2);
  EXPECT_EQ(OpsOf(g, r), (std::vector<std::string>{"LayerNormalization", "Div", "Erf", "Add", "Mul", "Mul"}));
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_EQ(g.value(r.outputs[0]).name, "y");
  EXPECT_NE(r.reason.find("LayerNormalization"), std::string::npos) << r.reason;
}

// Attention scores: scale and mask feed the Softmax (an elementwise region
// that the Softmax turns into a row reduction), and a consumer follows.
TEST(Partitioner, SoftmaxJoinsItsScaleAndMaskProducers) {
  OnnxModelBuilder b(13);
  b.Input("scores", kFloat, {4, 128, 128})
      .Input("mask", kFloat, {4, 1, 128})
      .FloatInit("scale", {}, {0.125f})
      .Output("y");
  b.Node("Mul", {"scores", "scale"}, {"scaled"});
  b.Node("Add", {"scaled", "mask"}, {"masked"});
  b.Node("Softmax", {"masked"}, {"p"});
  b.Node("Relu", {"p"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok()) << regions.status().ToString();
  ASSERT_EQ(regions->size(), 1u);
  const Region& r = (*regions)[0];
  EXPECT_EQ(r.kind, RegionKind::kRowReduction);
  EXPECT_EQ(r.row_axis, 2);
  EXPECT_EQ(OpsOf(g, r), (std::vector<std::string>{"Mul", "Add", "Softmax", "Relu"}));
  EXPECT_EQ(r.inputs.size(), 3u);
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_EQ(g.value(r.outputs[0]).name, "y");
}

// ReduceMean's per-row result feeds row-shaped (x - mean) and per-row
// (mean * 2) consumers; both escape as outputs of their own shapes. The
// opset-18 form takes its axes as a constant input.
TEST(Partitioner, ReduceMeanWithConsumers) {
  for (int opset : {17, 18}) {
    OnnxModelBuilder b(opset);
    b.Input("x", kFloat, {8, 32}).FloatInit("two", {}, {2.f}).Output("centered").Output("scaled_mean");
    if (opset >= 18) {
      b.Int64Init("axes", {1}, {-1});
      b.Node("ReduceMean", {"x", "axes"}, {"mean"});
    } else {
      OnnxModelBuilder::IntsAttr(b.Node("ReduceMean", {"x"}, {"mean"}), "axes", {1});
    }
    b.Node("Sub", {"x", "mean"}, {"centered"});
    b.Node("Mul", {"mean", "two"}, {"scaled_mean"});
    Graph g = LoadOrDie(b);
    auto regions = PartitionGraph(g);
    ASSERT_TRUE(regions.ok()) << regions.status().ToString();
    ASSERT_EQ(regions->size(), 1u) << "opset " << opset;
    const Region& r = (*regions)[0];
    EXPECT_EQ(r.kind, RegionKind::kRowReduction);
    EXPECT_EQ(r.row_axis, 1);
    EXPECT_EQ(OpsOf(g, r), (std::vector<std::string>{"ReduceMean", "Sub", "Mul"}));
    ASSERT_EQ(r.outputs.size(), 2u);
    EXPECT_EQ(g.value(r.outputs[0]).name, "centered");
    EXPECT_EQ(g.value(r.outputs[1]).name, "scaled_mean");
  }
}

TEST(Partitioner, NotFusedWhenReductionIsNotOverASuffix) {
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {8, 32}).Output("y");
  OnnxModelBuilder::IntsAttr(b.Node("ReduceMean", {"x"}, {"mean"}), "axes", {0});
  b.Node("Relu", {"mean"}, {"r"});
  b.Node("Neg", {"r"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok());
  ASSERT_EQ(regions->size(), 1u);
  EXPECT_EQ((*regions)[0].kind, RegionKind::kElementwise);
  EXPECT_EQ(OpsOf(g, (*regions)[0]), (std::vector<std::string>{"Relu", "Neg"}));
}

TEST(Partitioner, NotFusedWhenSoftmaxAxisIsNotLast) {
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {8, 32}).Output("y");
  OnnxModelBuilder::IntAttr(b.Node("Softmax", {"x"}, {"s"}), "axis", 0);
  b.Node("Relu", {"s"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok());
  EXPECT_TRUE(regions->empty());
}

// Squeeze-and-excitation without its convolutions: GlobalAveragePool's
// per-plane mean, a per-plane Sigmoid, then a row-shaped rescale.
TEST(Partitioner, GlobalAveragePoolWithElementwiseConsumers) {
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {1, 16, 7, 7}).Output("y");
  b.Node("GlobalAveragePool", {"x"}, {"pooled"});
  b.Node("Sigmoid", {"pooled"}, {"gate"});
  b.Node("Mul", {"x", "gate"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok()) << regions.status().ToString();
  ASSERT_EQ(regions->size(), 1u);
  const Region& r = (*regions)[0];
  EXPECT_EQ(r.kind, RegionKind::kRowReduction);
  EXPECT_EQ(r.row_axis, 2);
  EXPECT_EQ(OpsOf(g, r), (std::vector<std::string>{"GlobalAveragePool", "Sigmoid", "Mul"}));
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_EQ(g.value(r.outputs[0]).name, "y");
}

// The decomposed LayerNorm (not fused: the partitioner sees the graph as
// loaded) is one region of two chained reductions.
TEST(Partitioner, DecomposedLayerNormIsOneRegion) {
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {4, 32}).FloatInit("two", {}, {2.f}).FloatInit("eps", {}, {1e-5f}).Output("y");
  OnnxModelBuilder::IntsAttr(b.Node("ReduceMean", {"x"}, {"mean"}), "axes", {-1});
  b.Node("Sub", {"x", "mean"}, {"d"});
  b.Node("Pow", {"d", "two"}, {"sq"});
  OnnxModelBuilder::IntsAttr(b.Node("ReduceMean", {"sq"}, {"var"}), "axes", {-1});
  b.Node("Add", {"var", "eps"}, {"ve"});
  b.Node("Sqrt", {"ve"}, {"sd"});
  b.Node("Div", {"d", "sd"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok()) << regions.status().ToString();
  ASSERT_EQ(regions->size(), 1u);
  EXPECT_EQ((*regions)[0].kind, RegionKind::kRowReduction);
  EXPECT_EQ((*regions)[0].nodes.size(), 7u);
}

TEST(Partitioner, RowReductionNotJoinedWhenInputBroadcastsAlongPartOfTheRow) {
  // LayerNorm over the last two axes with a B of [16] only: B broadcasts
  // along part of the row, which the row code cannot read.
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {2, 8, 16})
      .Input("bias", kFloat, {16})
      .FloatInit("gamma", {8, 16}, std::vector<float>(128, 1.f));
  b.Output("y");
  OnnxModelBuilder::IntAttr(b.Node("LayerNormalization", {"x", "gamma", "bias"}, {"ln"}), "axis", 1);
  b.Node("Relu", {"ln"}, {"y"});
  Graph g = LoadOrDie(b);
  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok());
  EXPECT_TRUE(regions->empty());
}

TEST(Partitioner, SingleOpRegionsAreDroppedByDefault) {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {4, 8}).Output("y");
  b.Node("Relu", {"x"}, {"y"});
  Graph g = LoadOrDie(b);
  EXPECT_TRUE(PartitionGraph(g)->empty());
  PartitionOptions options;
  options.min_region_nodes = 1;
  EXPECT_EQ(PartitionGraph(g, options)->size(), 1u);
}

}  // namespace
}  // namespace kiln::graph
