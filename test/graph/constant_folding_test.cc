// Tests of FoldConstants with a tiny evaluator written here (graph/ knows
// no kernels): Add, Shape, Gather, Unsqueeze and Concat on int64, plus a
// few ops that exercise the evaluator-error, size-limit and randomness
// rules.
#include "graph/constant_folding.h"

#include <gtest/gtest.h>

#include "graph_test_util.h"

namespace kiln::graph {
namespace {

using testing::D;
using testing::GraphBuilder;
using testing::IntAttr;
using testing::IntsAttr;
using testing::MakeTensor;
using testing::S;
using testing::ToVector;

// Reference implementations just good enough for the tests' int64 shape
// arithmetic. Counts calls so tests can check what was evaluated.
class TestEvaluator {
 public:
  NodeEvaluator AsFunction() {
    return [this](const Node& n, const std::vector<const Tensor*>& in) { return Evaluate(n, in); };
  }
  int calls = 0;
  bool saw_absent_input = false;

 private:
  StatusOr<std::vector<Tensor>> Evaluate(const Node& n, const std::vector<const Tensor*>& in) {
    ++calls;
    if (n.op_type == "Add") {
      // Same-shape or scalar-rhs int64 only.
      const Tensor& a = *in[0];
      const Tensor& b = *in[1];
      KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kInt64, a.dims()));
      for (int64_t i = 0; i < a.num_elements(); ++i) {
        out.data<int64_t>()[i] = a.data<int64_t>()[i] + b.data<int64_t>()[b.num_elements() == 1 ? 0 : i];
      }
      return std::vector<Tensor>{std::move(out)};
    }
    if (n.op_type == "Shape") {
      std::vector<int64_t> dims = in[0]->dims();
      return std::vector<Tensor>{MakeTensor<int64_t>({static_cast<int64_t>(dims.size())}, dims)};
    }
    if (n.op_type == "Gather") {
      // 1-D data, scalar index.
      const int64_t index = in[1]->data<int64_t>()[0];
      if (index < 0 || index >= in[0]->num_elements()) return OutOfRange("Gather: index ", index);
      return std::vector<Tensor>{MakeTensor<int64_t>({}, {in[0]->data<int64_t>()[index]})};
    }
    if (n.op_type == "Unsqueeze") {
      // Scalar -> [1].
      return std::vector<Tensor>{in[0]->Reshaped({1})};
    }
    if (n.op_type == "Concat") {
      std::vector<int64_t> all;
      for (const Tensor* t : in) {
        std::vector<int64_t> part = ToVector<int64_t>(*t);
        all.insert(all.end(), part.begin(), part.end());
      }
      return std::vector<Tensor>{MakeTensor<int64_t>({static_cast<int64_t>(all.size())}, all)};
    }
    if (n.op_type == "Identity") {
      // A borrowed view of the input, as a zero-copy kernel might return.
      Tensor& src = const_cast<Tensor&>(*in[0]);
      return std::vector<Tensor>{Tensor::View(src.dtype(), src.dims(), src.raw_data())};
    }
    if (n.op_type == "Clip") {
      // Passes the input through; records whether min was absent.
      saw_absent_input = in.size() > 1 && in[1] == nullptr;
      KILN_ASSIGN_OR_RETURN(Tensor out, in[0]->Clone());
      return std::vector<Tensor>{std::move(out)};
    }
    if (n.op_type == "ConstantOfShape") {
      KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, ToVector<int64_t>(*in[0])));
      return std::vector<Tensor>{std::move(out)};
    }
    return Unsupported("test evaluator: ", n.op_type);
  }
};

TEST(ConstantFoldingTest, FoldsAddOfInitializers) {
  GraphBuilder b;
  ValueId a = b.Constant("a", MakeTensor<int64_t>({3}, {1, 2, 3}));
  ValueId c = b.Constant("c", MakeTensor<int64_t>({3}, {10, 20, 30}));
  NodeId add = b.Op("Add", {a, c}, {"sum"});
  ValueId x = b.Input("x", DType::kInt64, ShapeInfo::FromDims({3}));
  NodeId use = b.Op("Mul", {x, b.Out(add)}, {"y"});
  b.Output(b.Out(use));
  TestEvaluator eval;
  Graph& g = b.graph();
  ASSERT_EQ(g.num_live_nodes(), 2u);

  auto changed = FoldConstants(g, eval.AsFunction());
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(g.num_live_nodes(), 1u);
  EXPECT_TRUE(g.node(add).dead);
  const Value& sum = g.value(b.Out(add));
  ASSERT_TRUE(sum.constant.has_value());
  EXPECT_EQ(ToVector<int64_t>(*sum.constant), (std::vector<int64_t>{11, 22, 33}));
  EXPECT_EQ(sum.dtype, DType::kInt64);
  EXPECT_TRUE(sum.shape.is_concrete());
  EXPECT_EQ(sum.shape.ConcreteDims(), (Dims{3}));
  EXPECT_EQ(sum.producer, kNoNode);
  EXPECT_TRUE(g.Validate().ok());
}

