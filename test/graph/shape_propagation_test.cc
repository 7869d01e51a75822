// Tests of PropagateShapes: each rule on a small graph, the merge rules
// (add knowledge, never contradict) and unknown ops.
#include "graph/shape_propagation.h"

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
using testing::Shape;
using testing::StringAttr;

// Runs PropagateShapes and returns the shape of `id` as text.
std::string Propagated(GraphBuilder& b, ValueId id) {
  Status s = PropagateShapes(b.graph());
  EXPECT_TRUE(s.ok()) << s.ToString();
  return b.graph().value(id).shape.ToString();
}

TEST(ShapePropagationTest, ElementwiseBroadcastKeepsSymbols) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({S("N"), D(1), D(4)}));
  ValueId y = b.Input("y", DType::kFloat32, Shape({D(3), D(1)}));
  NodeId add = b.Op("Add", {x, y}, {"z"});
  NodeId relu = b.Op("Relu", {b.Out(add)}, {"r"});
  NodeId less = b.Op("Less", {b.Out(relu), y}, {"mask"});
  EXPECT_EQ(Propagated(b, b.Out(relu)), "[N, 3, 4]");
  EXPECT_EQ(b.graph().value(b.Out(add)).dtype, DType::kFloat32);
  EXPECT_EQ(b.graph().value(b.Out(less)).dtype, DType::kBool);
  EXPECT_EQ(b.graph().value(b.Out(less)).shape.ToString(), "[N, 3, 4]");
}

TEST(ShapePropagationTest, BroadcastOfSymbolAgainstConcreteIsConcrete) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({S("N"), D(4)}));
  ValueId y = b.Input("y", DType::kFloat32, Shape({D(5), D(4)}));
  ValueId z = b.Input("z", DType::kFloat32, Shape({S("M"), D(4)}));
  NodeId mul = b.Op("Mul", {x, y}, {"xy"});
  NodeId sub = b.Op("Sub", {x, z}, {"xz"});
  EXPECT_EQ(Propagated(b, b.Out(mul)), "[5, 4]");
  EXPECT_EQ(b.graph().value(b.Out(sub)).shape.ToString(), "[?, 4]");
}

TEST(ShapePropagationTest, MatMulAndGemm) {
  GraphBuilder b;
  ValueId a = b.Input("a", DType::kFloat32, Shape({S("B"), D(1), D(5), D(7)}));
  ValueId w = b.Input("w", DType::kFloat32, Shape({D(3), D(7), D(2)}));
  ValueId v = b.Input("v", DType::kFloat32, Shape({D(7)}));
  NodeId mm = b.Op("MatMul", {a, w}, {"mm"});
  NodeId mv = b.Op("MatMul", {a, v}, {"mv"});
  ValueId m = b.Input("m", DType::kFloat32, Shape({D(7), S("K")}));
  ValueId n = b.Input("n", DType::kFloat32, Shape({D(9), D(7)}));
  NodeId gemm = b.Op("Gemm", {m, n}, {"g"}, {{"transA", IntAttr(1)}, {"transB", IntAttr(1)}});
  EXPECT_EQ(Propagated(b, b.Out(mm)), "[B, 3, 5, 2]");
  EXPECT_EQ(b.graph().value(b.Out(mv)).shape.ToString(), "[B, 1, 5]");
  EXPECT_EQ(b.graph().value(b.Out(gemm)).shape.ToString(), "[K, 9]");
}

TEST(ShapePropagationTest, RecurrentOpsBothLayouts) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({S("T"), D(4), D(8)}));
  ValueId w = b.Input("w", DType::kFloat32, Shape({D(2), D(60), D(8)}));
  ValueId r = b.Input("r", DType::kFloat32, Shape({D(2), D(60), D(15)}));
  // hidden_size from the attribute; Y_c of an LSTM has Y_h's shape.
  NodeId lstm = b.Op("LSTM", {x, w, r}, {"y", "y_h", "y_c"},
                     {{"hidden_size", IntAttr(15)}, {"direction", StringAttr("bidirectional")}});
  // hidden_size from R; layout 1 puts batch first.
  ValueId xb = b.Input("xb", DType::kFloat32, Shape({S("N"), D(9), D(8)}));
  ValueId wg = b.Input("wg", DType::kFloat32, Shape({D(1), D(60), D(8)}));
  ValueId rg = b.Input("rg", DType::kFloat32, Shape({D(1), D(60), D(20)}));
  NodeId gru = b.Op("GRU", {xb, wg, rg}, {"", "g_h"}, {{"layout", IntAttr(1)}});
  EXPECT_EQ(Propagated(b, b.Out(lstm)), "[T, 2, 4, 15]");
  EXPECT_EQ(b.graph().value(b.Out(lstm, 1)).shape.ToString(), "[2, 4, 15]");
  EXPECT_EQ(b.graph().value(b.Out(lstm, 2)).shape.ToString(), "[2, 4, 15]");
  EXPECT_EQ(b.graph().value(b.Out(gru, 1)).shape.ToString(), "[N, 1, 20]");
}

