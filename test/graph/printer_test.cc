// Tests of PrintGraph (text) and GraphToDot (Graphviz).
#include "graph/printer.h"

#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln::graph {
namespace {

using testing::D;
using testing::GraphBuilder;
using testing::IntsAttr;
using testing::MakeTensor;
using testing::S;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// x -> Conv(w, b) -> Relu -> y, plus a small int64 constant.
struct ConvGraph {
  GraphBuilder b;
  ValueId x, w, bias, conv_out, y;
  NodeId conv, relu;

  ConvGraph() {
    b.graph().name = "tiny";
    x = b.Input("x", DType::kFloat32, testing::Shape({S("N"), D(3), D(8), D(8)}));
    w = b.Constant("w", MakeTensor<float>({4, 3, 3, 3}, std::vector<float>(108, 0.5f)));
    bias = b.Constant("b", MakeTensor<float>({4}, {1, 2, 3, 4}));
    b.Constant("axes", MakeTensor<int64_t>({2}, {0, -1}));
    conv = b.Op("Conv", {x, w, bias}, {"c"}, {{"kernel_shape", IntsAttr({3, 3})}, {"pads", IntsAttr({1, 1, 1, 1})}},
                "conv1");
    conv_out = b.Out(conv);
    Value& c = b.graph().value(conv_out);
    c.dtype = DType::kFloat32;
    c.shape = testing::Shape({S("N"), D(4), D(8), D(8)});
    relu = b.Op("Relu", {conv_out}, {"y"}, {}, "relu1");
    y = b.Out(relu);
    b.Output(y);
  }
};

TEST(PrintGraphTest, OneLinePerNodeWithTypesAndAttributes) {
  ConvGraph t;
  std::string text = PrintGraph(t.b.graph());
  EXPECT_TRUE(Contains(text, "graph \"tiny\"")) << text;
  EXPECT_TRUE(Contains(text, "input  %x:float32[N,3,8,8]")) << text;
  EXPECT_TRUE(Contains(text, "const  %w:float32[4,3,3,3]\n")) << text;  // too big to list values
  EXPECT_TRUE(Contains(text, "const  %b:float32[4]\n")) << text;        // float vectors: no values
  EXPECT_TRUE(Contains(text, "const  %axes:int64[2] = [0, -1]")) << text;
  EXPECT_TRUE(
      Contains(text, "%c:float32[N,4,8,8] = Conv(%x, %w, %b) {kernel_shape=[3, 3], pads=[1, 1, 1, 1]}  # conv1"))
      << text;
  EXPECT_TRUE(Contains(text, "%y:? = Relu(%c)  # relu1")) << text;
  EXPECT_TRUE(Contains(text, "output %y")) << text;
  // Topological order: Conv before Relu.
  EXPECT_LT(text.find("= Conv("), text.find("= Relu("));
}

TEST(PrintGraphTest, OmittedInputsDeadNodesAndOtherAttributeKinds) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::Unknown());
  NodeId clip = b.Op("Clip", {x, kNoValue, kNoValue}, {"y"},
                     {{"mode", testing::StringAttr("a\"b")}, {"alpha", testing::FloatAttr(0.1f)}});
  NodeId dead = b.Op("Neg", {x}, {"z"});
  b.Output(b.Out(clip));
  b.graph().RemoveNode(dead);
  std::string text = PrintGraph(b.graph());
  EXPECT_TRUE(Contains(text, "input  %x:float32[...]")) << text;
  EXPECT_TRUE(Contains(text, "= Clip(%x, _, _) {alpha=0.1, mode=\"a\\\"b\"}")) << text;
  EXPECT_FALSE(Contains(text, "Neg")) << text;
}

