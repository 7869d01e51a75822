// The row-reduction planner on its own: no JIT, no LLVM (the target links
// //jit:row_region_plan only). Regions are built by hand with the dims the
// planner sees.
#include "jit/row_region_plan.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "graph/region.h"
#include "jit/row_layout.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "test/tensors.h"

namespace kiln::jit::internal {
namespace {

using graph::ValueId;
using L = RowInputLayout;

// Builds a graph and the row-reduction region covering every node added,
// in order. Every value carries its dims: AsRowReduction needs the rank of
// a reduction's input.
class Builder {
 public:
  Builder() { region.kind = graph::RegionKind::kRowReduction; }

  ValueId Input(const std::string& name, const Dims& dims) {
    const ValueId id =
        kiln::testing::ValueOrAbort(graph.AddValue(name, DType::kFloat32, graph::ShapeInfo::FromDims(dims)));
    graph.AddInput(id);
    region.inputs.push_back(id);
    input_dims.push_back(dims);
    return id;
  }
  ValueId Constant(const std::string& name, const Dims& dims, float fill) {
    const ValueId id =
        kiln::testing::ValueOrAbort(graph.AddValue(name, DType::kFloat32, graph::ShapeInfo::FromDims(dims)));
    Tensor t = kiln::testing::ValueOrAbort(Tensor::Allocate(DType::kFloat32, dims));
    for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = fill;
    graph.value(id).constant = t;
    region.inputs.push_back(id);
    input_dims.push_back(dims);
    return id;
  }
  ValueId Axes(const std::string& name, const std::vector<int64_t>& axes) {
    const Dims dims = {static_cast<int64_t>(axes.size())};
    const ValueId id =
        kiln::testing::ValueOrAbort(graph.AddValue(name, DType::kInt64, graph::ShapeInfo::FromDims(dims)));
    Tensor t = kiln::testing::ValueOrAbort(Tensor::Allocate(DType::kInt64, dims));
    std::memcpy(t.data<int64_t>(), axes.data(), axes.size() * sizeof(int64_t));
    graph.value(id).constant = t;
    region.inputs.push_back(id);
    input_dims.push_back(dims);
    return id;
  }
  ValueId Node(const std::string& op, const std::vector<ValueId>& inputs, const std::string& out, const Dims& dims,
               std::map<std::string, graph::Attribute> attrs = {}, int opset = 17) {
    const ValueId id =
        kiln::testing::ValueOrAbort(graph.AddValue(out, DType::kFloat32, graph::ShapeInfo::FromDims(dims)));
    graph::Node n;
    n.name = out + "_node";
    n.op_type = op;
    n.opset = opset;
    n.inputs = inputs;
    n.outputs = {id};
    n.attributes = std::move(attrs);
    region.nodes.push_back(kiln::testing::ValueOrAbort(graph.AddNode(std::move(n))));
    return id;
  }
  void Output(ValueId id) {
    graph.AddOutput(id);
    region.outputs.push_back(id);
  }
  StatusOr<RowRegionPlan> Plan() const { return PlanRowRegion(graph, region, input_dims); }
  StatusOr<RowRegionPlan> Plan(const std::vector<Dims>& dims) const { return PlanRowRegion(graph, region, dims); }