TEST(ShapePropagationTest, ConvAndPooling) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({S("N"), D(3), D(32), D(30)}));
  ValueId w = b.Constant("w", MakeTensor<float>({16, 3, 3, 3}, std::vector<float>(16 * 27, 0.f)));
  NodeId conv = b.Op("Conv", {x, w}, {"c"}, {{"pads", IntsAttr({1, 1, 1, 1})}, {"strides", IntsAttr({2, 2})}});
  NodeId pool =
      b.Op("MaxPool", {b.Out(conv)}, {"p"}, {{"kernel_shape", IntsAttr({2, 2})}, {"strides", IntsAttr({2, 2})}});
  NodeId same = b.Op("AveragePool", {x}, {"s"},
                     {{"kernel_shape", IntsAttr({3, 3})},
                      {"strides", IntsAttr({2, 2})},
                      {"auto_pad", testing::StringAttr("SAME_UPPER")}});
  NodeId global = b.Op("GlobalAveragePool", {b.Out(pool)}, {"gap"});
  EXPECT_EQ(Propagated(b, b.Out(conv)), "[N, 16, 16, 15]");
  EXPECT_EQ(b.graph().value(b.Out(pool)).shape.ToString(), "[N, 16, 8, 7]");
  EXPECT_EQ(b.graph().value(b.Out(same)).shape.ToString(), "[N, 3, 16, 15]");
  EXPECT_EQ(b.graph().value(b.Out(global)).shape.ToString(), "[N, 16, 1, 1]");
}

TEST(ShapePropagationTest, ReshapeWithConstantShape) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({S("B"), S("S"), D(12), D(64)}));
  ValueId shape = b.Constant("shape", MakeTensor<int64_t>({3}, {0, 0, -1}));
  NodeId reshape = b.Op("Reshape", {x, shape}, {"r"});
  ValueId c = b.Input("c", DType::kFloat32, Shape({D(2), D(3), D(4)}));
  ValueId shape2 = b.Constant("shape2", MakeTensor<int64_t>({2}, {-1, 6}));
  NodeId reshape2 = b.Op("Reshape", {c, shape2}, {"r2"});
  EXPECT_EQ(Propagated(b, b.Out(reshape)), "[B, S, 768]");
  EXPECT_EQ(b.graph().value(b.Out(reshape2)).shape.ToString(), "[4, 6]");
}

TEST(ShapePropagationTest, ReshapeWithComputedShapeStaysUnknown) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({D(2), D(3)}));
  ValueId s = b.Input("s", DType::kInt64, Shape({D(2)}));
  NodeId reshape = b.Op("Reshape", {x, s}, {"r"});
  EXPECT_EQ(Propagated(b, b.Out(reshape)), "?");
  EXPECT_EQ(b.graph().value(b.Out(reshape)).dtype, DType::kFloat32);
}

TEST(ShapePropagationTest, TransposeConcatGatherFlatten) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({S("N"), D(3), D(5)}));
  ValueId y = b.Input("y", DType::kFloat32, Shape({S("N"), D(4), D(5)}));
  NodeId t = b.Op("Transpose", {x}, {"t"}, {{"perm", IntsAttr({0, 2, 1})}});
  NodeId rev = b.Op("Transpose", {x}, {"rev"});
  NodeId cat = b.Op("Concat", {x, y}, {"cat"}, {{"axis", IntAttr(-2)}});
  ValueId idx = b.Input("idx", DType::kInt64, Shape({S("K"), D(2)}));
  NodeId gather = b.Op("Gather", {x, idx}, {"g"}, {{"axis", IntAttr(1)}});
  NodeId flat = b.Op("Flatten", {x}, {"f"}, {{"axis", IntAttr(1)}});
  EXPECT_EQ(Propagated(b, b.Out(t)), "[N, 5, 3]");
  EXPECT_EQ(b.graph().value(b.Out(rev)).shape.ToString(), "[5, 3, N]");
  EXPECT_EQ(b.graph().value(b.Out(cat)).shape.ToString(), "[N, 7, 5]");
  EXPECT_EQ(b.graph().value(b.Out(gather)).shape.ToString(), "[N, K, 2, 5]");
  EXPECT_EQ(b.graph().value(b.Out(flat)).shape.ToString(), "[N, 15]");
}

