// Tests of the graph IR itself: value and node bookkeeping, rewrites and
// structural checks.
#include "graph/graph.h"

#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln::graph {
namespace {

using testing::GraphBuilder;

TEST(GraphTest, AddValueRejectsDuplicateName) {
  Graph g;
  ASSERT_TRUE(g.AddValue("x").ok());
  auto again = g.AddValue("x");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kInvalidModel);
  EXPECT_NE(again.status().message().find("'x'"), std::string::npos) << again.status().message();
}

TEST(GraphTest, AddValueAllowsSeveralUnnamedValues) {
  Graph g;
  EXPECT_TRUE(g.AddValue("").ok());
  EXPECT_TRUE(g.AddValue("").ok());
  EXPECT_EQ(g.num_values(), 2u);
}

TEST(GraphTest, AddNodeLinksProducerAndUsers) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2}));
  NodeId add = b.Op("Add", {x, x}, {"y"});
  NodeId relu = b.Op("Relu", {b.Out(add)}, {"z"});
  Graph& g = b.graph();
  EXPECT_EQ(g.value(b.Out(add)).producer, add);
  EXPECT_EQ(g.value(b.Out(relu)).producer, relu);
  // One entry per use: Add reads x twice.
  EXPECT_EQ(g.value(x).users, (std::vector<NodeId>{add, add}));
  EXPECT_EQ(g.value(b.Out(add)).users, (std::vector<NodeId>{relu}));
}

TEST(GraphTest, AddNodeRejectsSecondProducer) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2}));
  NodeId first = b.Op("Relu", {x}, {"y"});
  Node second;
  second.op_type = "Neg";
  second.name = "neg";
  second.inputs = {x};
  second.outputs = {b.Out(first)};
  auto id = b.graph().AddNode(std::move(second));
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kInvalidModel);
  EXPECT_NE(id.status().message().find("already defined"), std::string::npos) << id.status().message();
}

TEST(GraphTest, AddNodeRejectsUnknownInputId) {
  Graph g;
  Node n;
  n.op_type = "Relu";
  n.inputs = {42};
  auto id = g.AddNode(std::move(n));
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kInternal);
}

TEST(GraphTest, RemoveNodeUnlinksButKeepsIds) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2}));
  NodeId relu = b.Op("Relu", {x}, {"y"});
  NodeId neg = b.Op("Neg", {x}, {"z"});
  Graph& g = b.graph();
  g.RemoveNode(relu);
  EXPECT_TRUE(g.node(relu).dead);
  EXPECT_EQ(g.num_nodes(), 2u);
  EXPECT_EQ(g.num_live_nodes(), 1u);
  EXPECT_EQ(g.value(x).users, (std::vector<NodeId>{neg}));
  EXPECT_EQ(g.value(b.Out(relu)).producer, kNoNode);
  // Removing twice is harmless.
  g.RemoveNode(relu);
  EXPECT_EQ(g.value(x).users, (std::vector<NodeId>{neg}));
}

TEST(GraphTest, ReplaceAllUsesRewritesInputsAndGraphOutputs) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2}));
  NodeId id = b.Op("Identity", {x}, {"y"});
  ValueId y = b.Out(id);
  NodeId mul = b.Op("Mul", {y, y}, {"z"});
  b.Output(y);
  b.Output(b.Out(mul));
  Graph& g = b.graph();

  g.ReplaceAllUses(y, x);
  EXPECT_EQ(g.node(mul).inputs, (std::vector<ValueId>{x, x}));
  EXPECT_TRUE(g.value(y).users.empty());
  // x keeps its Identity use and gains both uses by Mul.
  EXPECT_EQ(g.value(x).users, (std::vector<NodeId>{id, mul, mul}));
  EXPECT_EQ(g.outputs()[0], x);
  EXPECT_TRUE(g.value(x).is_graph_output);
  EXPECT_FALSE(g.value(y).is_graph_output);
}

TEST(GraphTest, TopologicalOrderPutsProducersFirst) {
  Graph g;
  g.set_opset_import("", 13);
  ValueId x = *g.AddValue("x", DType::kFloat32);
  g.AddInput(x);
  ValueId a = *g.AddValue("a");
  ValueId c = *g.AddValue("c");
  // Node 0 consumes the output of node 1: model order is not topological.
  Node use;
  use.op_type = "Relu";
  use.inputs = {a};
  use.outputs = {c};
  Node def;
  def.op_type = "Neg";
  def.inputs = {x};
  def.outputs = {a};
  NodeId use_id = *g.AddNode(std::move(use));
  NodeId def_id = *g.AddNode(std::move(def));
  auto order = g.TopologicalOrder();
  ASSERT_TRUE(order.ok()) << order.status().ToString();
  EXPECT_EQ(*order, (std::vector<NodeId>{def_id, use_id}));
}