  graph::Graph graph;
  graph::Region region;
  std::vector<Dims> input_dims;
};

graph::Attribute IntAttr(int64_t v) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kInt;
  a.i = v;
  return a;
}

// scores [.., n] + mask, then Softmax over the last axis (opset 13).
Builder MaskedSoftmax(const Dims& scores, const Dims& mask) {
  Builder b;
  const ValueId s = b.Input("scores", scores);
  const ValueId m = b.Input("mask", mask);
  const ValueId masked = b.Node("Add", {s, m}, "masked", scores);
  b.Output(b.Node("Softmax", {masked}, "y", scores, {}, 13));
  return b;
}

RowLayout LayoutOf(const Builder& b, const std::vector<Dims>& dims) {
  StatusOr<RowRegionPlan> plan = b.Plan(dims);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  if (!plan.ok()) return {};
  StatusOr<RowLayout> layout = GenericRowLayout(*plan);
  EXPECT_TRUE(layout.ok()) << layout.status().ToString();
  return layout.ok() ? *layout : RowLayout{};
}

TEST(RowRegionPlan, LayerNormThenRelu) {
  Builder b;
  const ValueId x = b.Input("x", {3, 2, 8});
  const ValueId gamma = b.Constant("gamma", {8}, 1.5f);
  const ValueId beta = b.Constant("beta", {8}, 0.5f);
  const ValueId ln = b.Node("LayerNormalization", {x, gamma, beta}, "ln", {3, 2, 8});
  b.Output(b.Node("Relu", {ln}, "y", {3, 2, 8}));

  StatusOr<RowRegionPlan> plan = b.Plan();
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->domain, (Dims{3, 2, 8}));
  EXPECT_EQ(plan->axis, 2);
  EXPECT_EQ(plan->rows, 6);
  EXPECT_EQ(plan->row_len, 8);
  // Mean, then variance: two accumulation passes before the output pass.
  ASSERT_EQ(plan->reductions.size(), 1u);
  EXPECT_EQ(plan->reductions[0].op.op, graph::RowOp::kLayerNorm);
  EXPECT_EQ(plan->reductions[0].stage, 0);
  EXPECT_EQ(plan->reductions[0].accumulations, 2);
  EXPECT_EQ(plan->num_passes, 2);
  EXPECT_EQ(plan->output_dims, (std::vector<Dims>{{3, 2, 8}}));
  EXPECT_EQ(plan->output_per_row, (std::vector<bool>{false}));
  ASSERT_EQ(plan->inputs.size(), 3u);
  EXPECT_TRUE(plan->inputs[0].outer_dense);
  EXPECT_FALSE(plan->inputs[0].per_row);
  // Scale and B are one row shared by every row.
  EXPECT_EQ(plan->inputs[1].outer_strides, (std::vector<int64_t>{0, 0}));
  EXPECT_FALSE(plan->inputs[1].outer_dense);

  StatusOr<RowLayout> layout = GenericRowLayout(*plan);
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  EXPECT_EQ(layout->inputs, (std::vector<L>{L::kDense, L::kSharedRow, L::kSharedRow}));
  EXPECT_EQ(layout->ToString(), "DRR|00000|0");
  EXPECT_FALSE(layout->IsAmbiguous());
}

TEST(RowRegionPlan, DecomposedMeanHasAPerRowOutput) {
  // ReduceSum (opset 13: axes from a constant input, never read as data),
  // its per-row result also a region output, and x - sum row-shaped.
  Builder b;
  const ValueId x = b.Input("x", {4, 5, 6});
  const ValueId axes = b.Axes("axes", {-1});
  const ValueId sum = b.Node("ReduceSum", {x, axes}, "sum", {4, 5, 1}, {}, 13);
  const ValueId d = b.Node("Sub", {x, sum}, "d", {4, 5, 6});
  const ValueId sq = b.Node("Mul", {d, d}, "sq", {4, 5, 6});
  const ValueId var = b.Node("ReduceSum", {sq, axes}, "var", {4, 5, 1}, {}, 13);
  b.Output(d);
  b.Output(var);

  StatusOr<RowRegionPlan> plan = b.Plan();
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->rows, 20);
  EXPECT_EQ(plan->row_len, 6);
  // The second sum needs the first: it accumulates in the next pass.
  ASSERT_EQ(plan->reductions.size(), 2u);
  EXPECT_EQ(plan->reductions[0].stage, 0);
  EXPECT_EQ(plan->reductions[1].stage, 1);
  EXPECT_EQ(plan->num_passes, 2);
  EXPECT_EQ(plan->output_dims, (std::vector<Dims>{{4, 5, 6}, {4, 5, 1}}));
  EXPECT_EQ(plan->output_per_row, (std::vector<bool>{false, true}));
  EXPECT_TRUE(plan->per_row[static_cast<size_t>(sum)]);
  EXPECT_FALSE(plan->per_row[static_cast<size_t>(d)]);
  EXPECT_TRUE(plan->inputs[1].unused);

  StatusOr<RowLayout> layout = GenericRowLayout(*plan);
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  EXPECT_EQ(layout->inputs, (std::vector<L>{L::kDense, L::kNotRead}));
  // x, axes, sum, d, sq, var in value-id order.
  EXPECT_EQ(layout->value_per_row, (std::vector<bool>{false, true, true, false, false, true}));
  EXPECT_EQ(layout->output_per_row, (std::vector<bool>{false, true}));
}