// The chain PyTorch exports for x.reshape(x.shape[0], -1): with x's shape
// concrete, everything up to the Reshape folds in one call.
TEST(ConstantFoldingTest, FoldsShapeGatherUnsqueezeConcatChain) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2, 3, 4}));
  NodeId shape = b.Op("Shape", {x}, {"shape"});
  ValueId zero = b.Constant("zero", MakeTensor<int64_t>({}, {0}));
  NodeId gather = b.Op("Gather", {b.Out(shape), zero}, {"batch"}, {{"axis", IntAttr(0)}});
  ValueId axes = b.Constant("axes", MakeTensor<int64_t>({1}, {0}));
  NodeId unsq = b.Op("Unsqueeze", {b.Out(gather), axes}, {"batch1"});
  ValueId minus_one = b.Constant("minus_one", MakeTensor<int64_t>({1}, {-1}));
  NodeId concat = b.Op("Concat", {b.Out(unsq), minus_one}, {"new_shape"}, {{"axis", IntAttr(0)}});
  NodeId reshape = b.Op("Reshape", {x, b.Out(concat)}, {"y"});
  b.Output(b.Out(reshape));
  Graph& g = b.graph();
  ASSERT_EQ(g.num_live_nodes(), 5u);

  TestEvaluator eval;
  auto changed = FoldConstants(g, eval.AsFunction());
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(g.num_live_nodes(), 1u);
  EXPECT_FALSE(g.node(reshape).dead);
  // Shape folds from ShapeInfo without the evaluator; the other three use it.
  EXPECT_EQ(eval.calls, 3);
  const Value& new_shape = g.value(b.Out(concat));
  ASSERT_TRUE(new_shape.constant.has_value());
  EXPECT_EQ(ToVector<int64_t>(*new_shape.constant), (std::vector<int64_t>{2, -1}));
  EXPECT_EQ(ToVector<int64_t>(*g.value(b.Out(shape)).constant), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_TRUE(g.Validate().ok());

  // A second call has nothing left to do.
  auto again = FoldConstants(g, eval.AsFunction());
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
}

TEST(ConstantFoldingTest, ShapeHonoursStartAndEnd) {
  GraphBuilder b(15);
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2, 3, 4, 5}));
  NodeId shape = b.Op("Shape", {x}, {"s"}, {{"start", IntAttr(1)}, {"end", IntAttr(-1)}});
  b.Output(b.Out(shape));
  ASSERT_TRUE(FoldConstants(b.graph(), nullptr).ok());
  const Value& s = b.graph().value(b.Out(shape));
  ASSERT_TRUE(s.constant.has_value());
  EXPECT_EQ(ToVector<int64_t>(*s.constant), (std::vector<int64_t>{3, 4}));
}

TEST(ConstantFoldingTest, FoldsSizeOfConcreteShape) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2, 3, 4}));
  NodeId size = b.Op("Size", {x}, {"n"});
  b.Output(b.Out(size));
  auto changed = FoldConstants(b.graph(), nullptr);
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  const Value& n = b.graph().value(b.Out(size));
  ASSERT_TRUE(n.constant.has_value());
  EXPECT_EQ(n.constant->rank(), 0);
  EXPECT_EQ(ToVector<int64_t>(*n.constant), (std::vector<int64_t>{24}));
}

TEST(ConstantFoldingTest, GraphOutputStaysOutputWhenFolded) {
  GraphBuilder b;
  ValueId a = b.Constant("a", MakeTensor<int64_t>({2}, {1, 2}));
  NodeId add = b.Op("Add", {a, a}, {"twice"});
  b.Output(b.Out(add));
  TestEvaluator eval;
  ASSERT_TRUE(FoldConstants(b.graph(), eval.AsFunction()).ok());
  Graph& g = b.graph();
  EXPECT_EQ(g.num_live_nodes(), 0u);
  ASSERT_EQ(g.outputs().size(), 1u);
  const Value& out = g.value(g.outputs()[0]);
  EXPECT_TRUE(out.is_graph_output);
  ASSERT_TRUE(out.constant.has_value());
  EXPECT_EQ(ToVector<int64_t>(*out.constant), (std::vector<int64_t>{2, 4}));
  EXPECT_TRUE(g.Validate().ok());
}