TEST(GraphTest, TopologicalOrderReportsCycleNamingANode) {
  Graph g;
  ValueId a = *g.AddValue("a");
  ValueId b = *g.AddValue("b");
  Node first;
  first.op_type = "Relu";
  first.name = "loop_head";
  first.inputs = {b};
  first.outputs = {a};
  Node second;
  second.op_type = "Neg";
  second.name = "loop_tail";
  second.inputs = {a};
  second.outputs = {b};
  ASSERT_TRUE(g.AddNode(std::move(first)).ok());
  ASSERT_TRUE(g.AddNode(std::move(second)).ok());
  auto order = g.TopologicalOrder();
  ASSERT_FALSE(order.ok());
  EXPECT_EQ(order.status().code(), StatusCode::kInvalidModel);
  EXPECT_NE(order.status().message().find("cycle"), std::string::npos) << order.status().message();
  EXPECT_NE(order.status().message().find("loop_"), std::string::npos) << order.status().message();
  EXPECT_FALSE(g.Validate().ok());
}

// Label() names the node alone (the trace's slice names); Describe() is the
// "node ..." form error messages start with.
TEST(GraphTest, LabelAndDescribeNameOpDomainAndName) {
  Node conv;
  conv.op_type = "Conv";
  conv.name = "conv1";
  EXPECT_EQ(conv.Label(), "Conv 'conv1'");
  EXPECT_EQ(conv.Describe(), "node Conv 'conv1'");
  Node gelu;
  gelu.op_type = "Gelu";
  gelu.domain = "com.microsoft";
  gelu.name = "g";
  EXPECT_EQ(gelu.Label(), "com.microsoft.Gelu 'g'");
  EXPECT_EQ(gelu.Describe(), "node com.microsoft.Gelu 'g'");
  Node unnamed;
  unnamed.op_type = "Relu";
  EXPECT_EQ(unnamed.Label(), "Relu");
  EXPECT_EQ(unnamed.Describe(), "node Relu");
}

TEST(GraphTest, ValidateAcceptsWellFormedGraph) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2}));
  ValueId w = b.Constant("w", testing::MakeTensor<float>({2}, {1, 2}));
  NodeId add = b.Op("Add", {x, w}, {"y"});
  b.Output(b.Out(add));
  EXPECT_TRUE(b.graph().Validate().ok()) << b.graph().Validate().ToString();
}

TEST(GraphTest, ValidateCatchesUndefinedInput) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2}));
  ValueId ghost = b.NewValue("ghost");
  NodeId add = b.Op("Add", {x, ghost}, {"y"}, {}, "adder");
  b.Output(b.Out(add));
  Status s = b.graph().Validate();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
  EXPECT_NE(s.message().find("ghost"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("adder"), std::string::npos) << s.message();
}

TEST(GraphTest, ValidateCatchesUndefinedGraphOutput) {
  GraphBuilder b;
  ValueId ghost = b.NewValue("nowhere");
  b.Output(ghost);
  Status s = b.graph().Validate();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("nowhere"), std::string::npos) << s.message();
}

TEST(GraphTest, ValidateIgnoresInputsOfDeadNodes) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2}));
  ValueId ghost = b.NewValue("ghost");
  NodeId bad = b.Op("Add", {x, ghost}, {"y"});
  NodeId good = b.Op("Relu", {x}, {"z"});
  b.Output(b.Out(good));
  b.graph().RemoveNode(bad);
  EXPECT_TRUE(b.graph().Validate().ok());
}

TEST(ShapeInfoTest, ConcreteAndToString) {
  ShapeInfo s = testing::Shape({testing::S("N"), testing::D(3), Dim{}});
  EXPECT_FALSE(s.is_concrete());
  EXPECT_EQ(s.ToString(), "[N, 3, ?]");
  EXPECT_EQ(ShapeInfo::Unknown().ToString(), "?");
  EXPECT_TRUE(ShapeInfo::FromDims({2, 3}).is_concrete());
  EXPECT_EQ(ShapeInfo::FromDims({2, 3}).ConcreteDims(), (Dims{2, 3}));
}

}  // namespace
}  // namespace kiln::graph