TEST(RowRegionPlan, SoftmaxWithAPerRowMask) {
  Builder b = MaskedSoftmax({2, 3, 16}, {2, 3, 1});
  StatusOr<RowRegionPlan> plan = b.Plan();
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->rows, 6);
  EXPECT_EQ(plan->row_len, 16);
  EXPECT_EQ(plan->num_passes, 2);  // max, then the sum of exps
  ASSERT_EQ(plan->inputs.size(), 2u);
  EXPECT_FALSE(plan->inputs[0].per_row);
  EXPECT_TRUE(plan->inputs[1].per_row);
  EXPECT_TRUE(plan->inputs[1].outer_dense);
  EXPECT_EQ(plan->output_per_row, (std::vector<bool>{false}));
  EXPECT_EQ(LayoutOf(b, b.input_dims).inputs, (std::vector<L>{L::kDense, L::kPerRow}));
  // One mask value for every row; one mask row for every row.
  EXPECT_EQ(LayoutOf(b, {{2, 3, 16}, {1}}).inputs, (std::vector<L>{L::kDense, L::kSharedValue}));
  EXPECT_EQ(LayoutOf(b, {{2, 3, 16}, {16}}).inputs, (std::vector<L>{L::kDense, L::kSharedRow}));
}

TEST(RowRegionPlan, MaskBroadcastAlongSomeLeadingDimsHasNoGenericLayout) {
  // A mask [2, 1, 16] over [2, 3, 16]: a specialization reads it with outer
  // strides, generic code cannot.
  Builder b = MaskedSoftmax({2, 3, 16}, {2, 1, 16});
  StatusOr<RowRegionPlan> plan = b.Plan();
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->inputs[1].outer_strides, (std::vector<int64_t>{16, 0}));
  EXPECT_FALSE(plan->inputs[1].outer_dense);
  StatusOr<RowLayout> layout = GenericRowLayout(*plan);
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.status().code(), StatusCode::kUnsupported);
}

TEST(RowRegionPlan, RejectsAnInputBroadcastAlongPartOfTheRow) {
  // LayerNorm over [8, 16] (axis 1) with B [1, 16]: neither the whole row
  // nor one value per row.
  Builder b;
  const ValueId x = b.Input("x", {2, 8, 16});
  const ValueId gamma = b.Constant("gamma", {8, 16}, 1.f);
  const ValueId bias = b.Input("bias", {1, 16});
  b.Output(b.Node("LayerNormalization", {x, gamma, bias}, "y", {2, 8, 16}, {{"axis", IntAttr(1)}}));
  StatusOr<RowRegionPlan> plan = b.Plan();
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(plan.status().message().find("part of the row"), std::string::npos) << plan.status().ToString();
}

TEST(RowRegionPlan, RejectsAnEmptyDomain) {
  for (const Dims& dims : {Dims{0, 8}, Dims{3, 0}}) {
    SCOPED_TRACE(DimsToString(dims));
    Builder b;
    const ValueId x = b.Input("x", dims);
    b.Output(b.Node("Softmax", {x}, "y", dims, {}, 13));
    StatusOr<RowRegionPlan> plan = b.Plan();
    ASSERT_FALSE(plan.ok());
    EXPECT_EQ(plan.status().code(), StatusCode::kUnsupported);
    EXPECT_NE(plan.status().message().find("empty domain"), std::string::npos) << plan.status().ToString();
  }
}

