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

TEST(Partitioner, MatMulSplitsChainsIntoTwoRegions) {
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
  ASSERT_EQ(regions->size(), 2u);
  EXPECT_EQ(OpsOf(g, (*regions)[0]), (std::vector<std::string>{"Neg", "Relu"}));
  EXPECT_EQ(OpsOf(g, (*regions)[1]), (std::vector<std::string>{"Sigmoid", "Tanh"}));
  EXPECT_EQ((*regions)[1].id, 1);
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
  ASSERT_EQ(regions->size(), 2u);
  EXPECT_EQ(OpsOf(g, (*regions)[0]), (std::vector<std::string>{"Neg", "Relu"}));
  EXPECT_EQ(OpsOf(g, (*regions)[1]), (std::vector<std::string>{"Add", "Exp"}));
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
  OnnxModelBuilder b;
  b.Input("x", kFloat, {4, 8}).Output("y");
  b.Node("Softmax", {"x"}, {"s"});
  b.Node("Relu", {"s"}, {"y"});
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