TEST(PrintGraphTest, PrintsGraphWithCycle) {
  Graph g;
  ValueId a = *g.AddValue("a");
  ValueId c = *g.AddValue("c");
  Node first;
  first.op_type = "Relu";
  first.inputs = {c};
  first.outputs = {a};
  Node second;
  second.op_type = "Neg";
  second.inputs = {a};
  second.outputs = {c};
  ASSERT_TRUE(g.AddNode(std::move(first)).ok());
  ASSERT_TRUE(g.AddNode(std::move(second)).ok());
  std::string text = PrintGraph(g);
  EXPECT_TRUE(Contains(text, "cycle")) << text;
  EXPECT_TRUE(Contains(text, "Relu(%c)")) << text;
  EXPECT_TRUE(Contains(text, "Neg(%a)")) << text;
}

TEST(GraphToDotTest, ContainsNodesAndShapeLabelledEdges) {
  ConvGraph t;
  std::string dot = GraphToDot(t.b.graph());
  EXPECT_EQ(dot.rfind("digraph \"tiny\" {", 0), 0u) << dot;
  EXPECT_EQ(dot.back(), '\n');
  EXPECT_TRUE(Contains(dot, "}\n")) << dot;
  // Op nodes labelled with op type and name.
  const std::string conv = "n" + std::to_string(t.conv);
  const std::string relu = "n" + std::to_string(t.relu);
  EXPECT_TRUE(Contains(dot, conv + " [label=\"Conv\\nconv1\"")) << dot;
  EXPECT_TRUE(Contains(dot, relu + " [label=\"Relu\\nrelu1\"")) << dot;
  // Graph input and constants as sources, edges labelled by shape.
  EXPECT_TRUE(Contains(dot, "v" + std::to_string(t.x) + " -> " + conv + " [label=\"x\\nfloat32[N,3,8,8]\"]")) << dot;
  EXPECT_TRUE(Contains(dot, "v" + std::to_string(t.w) + " -> " + conv)) << dot;
  EXPECT_TRUE(Contains(dot, conv + " -> " + relu + " [label=\"c\\nfloat32[N,4,8,8]\"]")) << dot;
  // The graph output as a sink.
  EXPECT_TRUE(Contains(dot, relu + " -> out0")) << dot;
}

TEST(GraphToDotTest, ColourGroupsAndHiddenConstants) {
  ConvGraph t;
  DotOptions options;
  options.include_constants = false;
  options.node_color_group.assign(t.b.graph().num_nodes(), -1);
  options.node_color_group[static_cast<size_t>(t.relu)] = 1;
  std::string dot = GraphToDot(t.b.graph(), options);
  const std::string conv = "n" + std::to_string(t.conv);
  const std::string relu = "n" + std::to_string(t.relu);
  EXPECT_FALSE(Contains(dot, "v" + std::to_string(t.w) + " ")) << dot;  // neither box nor edge
  EXPECT_TRUE(Contains(dot, relu + " [label=\"Relu\\nrelu1\", fillcolor=")) << dot;
  EXPECT_TRUE(Contains(dot, conv + " [label=\"Conv\\nconv1\"];")) << dot;
}

TEST(GraphToDotTest, GroupLabelsNameTheRegion) {
  ConvGraph t;
  DotOptions options;
  options.include_constants = false;
  options.node_color_group.assign(t.b.graph().num_nodes(), -1);
  options.node_color_group[static_cast<size_t>(t.relu)] = 1;
  options.group_labels = {"", "region 1: elementwise"};
  std::string dot = GraphToDot(t.b.graph(), options);
  const std::string relu = "n" + std::to_string(t.relu);
  EXPECT_TRUE(Contains(dot, relu + " [label=\"Relu\\nrelu1\\n[region 1: elementwise]\", fillcolor=")) << dot;
  EXPECT_TRUE(Contains(dot, "tooltip=\"region 1: elementwise\"")) << dot;
}

TEST(GraphToDotTest, ShortColourVectorIsFine) {
  ConvGraph t;
  DotOptions options;
  options.node_color_group = {0};  // only node 0 coloured
  std::string dot = GraphToDot(t.b.graph(), options);
  EXPECT_TRUE(Contains(dot, "n0 [label=\"Conv\\nconv1\", fillcolor=")) << dot;
}

}  // namespace
}  // namespace kiln::graph