TEST(ShapePropagationTest, UnsqueezeSqueezeWithConstantAxes) {
  GraphBuilder b;  // opset 13: axes as input
  ValueId x = b.Input("x", DType::kFloat32, Shape({S("N"), D(3)}));
  ValueId axes = b.Constant("axes", MakeTensor<int64_t>({2}, {0, -1}));
  NodeId unsq = b.Op("Unsqueeze", {x, axes}, {"u"});
  NodeId sq = b.Op("Squeeze", {b.Out(unsq), axes}, {"s"});
  EXPECT_EQ(Propagated(b, b.Out(unsq)), "[1, N, 3, 1]");
  EXPECT_EQ(b.graph().value(b.Out(sq)).shape.ToString(), "[N, 3]");

  GraphBuilder old(11);  // opset 11: axes as attribute
  ValueId y = old.Input("y", DType::kFloat32, Shape({D(1), D(3), D(1)}));
  NodeId sq_all = old.Op("Squeeze", {y}, {"all"});
  NodeId unsq_attr = old.Op("Unsqueeze", {y}, {"ua"}, {{"axes", IntsAttr({1})}});
  EXPECT_EQ(Propagated(old, old.Out(sq_all)), "[3]");
  EXPECT_EQ(old.graph().value(old.Out(unsq_attr)).shape.ToString(), "[1, 1, 3, 1]");
}

TEST(ShapePropagationTest, SliceWithConstantParams) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({S("N"), D(10), D(8)}));
  ValueId starts = b.Constant("starts", MakeTensor<int64_t>({2}, {1, -1}));
  ValueId ends = b.Constant("ends", MakeTensor<int64_t>({2}, {INT64_MAX, INT64_MIN}));
  ValueId axes = b.Constant("axes", MakeTensor<int64_t>({2}, {1, 2}));
  ValueId steps = b.Constant("steps", MakeTensor<int64_t>({2}, {3, -2}));
  NodeId slice = b.Op("Slice", {x, starts, ends, axes, steps}, {"s"});
  // Axis 1: 1, 4, 7 -> 3 elements; axis 2: 7, 5, 3, 1 -> 4 elements.
  EXPECT_EQ(Propagated(b, b.Out(slice)), "[N, 3, 4]");
}

TEST(ShapePropagationTest, ReduceArgMaxShapeAndCast) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({S("N"), D(3), D(4)}));
  NodeId mean = b.Op("ReduceMean", {x}, {"m"}, {{"axes", IntsAttr({-1})}});
  NodeId sum =
      b.Op("ReduceSum", {x, b.Constant("axes", MakeTensor<int64_t>({1}, {1}))}, {"s"}, {{"keepdims", IntAttr(0)}});
  NodeId all = b.Op("ReduceMax", {x}, {"all"}, {{"keepdims", IntAttr(0)}});
  NodeId arg = b.Op("ArgMax", {x}, {"a"}, {{"axis", IntAttr(1)}});
  NodeId shape = b.Op("Shape", {x}, {"shape"});
  NodeId cast = b.Op("Cast", {x}, {"c"}, {{"to", IntAttr(7)}});
  EXPECT_EQ(Propagated(b, b.Out(mean)), "[N, 3, 1]");
  const Graph& g = b.graph();
  EXPECT_EQ(g.value(b.Out(sum)).shape.ToString(), "[N, 4]");
  EXPECT_EQ(g.value(b.Out(all)).shape.ToString(), "[]");
  EXPECT_EQ(g.value(b.Out(arg)).shape.ToString(), "[N, 1, 4]");
  EXPECT_EQ(g.value(b.Out(arg)).dtype, DType::kInt64);
  EXPECT_EQ(g.value(b.Out(shape)).shape.ToString(), "[3]");
  EXPECT_EQ(g.value(b.Out(shape)).dtype, DType::kInt64);
  EXPECT_EQ(g.value(b.Out(cast)).dtype, DType::kInt64);
  EXPECT_EQ(g.value(b.Out(cast)).shape.ToString(), "[N, 3, 4]");
}

TEST(ShapePropagationTest, ExpandAndConstantOfShape) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({S("N"), D(1)}));
  ValueId target = b.Constant("target", MakeTensor<int64_t>({3}, {2, 1, 6}));
  NodeId expand = b.Op("Expand", {x, target}, {"e"});
  NodeId fill = b.Op("ConstantOfShape", {target}, {"z"});
  EXPECT_EQ(Propagated(b, b.Out(expand)), "[2, N, 6]");
  EXPECT_EQ(b.graph().value(b.Out(fill)).shape.ToString(), "[2, 1, 6]");
  EXPECT_EQ(b.graph().value(b.Out(fill)).dtype, DType::kFloat32);
}

