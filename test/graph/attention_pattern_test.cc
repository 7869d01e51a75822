// graph/attention_pattern.h on attention written the way exporters write it:
// which values the region reads, how their axes map to [b, h, s, d], the
// folded scale, the mask; the partitioner's one attention region; and the
// chains it must leave alone.
#include "graph/attention_pattern.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "graph/onnx_loader.h"
#include "graph/partitioner.h"
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

std::optional<AttentionPattern> AtSoftmax(const Graph& g) {
  for (size_t i = 0; i < g.num_nodes(); ++i) {
    const Node& n = g.node(static_cast<NodeId>(i));
    if (n.op_type == "Softmax") return AsAttention(g, n);
  }
  ADD_FAILURE() << "no Softmax";
  return std::nullopt;
}

ValueId ValueNamed(const Graph& g, const std::string& name) {
  for (size_t i = 0; i < g.num_values(); ++i) {
    if (g.value(static_cast<ValueId>(i)).name == name) return static_cast<ValueId>(i);
  }
  return kNoValue;
}

void Transpose(OnnxModelBuilder& b, const std::string& in, const std::string& out, const std::vector<int64_t>& perm) {
  OnnxModelBuilder::IntsAttr(b.Node("Transpose", {in}, {out}), "perm", perm);
}

// q, k, v [2, seq, 4, 64] -> heads; optional pieces by flag.
OnnxModelBuilder Exported(bool mask_first, bool out_transpose, bool mul_scales) {
  OnnxModelBuilder b(17);
  for (const char* x : {"q", "k", "v"}) b.Input(x, kFloat, {2, -1, 4, 64}, {"batch", "seq", "heads", "dim"});
  b.Input("mask", kFloat, {2, 1, 1, -1}, {"batch", "one", "one", "seq"});
  b.Output("y");
  Transpose(b, "q", "qh", {0, 2, 1, 3});
  Transpose(b, "k", "kt", {0, 2, 3, 1});
  Transpose(b, "v", "vh", {0, 2, 1, 3});
  if (mul_scales) {
    b.FloatInit("half", {}, {0.5f});
    b.Node("Mul", {"qh", "half"}, {"qs"});
    b.Node("Mul", {"half", "kt"}, {"ks"});  // the constant on either side
    b.Node("MatMul", {"qs", "ks"}, {"scaled"});
  } else {
    b.FloatInit("root", {}, {8.0f});
    b.Node("MatMul", {"qh", "kt"}, {"scores"});
    b.Node("Div", {"scores", "root"}, {"scaled"});
  }
  if (mask_first) {
    b.Node("Add", {"mask", "scaled"}, {"masked"});
  } else {
    b.Node("Add", {"scaled", "mask"}, {"masked"});
  }
  OnnxModelBuilder::IntAttr(b.Node("Softmax", {"masked"}, {"probs"}), "axis", -1);
  b.Node("MatMul", {"probs", "vh"}, {out_transpose ? "ctx" : "y"});
  if (out_transpose) Transpose(b, "ctx", "y", {0, 2, 1, 3});
  return b;
}

TEST(AttentionPattern, ExporterChainFoldsTransposesAndScale) {
  const Graph g = LoadOrDie(Exported(/*mask_first=*/true, /*out_transpose=*/true, /*mul_scales=*/false));
  const std::optional<AttentionPattern> p = AtSoftmax(g);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->q, ValueNamed(g, "q"));
  EXPECT_EQ(p->k, ValueNamed(g, "k"));
  EXPECT_EQ(p->v, ValueNamed(g, "v"));
  EXPECT_EQ(p->mask, ValueNamed(g, "mask"));
  EXPECT_EQ(p->output, ValueNamed(g, "y"));
  const std::array<int, 4> heads_second{0, 2, 1, 3};
  EXPECT_EQ(p->q_axes, heads_second);
  EXPECT_EQ(p->k_axes, heads_second);  // K^T's [b, h, d, s] read from [b, s, h, d]
  EXPECT_EQ(p->v_axes, heads_second);
  EXPECT_EQ(p->out_axes, heads_second);
  EXPECT_FLOAT_EQ(p->scale, 0.125f);
  EXPECT_EQ(p->head_dim, 64);
  EXPECT_EQ(p->nodes.size(), 9u);

  auto regions = PartitionGraph(g);
  ASSERT_TRUE(regions.ok()) << regions.status().ToString();
  ASSERT_EQ(regions->size(), 1u);
  const Region& r = (*regions)[0];
  EXPECT_EQ(r.kind, RegionKind::kAttention);
  EXPECT_EQ(r.nodes.size(), 9u);
  EXPECT_EQ(r.outputs, std::vector<ValueId>{ValueNamed(g, "y")});
  for (const char* in : {"q", "k", "v", "mask", "root"}) {
    EXPECT_NE(std::find(r.inputs.begin(), r.inputs.end(), ValueNamed(g, in)), r.inputs.end()) << in;
  }
  EXPECT_NE(r.reason.find("attention 4 heads x seq queries x seq keys, head dim 64, mask"), std::string::npos)
      << r.reason;

  PartitionOptions off;
  off.attention_regions = false;
  auto without = PartitionGraph(g, off);
  ASSERT_TRUE(without.ok());
  for (const Region& region : *without) EXPECT_NE(region.kind, RegionKind::kAttention);
}