TEST(ConstantFoldingTest, AbsentOptionalInputIsFine) {
  GraphBuilder b;
  ValueId a = b.Constant("a", MakeTensor<int64_t>({2}, {5, 6}));
  ValueId hi = b.Constant("hi", MakeTensor<int64_t>({}, {9}));
  NodeId clip = b.Op("Clip", {a, kNoValue, hi}, {"clipped"});
  b.Output(b.Out(clip));
  TestEvaluator eval;
  ASSERT_TRUE(FoldConstants(b.graph(), eval.AsFunction()).ok());
  EXPECT_TRUE(eval.saw_absent_input);
  EXPECT_TRUE(b.graph().node(clip).dead);
}

TEST(ConstantFoldingTest, CopiesBorrowedResults) {
  GraphBuilder b;
  ValueId a = b.Constant("a", MakeTensor<int64_t>({2}, {7, 8}));
  NodeId id = b.Op("Identity", {a}, {"same"});
  b.Output(b.Out(id));
  TestEvaluator eval;
  ASSERT_TRUE(FoldConstants(b.graph(), eval.AsFunction()).ok());
  const Value& out = b.graph().value(b.Out(id));
  ASSERT_TRUE(out.constant.has_value());
  EXPECT_FALSE(out.constant->is_view());
  // Dropping the source must not affect the folded value.
  b.graph().value(a).constant.reset();
  EXPECT_EQ(ToVector<int64_t>(*out.constant), (std::vector<int64_t>{7, 8}));
}

TEST(ConstantFoldingTest, NotFoldedWhenAnInputIsNotConstant) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kInt64, ShapeInfo::FromDims({3}));
  ValueId c = b.Constant("c", MakeTensor<int64_t>({3}, {1, 2, 3}));
  NodeId add = b.Op("Add", {x, c}, {"y"});
  b.Output(b.Out(add));
  TestEvaluator eval;
  auto changed = FoldConstants(b.graph(), eval.AsFunction());
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
  EXPECT_EQ(eval.calls, 0);
  EXPECT_EQ(b.graph().num_live_nodes(), 1u);
  EXPECT_FALSE(b.graph().value(b.Out(add)).constant.has_value());
}

TEST(ConstantFoldingTest, NotFoldedWhenShapeIsSymbolic) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, testing::Shape({S("N"), D(3)}));
  NodeId shape = b.Op("Shape", {x}, {"s"});
  NodeId size = b.Op("Size", {x}, {"n"});
  b.Output(b.Out(shape));
  b.Output(b.Out(size));
  TestEvaluator eval;
  auto changed = FoldConstants(b.graph(), eval.AsFunction());
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
  EXPECT_EQ(b.graph().num_live_nodes(), 2u);
}

TEST(ConstantFoldingTest, NotFoldedWhenNondeterministic) {
  GraphBuilder b;
  NodeId rand = b.Op("RandomNormal", {}, {"noise"}, {{"shape", IntsAttr({2})}});
  b.Output(b.Out(rand));
  TestEvaluator eval;
  auto changed = FoldConstants(b.graph(), eval.AsFunction());
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
  EXPECT_EQ(eval.calls, 0);
}

// An evaluator error is not fatal: the node stays (its error will show at
// run time) and folding carries on with the rest of the graph.
TEST(ConstantFoldingTest, NotFoldedWhenEvaluatorFails) {
  GraphBuilder b;
  ValueId a = b.Constant("a", MakeTensor<int64_t>({2}, {1, 2}));
  NodeId unknown = b.Op("FancyOp", {a}, {"fancy"});
  NodeId add = b.Op("Add", {a, a}, {"sum"});
  b.Output(b.Out(unknown));
  b.Output(b.Out(add));
  TestEvaluator eval;
  auto changed = FoldConstants(b.graph(), eval.AsFunction());
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_TRUE(*changed);
  EXPECT_FALSE(b.graph().node(unknown).dead);
  EXPECT_FALSE(b.graph().value(b.Out(unknown)).constant.has_value());
  EXPECT_TRUE(b.graph().node(add).dead);
}

