// Tests of EliminateDeadNodes: unreachable nodes and unused constants go,
// everything that feeds a graph output stays.
#include "graph/dead_code.h"

#include <gtest/gtest.h>

#include <memory>

#include "graph_test_util.h"

namespace kiln::graph {
namespace {

using testing::GraphBuilder;
using testing::MakeTensor;

TEST(DeadCodeTest, RemovesNodesThatReachNoOutput) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2}));
  NodeId relu = b.Op("Relu", {x}, {"y"});
  NodeId unused = b.Op("Neg", {x}, {"unused"});
  NodeId unused_chain = b.Op("Exp", {b.Out(unused)}, {"unused2"});
  b.Output(b.Out(relu));
  Graph& g = b.graph();
  ASSERT_EQ(g.num_live_nodes(), 3u);

  auto changed = EliminateDeadNodes(g);
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(g.num_live_nodes(), 1u);
  EXPECT_FALSE(g.node(relu).dead);
  EXPECT_TRUE(g.node(unused).dead);
  EXPECT_TRUE(g.node(unused_chain).dead);
  EXPECT_EQ(g.value(x).users, (std::vector<NodeId>{relu}));
  EXPECT_TRUE(g.Validate().ok());
}

// A multi-output node is live when any one of its outputs is needed.
TEST(DeadCodeTest, KeepsNodeWhenOneOutputIsUsed) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({4}));
  NodeId split = b.Op("Split", {x}, {"a", "b"});
  NodeId use_b = b.Op("Relu", {b.Out(split, 1)}, {"y"});
  b.Output(b.Out(use_b));
  auto changed = EliminateDeadNodes(b.graph());
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
  EXPECT_FALSE(b.graph().node(split).dead);
}

TEST(DeadCodeTest, DropsConstantsNoLiveNodeUses) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2}));
  ValueId used = b.Constant("used", MakeTensor<float>({2}, {1, 2}));
  ValueId only_dead = b.Constant("only_dead", MakeTensor<float>({2}, {3, 4}));
  ValueId never = b.Constant("never", MakeTensor<float>({2}, {5, 6}));
  ValueId out_const = b.Constant("out_const", MakeTensor<float>({1}, {7}));
  NodeId add = b.Op("Add", {x, used}, {"y"});
  b.Op("Mul", {x, only_dead}, {"dead"});
  b.Output(b.Out(add));
  b.Output(out_const);
  Graph& g = b.graph();

  auto changed = EliminateDeadNodes(g);
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  EXPECT_TRUE(g.value(used).constant.has_value());
  EXPECT_FALSE(g.value(only_dead).constant.has_value());
  EXPECT_FALSE(g.value(never).constant.has_value());
  // A constant graph output is used by the caller.
  EXPECT_TRUE(g.value(out_const).constant.has_value());
  EXPECT_TRUE(g.Validate().ok());
}

TEST(DeadCodeTest, NothingToDoReportsNoChange) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2}));
  ValueId w = b.Constant("w", MakeTensor<float>({2}, {1, 2}));
  NodeId add = b.Op("Add", {x, w}, {"y"});
  b.Output(b.Out(add));
  auto changed = EliminateDeadNodes(b.graph());
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
  EXPECT_EQ(b.graph().num_live_nodes(), 1u);
}

// What a sub-graph reads from outside is an implicit input of its node, so
// a constant only a body reads stays, and one nothing reads still goes.
TEST(DeadCodeTest, KeepsConstantsASubgraphReads) {
  GraphBuilder b;
  ValueId cond = b.Input("cond", DType::kBool, ShapeInfo::FromDims({}));
  ValueId outer = b.Constant("outer", MakeTensor<float>({1}, {1}));
  ValueId unused = b.Constant("unused", MakeTensor<float>({1}, {2}));
  auto branch = std::make_shared<Graph>();
  ValueId inner = *branch->AddOuterScopeValue("outer", DType::kFloat32, ShapeInfo::FromDims({1}));
  branch->AddOutput(inner);
  Attribute then_branch;
  then_branch.kind = Attribute::Kind::kGraph;
  then_branch.g = branch;
  Attribute else_branch = then_branch;
  NodeId if_node =
      b.Op("If", {cond, outer, outer}, {"r"}, {{"then_branch", then_branch}, {"else_branch", else_branch}});
  b.graph().node(if_node).implicit_inputs = 2;
  b.Output(b.Out(if_node));
  ASSERT_TRUE(b.graph().Validate().ok());
  ASSERT_TRUE(EliminateDeadNodes(b.graph()).ok());
  EXPECT_TRUE(b.graph().value(outer).constant.has_value());
  EXPECT_FALSE(b.graph().value(unused).constant.has_value());
}

// Dead code may even contain a cycle; it is removed without fuss.
TEST(DeadCodeTest, RemovesDeadCycle) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2}));
  NodeId relu = b.Op("Relu", {x}, {"y"});
  b.Output(b.Out(relu));
  Graph& g = b.graph();
  ValueId p = b.NewValue("p");
  ValueId q = b.NewValue("q");
  Node first;
  first.op_type = "Neg";
  first.inputs = {q};
  first.outputs = {p};
  Node second;
  second.op_type = "Neg";
  second.inputs = {p};
  second.outputs = {q};
  ASSERT_TRUE(g.AddNode(std::move(first)).ok());
  ASSERT_TRUE(g.AddNode(std::move(second)).ok());
  ASSERT_FALSE(g.Validate().ok());
  auto changed = EliminateDeadNodes(g);
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  EXPECT_EQ(g.num_live_nodes(), 1u);
  EXPECT_TRUE(g.Validate().ok());
}

}  // namespace
}  // namespace kiln::graph