TEST(AttentionPattern, ScalesOnQAndKMultiplyAndTheOutputMayStayInHeads) {
  const Graph g = LoadOrDie(Exported(/*mask_first=*/false, /*out_transpose=*/false, /*mul_scales=*/true));
  const std::optional<AttentionPattern> p = AtSoftmax(g);
  ASSERT_TRUE(p.has_value());
  EXPECT_FLOAT_EQ(p->scale, 0.25f);
  EXPECT_EQ(p->mask, ValueNamed(g, "mask"));
  EXPECT_EQ(p->output, ValueNamed(g, "y"));
  EXPECT_EQ(p->out_axes, (std::array<int, 4>{0, 1, 2, 3}));
  EXPECT_EQ(p->nodes.size(), 9u);  // 3 Transposes, 2 Muls, 2 MatMuls, Add, Softmax
}

TEST(AttentionPattern, AnIntermediateReadElsewhereStaysOutside) {
  OnnxModelBuilder b = Exported(false, true, false);
  b.Output("qh");  // the transposed Q is a graph output too: its Transpose runs, the region reads its result
  const Graph g = LoadOrDie(b);
  const std::optional<AttentionPattern> p = AtSoftmax(g);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->q, ValueNamed(g, "qh"));
  EXPECT_EQ(p->q_axes, (std::array<int, 4>{0, 1, 2, 3}));
  EXPECT_EQ(p->nodes.size(), 8u);
  const NodeId transpose_q = g.value(ValueNamed(g, "qh")).producer;
  EXPECT_EQ(std::find(p->nodes.begin(), p->nodes.end(), transpose_q), p->nodes.end());
}

TEST(AttentionPattern, NotFusedWhenTheProbabilitiesAreReadElsewhere) {
  OnnxModelBuilder b = Exported(false, true, false);
  b.Output("probs");
  const Graph g = LoadOrDie(b);
  EXPECT_FALSE(AtSoftmax(g).has_value());
}

TEST(AttentionPattern, NotFusedWhenVIsScaledOrTheMaskIsScaled) {
  {
    OnnxModelBuilder b(17);
    for (const char* x : {"q", "k", "v"}) b.Input(x, kFloat, {1, 2, 8, 16});
    b.FloatInit("two", {}, {2.0f});
    b.Output("y");
    Transpose(b, "k", "kt", {0, 1, 3, 2});
    b.Node("MatMul", {"q", "kt"}, {"scores"});
    b.Node("Softmax", {"scores"}, {"probs"});
    b.Node("Mul", {"v", "two"}, {"vs"});
    b.Node("MatMul", {"probs", "vs"}, {"y"});
    const Graph g = LoadOrDie(b);
    EXPECT_FALSE(AtSoftmax(g).has_value());
  }
  {
    // (scores + mask) * 2: the scale would apply to the mask too.
    OnnxModelBuilder b(17);
    for (const char* x : {"q", "k", "v"}) b.Input(x, kFloat, {1, 2, 8, 16});
    b.Input("mask", kFloat, {1, 1, 1, 8});
    b.FloatInit("two", {}, {2.0f});
    b.Output("y");
    Transpose(b, "k", "kt", {0, 1, 3, 2});
    b.Node("MatMul", {"q", "kt"}, {"scores"});
    b.Node("Add", {"scores", "mask"}, {"masked"});
    b.Node("Mul", {"masked", "two"}, {"scaled"});
    b.Node("Softmax", {"scaled"}, {"probs"});
    b.Node("MatMul", {"probs", "v"}, {"y"});
    const Graph g = LoadOrDie(b);
    EXPECT_FALSE(AtSoftmax(g).has_value());
  }
}

}  // namespace
}  // namespace kiln::graph
