// Shape and data-movement kernels against hand-computed values, opset
// variants and error cases.
#include <gtest/gtest.h>

#include <numeric>

#include "kernel_test_util.h"

namespace kiln::testing {
namespace {

using graph::Attribute;
using Attrs = std::map<std::string, Attribute>;

std::vector<float> Iota(int64_t n, float start = 0) {
  std::vector<float> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

// Runs a single-output op and returns its tensor (fails the test on error).
Tensor Run1(const std::string& op, const std::vector<const Tensor*>& inputs, Attrs attrs = {}, int opset = 17) {
  auto r = RunOp(op, inputs, std::move(attrs), opset);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return Tensor();
  return std::move((*r)[0]);
}

// ---------------------------------------------------------------- Reshape

TEST(Reshape, InferAndCopyDims) {
  Tensor x = MakeTensor<float>({2, 3, 4}, Iota(24));
  Tensor shape = MakeTensor<int64_t>({3}, {0, -1, 2});
  Tensor y = Run1("Reshape", {&x, &shape});
  EXPECT_EQ(y.dims(), (Dims{2, 6, 2}));
  EXPECT_EQ(ToVector<float>(y), Iota(24));
}

TEST(Reshape, ShapeAttributeBeforeOpset5) {
  Tensor x = MakeTensor<int32_t>({6}, {1, 2, 3, 4, 5, 6});
  Tensor y = Run1("Reshape", {&x}, {{"shape", IntsAttr({3, 2})}}, 1);
  EXPECT_EQ(y.dims(), (Dims{3, 2}));
  EXPECT_EQ(ToVector<int32_t>(y), (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
}

TEST(Reshape, AllowZeroKeepsZero) {
  Tensor x = MakeTensor<float>({0, 3}, {});
  Tensor shape = MakeTensor<int64_t>({2}, {3, 0});
  Tensor y = Run1("Reshape", {&x, &shape}, {{"allowzero", IntAttr(1)}}, 14);
  EXPECT_EQ(y.dims(), (Dims{3, 0}));
}

TEST(Reshape, ImpossibleShapeNamesBothShapes) {
  Tensor x = MakeTensor<float>({2, 3}, Iota(6));
  Tensor shape = MakeTensor<int64_t>({2}, {4, -1});
  auto r = RunOp("Reshape", {&x, &shape});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("[2, 3]"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("[4, -1]"), std::string::npos) << r.status().message();
}

TEST(Reshape, TwoInferredDimsRejected) {
  Tensor x = MakeTensor<float>({4}, Iota(4));
  Tensor shape = MakeTensor<int32_t>({2}, {-1, -1});
  auto r = RunOp("Reshape", {&x, &shape});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

// ------------------------------------------------- Flatten, Squeeze, Unsqueeze

TEST(Flatten, PositiveAndNegativeAxis) {
  Tensor x = MakeTensor<float>({2, 3, 4}, Iota(24));
  EXPECT_EQ(Run1("Flatten", {&x}).dims(), (Dims{2, 12}));
  EXPECT_EQ(Run1("Flatten", {&x}, {{"axis", IntAttr(0)}}).dims(), (Dims{1, 24}));
  EXPECT_EQ(Run1("Flatten", {&x}, {{"axis", IntAttr(-1)}}).dims(), (Dims{6, 4}));
  EXPECT_EQ(Run1("Flatten", {&x}, {{"axis", IntAttr(3)}}).dims(), (Dims{24, 1}));
  auto r = RunOp("Flatten", {&x}, {{"axis", IntAttr(4)}});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(Squeeze, AxesAttributeAndInput) {
  Tensor x = MakeTensor<float>({1, 3, 1, 2}, Iota(6));
  EXPECT_EQ(Run1("Squeeze", {&x}, {{"axes", IntsAttr({0})}}, 11).dims(), (Dims{3, 1, 2}));
  Tensor axes = MakeTensor<int64_t>({1}, {-2});
  EXPECT_EQ(Run1("Squeeze", {&x, &axes}, {}, 13).dims(), (Dims{1, 3, 2}));
  EXPECT_EQ(Run1("Squeeze", {&x}, {}, 13).dims(), (Dims{3, 2}));
  Tensor bad = MakeTensor<int64_t>({1}, {1});
  auto r = RunOp("Squeeze", {&x, &bad}, {}, 13);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(Unsqueeze, AxesAttributeAndInput) {
  Tensor x = MakeTensor<float>({3, 4}, Iota(12));
  EXPECT_EQ(Run1("Unsqueeze", {&x}, {{"axes", IntsAttr({0, 3})}}, 11).dims(), (Dims{1, 3, 4, 1}));
  Tensor axes = MakeTensor<int64_t>({2}, {-1, 1});
  Tensor y = Run1("Unsqueeze", {&x, &axes}, {}, 13);
  EXPECT_EQ(y.dims(), (Dims{3, 1, 4, 1}));
  EXPECT_EQ(ToVector<float>(y), Iota(12));
  Tensor dup = MakeTensor<int64_t>({2}, {1, 1});
  EXPECT_EQ(RunOp("Unsqueeze", {&x, &dup}, {}, 13).status().code(), StatusCode::kInvalidArgument);
}

TEST(Identity, CopiesAnyDtype) {
  Tensor b = MakeTensor<bool>({3}, {true, false, true});
  EXPECT_EQ(ToVector<bool>(Run1("Identity", {&b})), (std::vector<bool>{true, false, true}));
  Tensor f = MakeTensor<float>({2}, {1.5f, -0.0f});
  EXPECT_EQ(ToVector<float>(Run1("Identity", {&f})), (std::vector<float>{1.5f, -0.0f}));
  Tensor d = MakeTensor<double>({1}, {1e300});
  EXPECT_EQ(ToVector<double>(Run1("Identity", {&d})), (std::vector<double>{1e300}));
  Tensor i64 = MakeTensor<int64_t>({2, 1}, {int64_t{1} << 40, -7});
  Tensor y = Run1("Identity", {&i64});
  EXPECT_EQ(y.dims(), (Dims{2, 1}));
  EXPECT_EQ(ToVector<int64_t>(y), (std::vector<int64_t>{int64_t{1} << 40, -7}));
  Tensor u8 = MakeTensor<uint8_t>({2}, {0, 255});
  EXPECT_EQ(ToVector<uint8_t>(Run1("Identity", {&u8})), (std::vector<uint8_t>{0, 255}));
}

TEST(Dropout, InferenceIsIdentityWithTrueMask) {
  Tensor x = MakeTensor<float>({2, 2}, {1, 2, 3, 4});
  auto r = RunOp("Dropout", {&x}, {}, 13, 2);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ToVector<float>((*r)[0]), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ((*r)[1].dtype(), DType::kBool);
  EXPECT_EQ(ToVector<bool>((*r)[1]), (std::vector<bool>{true, true, true, true}));
}

TEST(Dropout, TrainingModeUnsupported) {
  Tensor x = MakeTensor<float>({2}, {1, 2});
  Tensor ratio = MakeTensor<float>({}, {0.5f});
  Tensor training = MakeTensor<bool>({}, {true});
  auto r = RunOp("Dropout", {&x, &ratio, &training}, {}, 13);
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
}

// -------------------------------------------------------------- Transpose

// Reference transpose by index arithmetic.
std::vector<float> RefTranspose(const Dims& dims, const std::vector<int64_t>& perm, const std::vector<float>& in) {
  const size_t rank = dims.size();
  Dims out_dims(rank);
  for (size_t i = 0; i < rank; ++i) out_dims[i] = dims[static_cast<size_t>(perm[i])];
  std::vector<int64_t> in_strides(rank, 1);
  for (size_t i = rank; i-- > 1;) in_strides[i - 1] = in_strides[i] * dims[i];
  std::vector<float> out(in.size());
  std::vector<int64_t> c(rank, 0);
  for (size_t o = 0; o < out.size(); ++o) {
    int64_t off = 0;
    for (size_t i = 0; i < rank; ++i) off += c[i] * in_strides[static_cast<size_t>(perm[i])];
    out[o] = in[static_cast<size_t>(off)];
    for (size_t i = rank; i-- > 0;) {
      if (++c[i] < out_dims[i]) break;
      c[i] = 0;
    }
  }
  return out;
}

TEST(Transpose, DefaultReversesAxes) {
  Tensor x = MakeTensor<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor y = Run1("Transpose", {&x});
  EXPECT_EQ(y.dims(), (Dims{3, 2}));
  EXPECT_EQ(ToVector<float>(y), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST(Transpose, MatchesReferenceOnManyPatterns) {
  struct Case {
    Dims dims;
    std::vector<int64_t> perm;
  };
  const std::vector<Case> cases = {
      {{2, 5, 7, 3}, {0, 3, 1, 2}},    // NHWC -> NCHW
      {{2, 3, 5, 7}, {0, 2, 3, 1}},    // NCHW -> NHWC
      {{2, 3, 29, 31}, {0, 2, 3, 1}},  // an RGB image: 8-pixel interleaving steps and a tail
      {{1, 3, 4, 2}, {0, 2, 3, 1}},    // an RGB image of one step
      {{2, 5, 3, 4}, {0, 2, 1, 3}},    // [B, S, H, D] -> [B, H, S, D]
      {{67, 45}, {1, 0}},              // 2-D with partial tiles
      {{3, 1, 4, 1, 5}, {4, 1, 2, 0, 3}},
      {{2, 3, 4, 5}, {3, 2, 1, 0}},
      {{2, 3, 4}, {0, 1, 2}},
      {{4, 3, 2}, {1, 0, 2}},
  };
  for (const Case& c : cases) {
    int64_t n = 1;
    for (int64_t d : c.dims) n *= d;
    Tensor x = MakeTensor<float>(c.dims, Iota(n));
    Tensor y = Run1("Transpose", {&x}, {{"perm", IntsAttr(c.perm)}});
    EXPECT_EQ(ToVector<float>(y), RefTranspose(c.dims, c.perm, Iota(n))) << DimsToString(c.dims);
  }
}

TEST(Transpose, WorksForInt64AndBytes) {
  Tensor x = MakeTensor<int64_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(ToVector<int64_t>(Run1("Transpose", {&x})), (std::vector<int64_t>{1, 4, 2, 5, 3, 6}));
  Tensor b = MakeTensor<uint8_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(ToVector<uint8_t>(Run1("Transpose", {&b})), (std::vector<uint8_t>{1, 4, 2, 5, 3, 6}));
}

TEST(Transpose, BadPermRejected) {
  Tensor x = MakeTensor<float>({2, 3}, Iota(6));
  auto r = RunOp("Transpose", {&x}, {{"perm", IntsAttr({0, 0})}});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

// --------------------------------------------------------- Concat, Split

TEST(Concat, MiddleAxisAndNegativeAxis) {
  Tensor a = MakeTensor<float>({2, 1, 2}, {1, 2, 3, 4});
  Tensor b = MakeTensor<float>({2, 2, 2}, {5, 6, 7, 8, 9, 10, 11, 12});
  Tensor y = Run1("Concat", {&a, &b}, {{"axis", IntAttr(-2)}});
  EXPECT_EQ(y.dims(), (Dims{2, 3, 2}));
  EXPECT_EQ(ToVector<float>(y), (std::vector<float>{1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12}));
}

TEST(Concat, Int64ShapesOnAxis0) {
  Tensor a = MakeTensor<int64_t>({1}, {7});
  Tensor b = MakeTensor<int64_t>({2}, {-1, 3});
  EXPECT_EQ(ToVector<int64_t>(Run1("Concat", {&a, &b}, {{"axis", IntAttr(0)}})), (std::vector<int64_t>{7, -1, 3}));
}

TEST(Concat, MismatchedShapesRejected) {
  Tensor a = MakeTensor<float>({2, 2}, Iota(4));
  Tensor b = MakeTensor<float>({3, 3}, Iota(9));
  auto r = RunOp("Concat", {&a, &b}, {{"axis", IntAttr(0)}});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(Split, EqualDefaultAndExplicitSizes) {
  Tensor x = MakeTensor<float>({2, 4}, Iota(8));
  auto r = RunOp("Split", {&x}, {{"axis", IntAttr(1)}}, 13, 2);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ToVector<float>((*r)[0]), (std::vector<float>{0, 1, 4, 5}));
  EXPECT_EQ(ToVector<float>((*r)[1]), (std::vector<float>{2, 3, 6, 7}));

  Tensor split = MakeTensor<int64_t>({2}, {1, 3});
  r = RunOp("Split", {&x, &split}, {{"axis", IntAttr(-1)}}, 13, 2);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ToVector<float>((*r)[0]), (std::vector<float>{0, 4}));
  EXPECT_EQ(ToVector<float>((*r)[1]), (std::vector<float>{1, 2, 3, 5, 6, 7}));

  r = RunOp("Split", {&x}, {{"axis", IntAttr(1)}, {"split", IntsAttr({3, 1})}}, 11, 2);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].dims(), (Dims{2, 3}));
}

TEST(Split, NumOutputsUnevenOpset18) {
  Tensor x = MakeTensor<float>({7}, Iota(7));
  auto r = RunOp("Split", {&x}, {{"num_outputs", IntAttr(3)}}, 18, 3);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].dims(), (Dims{3}));
  EXPECT_EQ((*r)[2].dims(), (Dims{1}));
  EXPECT_EQ(ToVector<float>((*r)[2]), (std::vector<float>{6}));
}

TEST(Split, UnevenWithoutSizesRejected) {
  Tensor x = MakeTensor<float>({5}, Iota(5));
  auto r = RunOp("Split", {&x}, {}, 13, 2);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------------ Slice

TEST(Slice, InputsWithStepsAndClamping) {
  Tensor x = MakeTensor<float>({3, 4}, Iota(12));
  Tensor starts = MakeTensor<int64_t>({2}, {1, 0});
  Tensor ends = MakeTensor<int64_t>({2}, {1000, 3});
  Tensor axes = MakeTensor<int64_t>({2}, {0, 1});
  Tensor steps = MakeTensor<int64_t>({2}, {1, 2});
  Tensor y = Run1("Slice", {&x, &starts, &ends, &axes, &steps});
  EXPECT_EQ(y.dims(), (Dims{2, 2}));
  EXPECT_EQ(ToVector<float>(y), (std::vector<float>{4, 6, 8, 10}));
}

TEST(Slice, NegativeStepReverses) {
  Tensor x = MakeTensor<int32_t>({5}, {0, 1, 2, 3, 4});
  Tensor starts = MakeTensor<int32_t>({1}, {-1});
  Tensor ends = MakeTensor<int32_t>({1}, {-1000});
  Tensor axes = MakeTensor<int32_t>({1}, {0});
  Tensor steps = MakeTensor<int32_t>({1}, {-2});
  Tensor y = Run1("Slice", {&x, &starts, &ends, &axes, &steps});
  EXPECT_EQ(ToVector<int32_t>(y), (std::vector<int32_t>{4, 2, 0}));
}

TEST(Slice, AttributesBeforeOpset10) {
  Tensor x = MakeTensor<float>({2, 4}, Iota(8));
  Tensor y = Run1("Slice", {&x}, {{"starts", IntsAttr({1})}, {"ends", IntsAttr({-1})}, {"axes", IntsAttr({1})}}, 9);
  EXPECT_EQ(y.dims(), (Dims{2, 2}));
  EXPECT_EQ(ToVector<float>(y), (std::vector<float>{1, 2, 5, 6}));
}

TEST(Slice, EmptyResultAndZeroStep) {
  Tensor x = MakeTensor<float>({4}, Iota(4));
  Tensor starts = MakeTensor<int64_t>({1}, {3});
  Tensor ends = MakeTensor<int64_t>({1}, {1});
  EXPECT_EQ(Run1("Slice", {&x, &starts, &ends}).dims(), (Dims{0}));
  Tensor axes = MakeTensor<int64_t>({1}, {0});
  Tensor steps = MakeTensor<int64_t>({1}, {0});
  auto r = RunOp("Slice", {&x, &starts, &ends, &axes, &steps});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

// ----------------------------------------------------------------- Gather

TEST(Gather, Axis0WithNegativeIndex) {
  Tensor data = MakeTensor<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor idx = MakeTensor<int64_t>({2, 2}, {0, 1, -1, 0});
  Tensor y = Run1("Gather", {&data, &idx});
  EXPECT_EQ(y.dims(), (Dims{2, 2, 2}));
  EXPECT_EQ(ToVector<float>(y), (std::vector<float>{1, 2, 3, 4, 5, 6, 1, 2}));
}

TEST(Gather, Axis1Int32IndicesScalarIndex) {
  Tensor data = MakeTensor<int64_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor idx = MakeTensor<int32_t>({}, {2});
  Tensor y = Run1("Gather", {&data, &idx}, {{"axis", IntAttr(1)}});
  EXPECT_EQ(y.dims(), (Dims{2}));
  EXPECT_EQ(ToVector<int64_t>(y), (std::vector<int64_t>{3, 6}));
}

TEST(Gather, OutOfRangeIndexNamed) {
  Tensor data = MakeTensor<float>({3}, {1, 2, 3});
  Tensor idx = MakeTensor<int64_t>({2}, {0, 3});
  auto r = RunOp("Gather", {&data, &idx});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(r.status().message().find("index 3"), std::string::npos) << r.status().message();
}

TEST(GatherElements, Axis1) {
  Tensor data = MakeTensor<float>({2, 2}, {1, 2, 3, 4});
  Tensor idx = MakeTensor<int64_t>({2, 2}, {0, 0, 1, 0});
  Tensor y = Run1("GatherElements", {&data, &idx}, {{"axis", IntAttr(1)}});
  EXPECT_EQ(ToVector<float>(y), (std::vector<float>{1, 1, 4, 3}));
  Tensor bad = MakeTensor<int64_t>({2, 2}, {0, 0, 2, 0});
  EXPECT_EQ(RunOp("GatherElements", {&data, &bad}, {{"axis", IntAttr(1)}}).status().code(), StatusCode::kOutOfRange);
}

TEST(GatherND, BatchDims) {
  Tensor data = MakeTensor<float>({2, 2, 2}, Iota(8));
  Tensor idx = MakeTensor<int64_t>({2, 1}, {1, 0});
  Tensor y = Run1("GatherND", {&data, &idx}, {{"batch_dims", IntAttr(1)}});
  EXPECT_EQ(y.dims(), (Dims{2, 2}));
  EXPECT_EQ(ToVector<float>(y), (std::vector<float>{2, 3, 4, 5}));
}

TEST(ScatterElements, AddReduction) {
  Tensor data = MakeTensor<float>({1, 5}, {1, 2, 3, 4, 5});
  Tensor idx = MakeTensor<int64_t>({1, 2}, {1, 1});
  Tensor upd = MakeTensor<float>({1, 2}, {1.5f, 2.5f});
  Tensor y = Run1("ScatterElements", {&data, &idx, &upd}, {{"axis", IntAttr(1)}, {"reduction", StringAttr("add")}}, 16);
  EXPECT_EQ(ToVector<float>(y), (std::vector<float>{1, 6, 3, 4, 5}));
}

// -------------------------------------------------- Shape, Size, constants

TEST(Shape, StartEnd) {
  Tensor x = MakeTensor<float>({2, 3, 4, 5}, Iota(120));
  EXPECT_EQ(ToVector<int64_t>(Run1("Shape", {&x})), (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(ToVector<int64_t>(Run1("Shape", {&x}, {{"start", IntAttr(1)}, {"end", IntAttr(-1)}}, 15)),
            (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(ToVector<int64_t>(Run1("Shape", {&x}, {{"start", IntAttr(-10)}, {"end", IntAttr(10)}}, 15)),
            (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(Run1("Shape", {&x}, {{"start", IntAttr(3)}, {"end", IntAttr(1)}}, 15).dims(), (Dims{0}));
}

TEST(Size, CountsElements) {
  Tensor x = MakeTensor<float>({2, 3}, Iota(6));
  Tensor y = Run1("Size", {&x});
  EXPECT_EQ(y.rank(), 0);
  EXPECT_EQ(y.data<int64_t>()[0], 6);
}

TEST(Constant, ValueKinds) {
  Tensor v = MakeTensor<int32_t>({2}, {4, 5});
  EXPECT_EQ(ToVector<int32_t>(Run1("Constant", {}, {{"value", TensorAttr(v)}})), (std::vector<int32_t>{4, 5}));
  Tensor f = Run1("Constant", {}, {{"value_float", FloatAttr(2.5f)}});
  EXPECT_EQ(f.rank(), 0);
  EXPECT_EQ(f.data<float>()[0], 2.5f);
  EXPECT_EQ(ToVector<int64_t>(Run1("Constant", {}, {{"value_ints", IntsAttr({1, 2, 3})}})),
            (std::vector<int64_t>{1, 2, 3}));
  Attribute s;
  s.kind = Attribute::Kind::kString;
  s.s = "hello";
  EXPECT_EQ(RunOp("Constant", {}, {{"value_string", s}}).status().code(), StatusCode::kUnsupported);
}

TEST(ConstantOfShape, DefaultAndTypedValue) {
  Tensor shape = MakeTensor<int64_t>({2}, {2, 3});
  Tensor y = Run1("ConstantOfShape", {&shape});
  EXPECT_EQ(y.dtype(), DType::kFloat32);
  EXPECT_EQ(ToVector<float>(y), std::vector<float>(6, 0.0f));
  Tensor v = MakeTensor<int64_t>({1}, {7});
  Tensor z = Run1("ConstantOfShape", {&shape}, {{"value", TensorAttr(v)}});
  EXPECT_EQ(ToVector<int64_t>(z), std::vector<int64_t>(6, 7));
}

TEST(Range, FloatAndIntAndNegativeDelta) {
  Tensor s = MakeTensor<float>({}, {1.0f});
  Tensor l = MakeTensor<float>({}, {2.0f});
  Tensor d = MakeTensor<float>({}, {0.25f});
  ExpectNear(ToVector<float>(Run1("Range", {&s, &l, &d})), {1.0f, 1.25f, 1.5f, 1.75f});
  Tensor si = MakeTensor<int32_t>({}, {10});
  Tensor li = MakeTensor<int32_t>({}, {4});
  Tensor di = MakeTensor<int32_t>({}, {-3});
  EXPECT_EQ(ToVector<int32_t>(Run1("Range", {&si, &li, &di})), (std::vector<int32_t>{10, 7}));
  Tensor zero = MakeTensor<int32_t>({}, {0});
  EXPECT_EQ(RunOp("Range", {&si, &li, &zero}).status().code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------- Expand, Tile

TEST(Expand, BroadcastsBothWays) {
  Tensor x = MakeTensor<float>({3, 1}, {1, 2, 3});
  Tensor shape = MakeTensor<int64_t>({3}, {2, 1, 2});
  Tensor y = Run1("Expand", {&x, &shape});
  EXPECT_EQ(y.dims(), (Dims{2, 3, 2}));
  EXPECT_EQ(ToVector<float>(y), (std::vector<float>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}));
  Tensor bad = MakeTensor<int64_t>({1}, {4});
  Tensor x2 = MakeTensor<float>({3}, {1, 2, 3});
  EXPECT_EQ(RunOp("Expand", {&x2, &bad}).status().code(), StatusCode::kInvalidArgument);
}

TEST(Tile, RepeatsEachAxis) {
  Tensor x = MakeTensor<int64_t>({2, 2}, {1, 2, 3, 4});
  Tensor reps = MakeTensor<int64_t>({2}, {2, 3});
  Tensor y = Run1("Tile", {&x, &reps});
  EXPECT_EQ(y.dims(), (Dims{4, 6}));
  EXPECT_EQ(ToVector<int64_t>(y),
            (std::vector<int64_t>{1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4}));
}

// ------------------------------------------------------------ misc ops

TEST(Trilu, UpperAndLowerWithK) {
  Tensor x = MakeTensor<float>({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  EXPECT_EQ(ToVector<float>(Run1("Trilu", {&x})), (std::vector<float>{1, 2, 3, 0, 5, 6, 0, 0, 9}));
  Tensor k = MakeTensor<int64_t>({}, {-1});
  EXPECT_EQ(ToVector<float>(Run1("Trilu", {&x, &k}, {{"upper", IntAttr(0)}})),
            (std::vector<float>{0, 0, 0, 4, 0, 0, 7, 8, 0}));
}

TEST(NonZero, CoordinatesInRowMajorOrder) {
  Tensor x = MakeTensor<int32_t>({2, 2}, {1, 0, 0, 3});
  Tensor y = Run1("NonZero", {&x});
  EXPECT_EQ(y.dims(), (Dims{2, 2}));
  EXPECT_EQ(ToVector<int64_t>(y), (std::vector<int64_t>{0, 1, 0, 1}));
}

TEST(TopK, LargestAndSmallestWithTies) {
  Tensor x = MakeTensor<float>({2, 4}, {1, 3, 3, 2, 4, 0, 5, 5});
  Tensor k = MakeTensor<int64_t>({1}, {2});
  auto r = RunOp("TopK", {&x, &k}, {}, 11, 2);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ToVector<float>((*r)[0]), (std::vector<float>{3, 3, 5, 5}));
  EXPECT_EQ(ToVector<int64_t>((*r)[1]), (std::vector<int64_t>{1, 2, 2, 3}));
  r = RunOp("TopK", {&x, &k}, {{"largest", IntAttr(0)}, {"axis", IntAttr(0)}}, 11, 2);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ToVector<int64_t>((*r)[1]), (std::vector<int64_t>{0, 1, 0, 0, 1, 0, 1, 1}));
  Tensor big = MakeTensor<int64_t>({1}, {5});
  EXPECT_EQ(RunOp("TopK", {&x, &big}, {}, 11, 2).status().code(), StatusCode::kInvalidArgument);
}

TEST(CumSum, ExclusiveReverse) {
  Tensor x = MakeTensor<float>({4}, {1, 2, 3, 4});
  Tensor axis = MakeTensor<int32_t>({}, {0});
  EXPECT_EQ(ToVector<float>(Run1("CumSum", {&x, &axis})), (std::vector<float>{1, 3, 6, 10}));
  EXPECT_EQ(ToVector<float>(Run1("CumSum", {&x, &axis}, {{"exclusive", IntAttr(1)}, {"reverse", IntAttr(1)}})),
            (std::vector<float>{9, 7, 4, 0}));
}

TEST(OneHot, NegativeAndOutOfRangeIndices) {
  Tensor idx = MakeTensor<int64_t>({3}, {0, -1, 7});
  Tensor depth = MakeTensor<float>({}, {3});
  Tensor values = MakeTensor<float>({2}, {0, 5});
  Tensor y = Run1("OneHot", {&idx, &depth, &values});
  EXPECT_EQ(y.dims(), (Dims{3, 3}));
  EXPECT_EQ(ToVector<float>(y), (std::vector<float>{5, 0, 0, 0, 0, 5, 0, 0, 0}));
}

TEST(DepthToSpace, DcrAndCrdRoundTripWithSpaceToDepth) {
  Tensor x = MakeTensor<float>({1, 4, 1, 1}, {0, 1, 2, 3});
  Tensor dcr = Run1("DepthToSpace", {&x}, {{"blocksize", IntAttr(2)}});
  EXPECT_EQ(dcr.dims(), (Dims{1, 1, 2, 2}));
  EXPECT_EQ(ToVector<float>(dcr), (std::vector<float>{0, 1, 2, 3}));
  Tensor x2 = MakeTensor<float>({1, 8, 1, 1}, Iota(8));
  // DCR: depth index = (bh * 2 + bw) * C' + c; CRD: c * 4 + bh * 2 + bw.
  EXPECT_EQ(ToVector<float>(Run1("DepthToSpace", {&x2}, {{"blocksize", IntAttr(2)}})),
            (std::vector<float>{0, 2, 4, 6, 1, 3, 5, 7}));
  EXPECT_EQ(ToVector<float>(Run1("DepthToSpace", {&x2}, {{"blocksize", IntAttr(2)}, {"mode", StringAttr("CRD")}})),
            Iota(8));
  Tensor space = MakeTensor<float>({1, 2, 2, 2}, Iota(8));
  Tensor depth = Run1("SpaceToDepth", {&space}, {{"blocksize", IntAttr(2)}});
  EXPECT_EQ(depth.dims(), (Dims{1, 8, 1, 1}));
  Tensor back = Run1("DepthToSpace", {&depth}, {{"blocksize", IntAttr(2)}});
  EXPECT_EQ(ToVector<float>(back), Iota(8));
}

TEST(EyeLike, OffsetDiagonalAndDtype) {
  Tensor x = MakeTensor<float>({2, 3}, Iota(6));
  Tensor y = Run1("EyeLike", {&x}, {{"k", IntAttr(1)}, {"dtype", IntAttr(7)}});
  EXPECT_EQ(y.dtype(), DType::kInt64);
  EXPECT_EQ(ToVector<int64_t>(y), (std::vector<int64_t>{0, 1, 0, 0, 0, 1}));
}

TEST(ScatterND, RowUpdatesAndBounds) {
  Tensor data = MakeTensor<float>({3, 2}, Iota(6));
  Tensor idx = MakeTensor<int64_t>({1, 1}, {-1});
  Tensor upd = MakeTensor<float>({1, 2}, {9, 9});
  EXPECT_EQ(ToVector<float>(Run1("ScatterND", {&data, &idx, &upd})), (std::vector<float>{0, 1, 2, 3, 9, 9}));
  Tensor bad = MakeTensor<int64_t>({1, 1}, {3});
  EXPECT_EQ(RunOp("ScatterND", {&data, &bad, &upd}).status().code(), StatusCode::kOutOfRange);
}

TEST(DataMovement, LargeTensorsMatchAcrossPaths) {
  // Large enough to cross the parallel grain; the serial test runner still
  // walks the chunked code paths.
  const Dims dims = {2, 64, 48, 40};
  Tensor x = MakeTensor<float>(dims, Iota(2 * 64 * 48 * 40));
  Tensor y = Run1("Transpose", {&x}, {{"perm", IntsAttr({0, 3, 1, 2})}});
  EXPECT_EQ(ToVector<float>(y), RefTranspose(dims, {0, 3, 1, 2}, Iota(2 * 64 * 48 * 40)));
  Tensor starts = MakeTensor<int64_t>({2}, {1, 3});
  Tensor ends = MakeTensor<int64_t>({2}, {60, 40});
  Tensor axes = MakeTensor<int64_t>({2}, {1, 3});
  Tensor sliced = Run1("Slice", {&x, &starts, &ends, &axes});
  EXPECT_EQ(sliced.dims(), (Dims{2, 59, 48, 37}));
  EXPECT_EQ(sliced.data<float>()[0], static_cast<float>(1 * 48 * 40 + 3));
}

TEST(Compress, AxisAndFlattened) {
  Tensor x = MakeTensor<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor cond = MakeTensor<bool>({2}, {false, true});
  Tensor y = Run1("Compress", {&x, &cond}, {{"axis", IntAttr(0)}});
  EXPECT_EQ(y.dims(), (Dims{1, 2}));
  EXPECT_EQ(ToVector<float>(y), (std::vector<float>{3, 4}));
  EXPECT_EQ(ToVector<float>(Run1("Compress", {&x, &cond})), (std::vector<float>{2}));
}

}  // namespace
}  // namespace kiln::testing
