// Sub-graphs in the IR: what the loader builds for If/Loop/Scan bodies
// (outer-scope values as implicit inputs, at any depth), how the printer
// shows them, and the passes that look into them.
#include <gtest/gtest.h>

#include <string>

#include "graph/dead_code.h"
#include "graph/onnx_loader.h"
#include "graph/pipeline.h"
#include "graph/printer.h"
#include "graph/subgraph_passes.h"
#include "test/control_flow_models.h"
#include "test/graph/graph_test_util.h"

namespace kiln::graph {
namespace {

using kiln::testing::OnnxModelBuilder;
using testing::CountLive;
using testing::FindLive;

Graph Load(const OnnxModelBuilder& b) {
  const std::string bytes = b.Serialize();
  auto g = LoadOnnxModel(bytes.data(), bytes.size(), LoadOptions{});
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return g.ok() ? std::move(g).value() : Graph();
}

const Graph& Body(const Graph& g, NodeId node, const std::string& attr) { return *g.node(node).FindAttribute(attr)->g; }

TEST(SubgraphLoadTest, OuterScopeValuesBecomeImplicitInputsInAttributeOrder) {
  Graph g = Load(kiln::testing::IfModel());
  const NodeId if_id = FindLive(g, "If");
  ASSERT_NE(if_id, kNoNode);
  const Node& node = g.node(if_id);
  // cond, then x for else_branch, x for then_branch (attribute-name order).
  EXPECT_EQ(node.num_explicit_inputs(), 1u);
  ASSERT_EQ(node.implicit_inputs, 2);
  EXPECT_EQ(g.value(node.inputs[1]).name, "x");
  EXPECT_EQ(g.value(node.inputs[2]).name, "x");
  const Graph& then_branch = Body(g, if_id, "then_branch");
  ASSERT_EQ(then_branch.outer_scope_values().size(), 1u);
  const Value& x = then_branch.value(then_branch.outer_scope_values()[0]);
  EXPECT_TRUE(x.is_outer_scope);
  EXPECT_EQ(x.dtype, DType::kFloat32);
  EXPECT_EQ(x.shape.ToString(), "[3]");
  // x's users in the outer graph include the If, twice.
  EXPECT_EQ(g.value(node.inputs[1]).users.size(), 2u);
}

TEST(SubgraphLoadTest, ValuesTwoScopesOutArePassedDownThroughEveryLevel) {
  Graph g = Load(kiln::testing::LoopWithIfModel());
  const NodeId loop = FindLive(g, "Loop");
  ASSERT_NE(loop, kNoNode);
  const Graph& body = Body(g, loop, "body");
  // The Loop passes x down because the If inside its body reads it.
  std::vector<std::string> loop_outer;
  for (ValueId v : body.outer_scope_values()) loop_outer.push_back(body.value(v).name);
  EXPECT_EQ(loop_outer, (std::vector<std::string>{"threshold", "x"}));
  const NodeId inner_if = FindLive(body, "If");
  ASSERT_NE(inner_if, kNoNode);
  const Graph& add = Body(body, inner_if, "else_branch");
  std::vector<std::string> if_outer;
  for (ValueId v : add.outer_scope_values()) if_outer.push_back(add.value(v).name);
  EXPECT_EQ(if_outer, (std::vector<std::string>{"s", "x"}));
  EXPECT_TRUE(g.Validate().ok());
}

TEST(SubgraphPrintTest, BodiesFollowTheirNodeWithOuterLines) {
  Graph g = Load(kiln::testing::IfModel());
  const std::string text = PrintGraph(g);
  EXPECT_NE(text.find("= If(%cond | %x, %x)"), std::string::npos) << text;
  EXPECT_NE(text.find("  then_branch \"choose_then_branch\" {"), std::string::npos) << text;
  EXPECT_NE(text.find("    outer  %x:float32[3]"), std::string::npos) << text;
  EXPECT_NE(text.find("    %then_y:float32[3] = Add(%x, %one)"), std::string::npos) << text;
  const std::string dot = GraphToDot(g);
  EXPECT_NE(dot.find("subgraph \"cluster_n0_then_branch_\""), std::string::npos) << dot;
}

TEST(SubgraphPassTest, DeadCodeKeepsWhatOnlyABodyReads) {
  OnnxModelBuilder b = kiln::testing::IfModel();
  // x2 = Relu(x) read only inside the else branch.
  b.Node("Relu", {"x"}, {"x2"}, "relu");
  auto* node = b.proto().mutable_graph()->mutable_node(0);
  node->mutable_attribute(1)->mutable_g()->mutable_node(0)->set_input(1, "x2");
  // The Relu comes after the If in the file; move it first.
  b.proto().mutable_graph()->mutable_node()->SwapElements(0, 1);
  Graph g = Load(b);
  ASSERT_TRUE(EliminateDeadNodes(g).ok());
  EXPECT_EQ(CountLive(g, "Relu"), 1u);
}

TEST(SubgraphPassTest, AnIfOnAConstantConditionBecomesItsBranch) {
  for (const bool cond : {true, false}) {
    SCOPED_TRACE(cond ? "then" : "else");
    OnnxModelBuilder b = kiln::testing::IfModel();
    auto* graph = b.proto().mutable_graph();
    graph->mutable_input()->DeleteSubrange(0, 1);  // cond becomes an initializer
    kiln::testing::BoolInit(b, "cond", cond);
    Graph g = Load(b);
    ASSERT_TRUE(RunGraphPipeline(g, PipelineOptions{}).ok());
    EXPECT_EQ(CountLive(g, "If"), 0u) << PrintGraph(g);
    EXPECT_EQ(CountLive(g, cond ? "Add" : "Mul"), 1u) << PrintGraph(g);
    ASSERT_EQ(g.outputs().size(), 1u);
    const Value& y = g.value(g.outputs()[0]);
    EXPECT_EQ(y.name, "y");
    EXPECT_NE(y.producer, kNoNode);
    EXPECT_TRUE(g.Validate().ok());
  }
}

TEST(SubgraphPassTest, NotInlinedWhenTheConditionIsAnInput) {
  Graph g = Load(kiln::testing::IfModel());
  ASSERT_TRUE(RunGraphPipeline(g, PipelineOptions{}).ok());
  EXPECT_EQ(CountLive(g, "If"), 1u);
}

TEST(SubgraphPassTest, ConstantsOfTheEnclosingGraphBecomeConstantsInBodies) {
  OnnxModelBuilder b = kiln::testing::LoopWithIfModel();
  // threshold becomes an initializer: the Loop body then reads a constant.
  b.proto().mutable_graph()->mutable_input()->DeleteSubrange(2, 1);
  b.FloatInit("threshold", {}, {5.0f});
  Graph g = Load(b);
  ASSERT_TRUE(RunGraphPipeline(g, PipelineOptions{}).ok());
  const NodeId loop = FindLive(g, "Loop");
  ASSERT_NE(loop, kNoNode);
  const Graph& body = Body(g, loop, "body");
  const auto threshold = body.FindValue("threshold");
  ASSERT_TRUE(threshold.has_value());
  ASSERT_TRUE(body.value(*threshold).constant.has_value());
  EXPECT_FLOAT_EQ(*body.value(*threshold).constant->data<float>(), 5.0f);
  EXPECT_FALSE(body.value(*body.FindValue("x")).constant.has_value());
}

}  // namespace
}  // namespace kiln::graph