TEST(RowRegionPlan, RejectsAnElementwiseRegion) {
  Builder b;
  const ValueId x = b.Input("x", {4, 8});
  b.Output(b.Node("Relu", {x}, "y", {4, 8}));
  b.region.kind = graph::RegionKind::kElementwise;
  StatusOr<RowRegionPlan> plan = b.Plan();
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kUnsupported);
}

TEST(RowRegionPlan, RejectsDimsOfTheWrongCount) {
  Builder b = MaskedSoftmax({2, 16}, {2, 16});
  StatusOr<RowRegionPlan> plan = b.Plan({{2, 16}});
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
}

TEST(RowLayout, SingleRowCannotTellDenseFromShared) {
  Builder b = MaskedSoftmax({4, 16}, {4, 16});
  // On one row, a dense mask and a shared mask row read the same elements.
  const RowLayout one_row = LayoutOf(b, {{1, 16}, {1, 16}});
  EXPECT_EQ(one_row.inputs, (std::vector<L>{L::kDenseOrSharedRow, L::kDenseOrSharedRow}));
  EXPECT_TRUE(one_row.IsAmbiguous());
  EXPECT_EQ(one_row.ToString(), "??|0000|0");

  const RowLayout dense = LayoutOf(b, {{4, 16}, {4, 16}});
  const RowLayout shared = LayoutOf(b, {{4, 16}, {16}});
  EXPECT_EQ(dense.ToString(), "DD|0000|0");
  EXPECT_EQ(shared.ToString(), "DR|0000|0");
  // Either code serves the single-row call and itself, not the other.
  EXPECT_TRUE(dense.Serves(one_row));
  EXPECT_TRUE(shared.Serves(one_row));
  EXPECT_TRUE(dense.Serves(dense));
  EXPECT_FALSE(dense.Serves(shared));
  EXPECT_FALSE(shared.Serves(dense));
  // An ambiguous call does not serve a definite one.
  EXPECT_FALSE(one_row.Serves(dense));
}

TEST(RowLayout, SingleRowCannotTellPerRowFromSharedValue) {
  Builder b = MaskedSoftmax({4, 16}, {4, 1});
  const RowLayout one_row = LayoutOf(b, {{1, 16}, {1, 1}});
  EXPECT_EQ(one_row.inputs, (std::vector<L>{L::kDenseOrSharedRow, L::kPerRowOrSharedValue}));
  const RowLayout per_row = LayoutOf(b, {{4, 16}, {4, 1}});
  const RowLayout shared = LayoutOf(b, {{4, 16}, {1, 1}});
  EXPECT_EQ(per_row.inputs, (std::vector<L>{L::kDense, L::kPerRow}));
  EXPECT_EQ(shared.inputs, (std::vector<L>{L::kDense, L::kSharedValue}));
  EXPECT_TRUE(per_row.Serves(one_row));
  EXPECT_TRUE(shared.Serves(one_row));
  EXPECT_FALSE(per_row.Serves(shared));
  // A mask covering the row is laid out differently (its value is not per
  // row): no per-row code serves it, even on one row.
  const RowLayout full_mask_one_row = LayoutOf(b, {{1, 16}, {1, 16}});
  EXPECT_FALSE(per_row.Serves(full_mask_one_row));
}

TEST(RowLayout, DifferentPerRowValuesOrOutputsDoNotServe) {
  RowLayout code{{L::kDense}, {false, true}, {true}};
  EXPECT_TRUE(code.Serves(code));
  EXPECT_FALSE(code.Serves(RowLayout{{L::kDense}, {false, false}, {true}}));
  EXPECT_FALSE(code.Serves(RowLayout{{L::kDense}, {false, true}, {false}}));
  EXPECT_FALSE(code.Serves(RowLayout{{L::kDense, L::kNotRead}, {false, true}, {true}}));
  EXPECT_EQ(code.ToString(), "D|01|1");
}

}  // namespace
}  // namespace kiln::jit::internal