// The exporter's x.reshape(x.size(0), 16, 4, 16) with a symbolic batch:
// nothing folds, but the tracked shape value still gives the Reshape (and
// what follows) a shape.
TEST(ShapePropagationTest, ReshapeBySymbolicShapeChain) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({S("batch"), D(16), D(64)}));
  NodeId shape = b.Op("Shape", {x}, {"s"});
  NodeId gather =
      b.Op("Gather", {b.Out(shape), b.Constant("zero", MakeTensor<int64_t>({}, {0}))}, {"b0"}, {{"axis", IntAttr(0)}});
  NodeId times_one = b.Op("Mul", {b.Out(gather), b.Constant("one", MakeTensor<int64_t>({}, {1}))}, {"b1"});
  NodeId unsq = b.Op("Unsqueeze", {b.Out(times_one), b.Constant("axes", MakeTensor<int64_t>({1}, {0}))}, {"b2"});
  ValueId rest = b.Constant("rest", MakeTensor<int64_t>({2}, {4, 16}));
  NodeId seq = b.Op("Gather", {b.Out(shape), b.Constant("one_idx", MakeTensor<int64_t>({1}, {1}))}, {"s1"});
  NodeId concat = b.Op("Concat", {b.Out(unsq), b.Out(seq), rest}, {"target"}, {{"axis", IntAttr(0)}});
  NodeId reshape = b.Op("Reshape", {x, b.Out(concat)}, {"r"});
  NodeId transpose = b.Op("Transpose", {b.Out(reshape)}, {"t"}, {{"perm", IntsAttr({0, 2, 1, 3})}});
  NodeId expand = b.Op("Expand", {b.Constant("c", MakeTensor<float>({1}, {0})), b.Out(concat)}, {"e"});
  EXPECT_EQ(Propagated(b, b.Out(reshape)), "[batch, 16, 4, 16]");
  EXPECT_EQ(b.graph().value(b.Out(transpose)).shape.ToString(), "[batch, 4, 16, 16]");
  EXPECT_EQ(b.graph().value(b.Out(expand)).shape.ToString(), "[batch, 16, 4, 16]");
  EXPECT_EQ(b.graph().value(b.Out(concat)).shape.ToString(), "[4]");
}

TEST(ShapePropagationTest, SymbolicShapeChainWithBadIndexStaysUnknown) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({S("batch"), D(16)}));
  NodeId shape = b.Op("Shape", {x}, {"s"});
  NodeId gather = b.Op("Gather", {b.Out(shape), b.Constant("idx", MakeTensor<int64_t>({1}, {5}))}, {"g"});
  NodeId reshape = b.Op("Reshape", {x, b.Out(gather)}, {"r"});
  EXPECT_EQ(Propagated(b, b.Out(reshape)), "?");
}

// Propagation adds knowledge and never overrides what ONNX's inference
// already established.
TEST(ShapePropagationTest, MergeOnlyAddsKnowledge) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({D(2), D(3)}));
  NodeId relu = b.Op("Relu", {x}, {"r"});
  NodeId neg = b.Op("Neg", {x}, {"n"});
  Value& r = b.graph().value(b.Out(relu));
  r.shape = Shape({Dim{}, S("cols")});  // partially known: both get refined
  Value& n = b.graph().value(b.Out(neg));
  n.shape = Shape({D(2), D(3), D(1)});  // a rank that disagrees is kept
  n.dtype = DType::kFloat64;
  EXPECT_EQ(Propagated(b, b.Out(relu)), "[2, 3]");
  EXPECT_EQ(b.graph().value(b.Out(neg)).shape.ToString(), "[2, 3, 1]");
  EXPECT_EQ(b.graph().value(b.Out(neg)).dtype, DType::kFloat64);
}

TEST(ShapePropagationTest, UnknownOpsAndBadAttributesStayUnknown) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, Shape({D(2), D(3)}));
  NodeId custom = b.Op("NoSuchOp", {x}, {"c"});
  NodeId bad_perm = b.Op("Transpose", {x}, {"t"}, {{"perm", IntsAttr({0, 5})}});
  NodeId bad_kind = b.Op("Concat", {x, x}, {"k"}, {{"axis", IntsAttr({0})}});
  NodeId after = b.Op("Relu", {b.Out(custom)}, {"r"});
  EXPECT_EQ(Propagated(b, b.Out(custom)), "?");
  EXPECT_EQ(b.graph().value(b.Out(bad_perm)).shape.ToString(), "?");
  EXPECT_EQ(b.graph().value(b.Out(bad_kind)).shape.ToString(), "?");
  EXPECT_EQ(b.graph().value(b.Out(after)).shape.ToString(), "?");
}

}  // namespace
}  // namespace kiln::graph