TEST(ConstantFoldingTest, NotFoldedWhenResultIsHuge) {
  GraphBuilder b;
  // 17 MiB of float32 zeros.
  const int64_t count = (int64_t{17} << 20) / 4;
  ValueId dims = b.Constant("dims", MakeTensor<int64_t>({1}, {count}));
  NodeId fill = b.Op("ConstantOfShape", {dims}, {"zeros"});
  b.Output(b.Out(fill));
  TestEvaluator eval;
  auto changed = FoldConstants(b.graph(), eval.AsFunction());
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
  EXPECT_EQ(eval.calls, 1);
  EXPECT_FALSE(b.graph().node(fill).dead);
  EXPECT_FALSE(b.graph().value(b.Out(fill)).constant.has_value());
}

TEST(ConstantFoldingTest, NotEvaluatedWhenDeclaredOutputIsHuge) {
  GraphBuilder b;
  const int64_t count = (int64_t{17} << 20) / 4;
  ValueId dims = b.Constant("dims", MakeTensor<int64_t>({1}, {count}));
  NodeId fill = b.Op("ConstantOfShape", {dims}, {"zeros"});
  Value& out = b.graph().value(b.Out(fill));
  out.dtype = DType::kFloat32;
  out.shape = ShapeInfo::FromDims({count});
  b.Output(b.Out(fill));
  TestEvaluator eval;
  ASSERT_TRUE(FoldConstants(b.graph(), eval.AsFunction()).ok());
  EXPECT_EQ(eval.calls, 0);
  EXPECT_FALSE(b.graph().node(fill).dead);
}

TEST(ConstantFoldingTest, WithoutEvaluatorOnlyShapeFolds) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({4}));
  NodeId shape = b.Op("Shape", {x}, {"s"});
  ValueId one = b.Constant("one", MakeTensor<int64_t>({1}, {1}));
  NodeId add = b.Op("Add", {b.Out(shape), one}, {"s1"});
  b.Output(b.Out(add));
  auto changed = FoldConstants(b.graph(), NodeEvaluator());
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  EXPECT_TRUE(b.graph().node(shape).dead);
  EXPECT_FALSE(b.graph().node(add).dead);
}

TEST(ConstantFoldingTest, FoldsConstantNodesWithoutEvaluator) {
  GraphBuilder b;
  NodeId ints = b.Op("Constant", {}, {"ints"}, {{"value_ints", IntsAttr({3, 4})}});
  NodeId scalar = b.Op("Constant", {}, {"eps"}, {{"value_float", testing::FloatAttr(0.5f)}});
  Attribute tensor;
  tensor.kind = Attribute::Kind::kTensor;
  tensor.t = MakeTensor<int32_t>({2, 1}, {7, 8});
  NodeId from_tensor = b.Op("Constant", {}, {"t"}, {{"value", tensor}});
  for (NodeId id : {ints, scalar, from_tensor}) b.Output(b.Out(id));
  TestEvaluator eval;
  auto changed = FoldConstants(b.graph(), eval.AsFunction());
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  EXPECT_EQ(eval.calls, 0);
  const Graph& g = b.graph();
  EXPECT_EQ(g.num_live_nodes(), 0u);
  EXPECT_EQ(ToVector<int64_t>(*g.value(b.Out(ints)).constant), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(g.value(b.Out(scalar)).constant->rank(), 0);
  EXPECT_EQ(ToVector<float>(*g.value(b.Out(scalar)).constant), (std::vector<float>{0.5f}));
  EXPECT_EQ(g.value(b.Out(from_tensor)).dtype, DType::kInt32);
  EXPECT_EQ(g.value(b.Out(from_tensor)).shape.ConcreteDims(), (Dims{2, 1}));
}

TEST(ConstantFoldingTest, FailsOnCycle) {
  Graph g;
  ValueId a = *g.AddValue("a");
  ValueId c = *g.AddValue("c");
  Node first;
  first.op_type = "Relu";
  first.inputs = {c};
  first.outputs = {a};
  Node second;
  second.op_type = "Relu";
  second.inputs = {a};
  second.outputs = {c};
  ASSERT_TRUE(g.AddNode(std::move(first)).ok());
  ASSERT_TRUE(g.AddNode(std::move(second)).ok());
  auto changed = FoldConstants(g, nullptr);
  ASSERT_FALSE(changed.ok());
  EXPECT_EQ(changed.status().code(), StatusCode::kInvalidModel);
}

}  // namespace
}  // namespace kiln::graph
