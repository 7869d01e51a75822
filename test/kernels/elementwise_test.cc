// Tests of the elementwise family: broadcasting (against a naive reference,
// serial and chunked in parallel), each op on hand-computed values, dtypes,
// opset variants, and errors.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "kernels/broadcast.h"
#include "kernels/fast_math.h"
#include "kernels/kernel.h"
#include "test/kernels/kernel_test_util.h"

namespace kiln {
namespace {

using ::kiln::testing::FloatAttr;
using ::kiln::testing::IntAttr;
using ::kiln::testing::MakeTensor;
using ::kiln::testing::RunOp;
using ::kiln::testing::StringAttr;
using ::kiln::testing::ToVector;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Runs fn on chunks of `grain` elements in reverse order, so kernels see
// ranges that start in the middle of a broadcast run, and in an order a
// real pool might use.
class ChunkedRunner final : public kernels::ParallelRunner {
 public:
  void For(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) const override {
    const int64_t step = std::max<int64_t>(grain / 7, 1);  // smaller than asked, to split runs
    for (int64_t begin = (n - 1) / step * step; begin >= 0; begin -= step) fn(begin, std::min(n, begin + step));
  }
  int num_threads() const override { return 4; }
};

StatusOr<std::vector<Tensor>> RunChunked(const std::string& op_type, const std::vector<const Tensor*>& inputs,
                                         int opset = 17) {
  graph::Node node;
  node.op_type = op_type;
  node.opset = opset;
  KILN_ASSIGN_OR_RETURN(auto kernel, kernels::DefaultKernelRegistry().Create(node));
  std::vector<Tensor> outputs(1);
  testing::PlainAllocator allocator;
  ChunkedRunner runner;
  kernels::KernelContext ctx(inputs, outputs, allocator, runner);
  KILN_RETURN_IF_ERROR(kernel->Compute(ctx));
  return outputs;
}

// One float output of `op` on float inputs.
std::vector<float> RunFloat(const std::string& op, const std::vector<const Tensor*>& inputs,
                            std::map<std::string, graph::Attribute> attrs = {}, int opset = 17) {
  auto out = RunOp(op, inputs, std::move(attrs), opset);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return {};
  return ToVector<float>((*out)[0]);
}

std::vector<float> Iota(int64_t n, float start = 0.0f, float step = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = start + step * static_cast<float>(i);
  return v;
}

// Reference broadcasting: element of `t` (dims `d`) for output coordinate
// `coord` of an output of rank `rank`.
float RefAt(const std::vector<float>& t, const Dims& d, const Dims& coord) {
  int64_t offset = 0;
  const size_t pad = coord.size() - d.size();
  for (size_t i = 0; i < d.size(); ++i) offset = offset * d[i] + (d[i] == 1 ? 0 : coord[pad + i]);
  return t[static_cast<size_t>(offset)];
}

std::vector<float> RefBroadcastAdd(const std::vector<float>& a, const Dims& ad, const std::vector<float>& b,
                                   const Dims& bd, const Dims& od) {
  int64_t n = 1;
  for (int64_t d : od) n *= d;
  std::vector<float> out;
  Dims coord(od.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i;
    for (size_t k = od.size(); k-- > 0;) {
      coord[k] = rem % od[k];
      rem /= od[k];
    }
    out.push_back(RefAt(a, ad, coord) + RefAt(b, bd, coord));
  }
  return out;
}

// --- broadcasting -----------------------------------------------------------

TEST(BroadcastDims, Shapes) {
  Dims a{2, 3, 4, 5}, b{5}, c{3, 1, 1}, d{1, 4, 1}, e{};
  EXPECT_EQ(*kernels::BroadcastDims("t", {&a, &b}), (Dims{2, 3, 4, 5}));
  EXPECT_EQ(*kernels::BroadcastDims("t", {&c, &d}), (Dims{3, 4, 1}));
  EXPECT_EQ(*kernels::BroadcastDims("t", {&e, &c}), (Dims{3, 1, 1}));
  Dims z{0, 1}, y{1, 3};
  EXPECT_EQ(*kernels::BroadcastDims("t", {&z, &y}), (Dims{0, 3}));
  Dims bad1{2, 3}, bad2{4, 3};
  auto r = kernels::BroadcastDims("Add", {&bad1, &bad2});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("cannot be broadcast"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("[2, 3]"), std::string::npos);
}

TEST(Broadcast, MatchesReferenceSerialAndChunked) {
  const std::vector<std::pair<Dims, Dims>> cases = {
      {{2, 3, 4, 5}, {2, 3, 4, 5}},  // same shape
      {{2, 3, 4, 5}, {}},            // scalar
      {{}, {3, 4}},                  // scalar first
      {{2, 3, 4, 5}, {3, 1, 1}},     // inner-dim broadcast (NCHW + C11)
      {{4, 3}, {3}},                 // rows
      {{3, 1}, {1, 4}},              // outer product
      {{2, 1, 4}, {3, 1}},           // both sides broadcast
      {{1, 3, 1, 5}, {2, 1, 4, 1}},  // alternating
      {{2, 3, 1}, {1, 1, 1}},        // all-ones operand
      {{7, 1, 37}, {7, 5, 37}},      // middle broadcast with odd sizes
      {{0, 3}, {1, 3}},              // empty
  };
  for (const auto& [ad, bd] : cases) {
    int64_t na = 1, nb = 1;
    for (int64_t d : ad) na *= d;
    for (int64_t d : bd) nb *= d;
    const Tensor a = MakeTensor<float>(ad, Iota(na, 1.0f));
    const Tensor b = MakeTensor<float>(bd, Iota(nb, 100.0f, 10.0f));
    const Dims od = *kernels::BroadcastDims("t", {&ad, &bd});
    const std::vector<float> expected = RefBroadcastAdd(ToVector<float>(a), ad, ToVector<float>(b), bd, od);
    auto serial = RunOp("Add", {&a, &b});
    ASSERT_TRUE(serial.ok()) << serial.status().ToString();
    EXPECT_EQ((*serial)[0].dims(), od);
    EXPECT_EQ(ToVector<float>((*serial)[0]), expected) << DimsToString(ad) << " + " << DimsToString(bd);
    auto chunked = RunChunked("Add", {&a, &b});
    ASSERT_TRUE(chunked.ok()) << chunked.status().ToString();
    EXPECT_EQ(ToVector<float>((*chunked)[0]), expected) << DimsToString(ad) << " + " << DimsToString(bd);
  }
}

TEST(Broadcast, LargeTensorChunkedRunsSplitMidRow) {
  // Above the parallel grain, so the chunked runner really splits.
  const Dims ad{2, 8, 40, 41}, bd{8, 1, 1};
  const Tensor a = MakeTensor<float>(ad, Iota(2 * 8 * 40 * 41));
  const Tensor b = MakeTensor<float>(bd, Iota(8, 0.5f));
  auto out = RunChunked("Add", {&a, &b});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(ToVector<float>((*out)[0]), RefBroadcastAdd(ToVector<float>(a), ad, ToVector<float>(b), bd, ad));
}

TEST(Broadcast, ZeroSizedOutputWithLargeOtherDims) {
  // [0, 2^24, 2^24] + [1]: nothing to compute, and the indexer must not
  // walk the other dims (it multiplied them; with larger ones, which
  // CheckedNumElements now refuses, that overflowed: UBSan in the fuzzer).
  const int64_t large = int64_t{1} << 24;
  const Tensor a = Tensor::View(DType::kFloat32, {0, large, large}, nullptr);
  const Tensor b = MakeTensor<float>({1}, {1.0f});
  auto out = RunOp("Add", {&a, &b});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{0, large, large}));
}

TEST(Shapes, EmptyTensorsWithHugeDimsAreRefused) {
  // Empty, but [0, 2^62]'s dims would overflow index arithmetic (Softmax's
  // work estimate 3 * 2^62 did, in the model fuzzer).
  auto t = Tensor::Allocate(DType::kFloat32, {0, int64_t{1} << 62});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(t.status().message().find("2^48"), std::string::npos) << t.status().ToString();
  EXPECT_TRUE(Tensor::Allocate(DType::kFloat32, {0, int64_t{1} << 40}).ok());
}

TEST(Broadcast, IncompatibleShapesAreInvalidArgument) {
  const Tensor a = MakeTensor<float>({2, 3}, Iota(6));
  const Tensor b = MakeTensor<float>({4}, Iota(4));
  for (const char* op : {"Add", "Mul", "Equal", "Pow", "Max"}) {
    auto out = RunOp(op, {&a, &b});
    ASSERT_FALSE(out.ok()) << op;
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument) << op;
    EXPECT_NE(out.status().message().find("cannot be broadcast"), std::string::npos) << out.status().message();
  }
  const Tensor c = MakeTensor<bool>({3}, {true, false, true});
  auto w = RunOp("Where", {&c, &a, &b});
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument);
}

// --- fast math ----------------------------------------------------------------

TEST(FastMath, WithinOneMillionthOfDoublePrecision) {
  double worst_exp = 0, worst_tanh = 0, worst_sigmoid = 0;
  for (uint64_t bits = 0; bits < (uint64_t{1} << 32); bits += 4099) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(bits));
    if (!std::isfinite(x)) continue;
    const double xd = x;
    auto rel = [](double got, double want) {
      // Results in the denormal range or beyond float's range are judged
      // by their class (0 or inf), not by relative error.
      if (std::fabs(want) < 1.2e-38 || std::fabs(want) > 3.4e38) return 0.0;
      return std::fabs(got - want) / std::fabs(want);
    };
    worst_exp = std::max(worst_exp, rel(kernels::FastExp(x), std::exp(xd)));
    worst_tanh = std::max(worst_tanh, rel(kernels::FastTanh(x), std::tanh(xd)));
    worst_sigmoid = std::max(worst_sigmoid, rel(kernels::FastSigmoid(x), 1.0 / (1.0 + std::exp(-xd))));
  }
  EXPECT_LT(worst_exp, 1e-6);
  EXPECT_LT(worst_tanh, 1e-6);
  EXPECT_LT(worst_sigmoid, 1e-6);
}

TEST(FastMath, ErfWithinSevenUlpOfOne) {
  double worst_abs = 0, worst_rel = 0;
  for (uint64_t bits = 0; bits < (uint64_t{1} << 32); bits += 4099) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(bits));
    if (!std::isfinite(x)) continue;
    const double want = std::erf(static_cast<double>(x));
    const double got = kernels::FastErf(x);
    worst_abs = std::max(worst_abs, std::fabs(got - want));
    // Relative error where it means something (not in the denormal range).
    if (std::fabs(want) > 1e-30) worst_rel = std::max(worst_rel, std::fabs(got - want) / std::fabs(want));
  }
  EXPECT_LT(worst_abs, 4e-7);  // about 7 float ulps just below 1
  EXPECT_LT(worst_rel, 1e-6);
  EXPECT_TRUE(std::isnan(kernels::FastErf(kNaN)));
  EXPECT_EQ(kernels::FastErf(kInf), 1.0f);
  EXPECT_EQ(kernels::FastErf(-kInf), -1.0f);
  EXPECT_EQ(kernels::FastErf(0.0f), 0.0f);
}

TEST(FastMath, SpecialValues) {
  EXPECT_TRUE(std::isnan(kernels::FastExp(kNaN)));
  EXPECT_TRUE(std::isnan(kernels::FastTanh(kNaN)));
  EXPECT_TRUE(std::isnan(kernels::FastSigmoid(kNaN)));
  EXPECT_EQ(kernels::FastExp(kInf), kInf);
  EXPECT_EQ(kernels::FastExp(-kInf), 0.0f);
  EXPECT_EQ(kernels::FastExp(100.0f), kInf);
  EXPECT_EQ(kernels::FastExp(0.0f), 1.0f);
  EXPECT_EQ(kernels::FastTanh(kInf), 1.0f);
  EXPECT_EQ(kernels::FastTanh(-kInf), -1.0f);
  EXPECT_EQ(kernels::FastSigmoid(-kInf), 0.0f);
  EXPECT_EQ(kernels::FastSigmoid(kInf), 1.0f);
  EXPECT_GT(kernels::FastSigmoid(-100.0f), 0.0f);  // e^-100, not a cancelled 0
}

// --- unary ----------------------------------------------------------------------

TEST(Unary, MathOpsMatchStd) {
  const std::vector<float> xs = {0.1f, 0.5f, 1.0f, 2.5f, 7.0f};
  const Tensor x = MakeTensor<float>({5}, xs);
  struct Case {
    const char* op;
    double (*ref)(double);
  };
  const Case cases[] = {
      {"Exp", [](double v) { return std::exp(v); }},
      {"Log", [](double v) { return std::log(v); }},
      {"Sqrt", [](double v) { return std::sqrt(v); }},
      {"Reciprocal", [](double v) { return 1 / v; }},
      {"Sin", [](double v) { return std::sin(v); }},
      {"Cos", [](double v) { return std::cos(v); }},
      {"Erf", [](double v) { return std::erf(v); }},
      {"Tanh", [](double v) { return std::tanh(v); }},
      {"Sigmoid", [](double v) { return 1 / (1 + std::exp(-v)); }},
      {"Softplus", [](double v) { return std::log1p(std::exp(v)); }},
      {"Softsign", [](double v) { return v / (1 + v); }},
      {"Sinh", [](double v) { return std::sinh(v); }},
      {"Cosh", [](double v) { return std::cosh(v); }},
      {"Atan", [](double v) { return std::atan(v); }},
  };
  for (const Case& c : cases) {
    std::vector<float> expected;
    for (float v : xs) expected.push_back(static_cast<float>(c.ref(v)));
    SCOPED_TRACE(c.op);
    testing::ExpectNear(RunFloat(c.op, {&x}), expected, 1e-6f, 0.0f);
  }
}

TEST(Unary, RoundingAndSign) {
  const Tensor x = MakeTensor<float>({7}, {-2.5f, -1.5f, -0.4f, 0.0f, 0.5f, 1.5f, 2.7f});
  EXPECT_EQ(RunFloat("Round", {&x}), (std::vector<float>{-2, -2, -0.0f, 0, 0, 2, 3}));
  EXPECT_EQ(RunFloat("Floor", {&x}), (std::vector<float>{-3, -2, -1, 0, 0, 1, 2}));
  EXPECT_EQ(RunFloat("Ceil", {&x}), (std::vector<float>{-2, -1, -0.0f, 0, 1, 2, 3}));
  EXPECT_EQ(RunFloat("Sign", {&x}), (std::vector<float>{-1, -1, -1, 0, 1, 1, 1}));
  EXPECT_EQ(RunFloat("Abs", {&x}), (std::vector<float>{2.5f, 1.5f, 0.4f, 0, 0.5f, 1.5f, 2.7f}));
  EXPECT_EQ(RunFloat("Neg", {&x}), (std::vector<float>{2.5f, 1.5f, 0.4f, -0.0f, -0.5f, -1.5f, -2.7f}));
}

TEST(Unary, IntegerNegAbsSign) {
  const int32_t kMin = std::numeric_limits<int32_t>::min();
  const Tensor x = MakeTensor<int32_t>({4}, {-5, 0, 7, kMin});
  auto neg = RunOp("Neg", {&x});
  ASSERT_TRUE(neg.ok()) << neg.status().ToString();
  EXPECT_EQ(ToVector<int32_t>((*neg)[0]), (std::vector<int32_t>{5, 0, -7, kMin}));  // wraps, no UB
  auto abs = RunOp("Abs", {&x});
  ASSERT_TRUE(abs.ok());
  EXPECT_EQ(ToVector<int32_t>((*abs)[0]), (std::vector<int32_t>{5, 0, 7, kMin}));
  const Tensor y = MakeTensor<int64_t>({3}, {-9, 0, 4});
  auto sign = RunOp("Sign", {&y});
  ASSERT_TRUE(sign.ok());
  EXPECT_EQ(ToVector<int64_t>((*sign)[0]), (std::vector<int64_t>{-1, 0, 1}));
  auto relu = RunOp("Relu", {&y});
  ASSERT_TRUE(relu.ok());
  EXPECT_EQ(ToVector<int64_t>((*relu)[0]), (std::vector<int64_t>{0, 0, 4}));
}

TEST(Unary, ActivationsWithAttributes) {
  const Tensor x = MakeTensor<float>({5}, {-2.0f, -0.5f, 0.0f, 0.5f, 3.0f});
  testing::ExpectNear(RunFloat("Relu", {&x}), {0, 0, 0, 0.5f, 3});
  testing::ExpectNear(RunFloat("LeakyRelu", {&x}), {-0.02f, -0.005f, 0, 0.5f, 3});
  testing::ExpectNear(RunFloat("LeakyRelu", {&x}, {{"alpha", FloatAttr(0.1f)}}), {-0.2f, -0.05f, 0, 0.5f, 3});
  testing::ExpectNear(RunFloat("Elu", {&x}, {{"alpha", FloatAttr(2.0f)}}),
                      {2 * std::expm1(-2.0f), 2 * std::expm1(-0.5f), 0, 0.5f, 3}, 1e-6f);
  testing::ExpectNear(RunFloat("Celu", {&x}, {{"alpha", FloatAttr(2.0f)}}),
                      {2 * std::expm1(-1.0f), 2 * std::expm1(-0.25f), 0, 0.5f, 3}, 1e-6f);
  const float a = 1.67326319217681884765625f, g = 1.05070102214813232421875f;
  testing::ExpectNear(RunFloat("Selu", {&x}),
                      {g * a * std::expm1(-2.0f), g * a * std::expm1(-0.5f), 0, g * 0.5f, g * 3}, 1e-6f);
  testing::ExpectNear(RunFloat("HardSigmoid", {&x}), {0.1f, 0.4f, 0.5f, 0.6f, 1.0f});
  testing::ExpectNear(RunFloat("HardSigmoid", {&x}, {{"alpha", FloatAttr(0.5f)}, {"beta", FloatAttr(0.6f)}}),
                      {0, 0.35f, 0.6f, 0.85f, 1});
  testing::ExpectNear(RunFloat("HardSwish", {&x}), {-2 * (1.0f / 6), -0.5f * (2.5f / 6), 0, 0.5f * (3.5f / 6), 3});
  testing::ExpectNear(RunFloat("ThresholdedRelu", {&x}, {{"alpha", FloatAttr(0.4f)}}), {0, 0, 0, 0.5f, 3});
  testing::ExpectNear(RunFloat("Shrink", {&x}, {{"lambd", FloatAttr(1.0f)}, {"bias", FloatAttr(0.5f)}}),
                      {-1.5f, 0, 0, 0, 2.5f});
}

TEST(Unary, Gelu) {
  const Tensor x = MakeTensor<float>({4}, {-3.0f, -0.5f, 0.0f, 1.5f});
  std::vector<float> exact, approx;
  for (float v : ToVector<float>(x)) {
    exact.push_back(0.5f * v * (1 + std::erf(v / std::sqrt(2.0f))));
    approx.push_back(0.5f * v * (1 + std::tanh(std::sqrt(2 / 3.14159265f) * (v + 0.044715f * v * v * v))));
  }
  testing::ExpectNear(RunFloat("Gelu", {&x}, {}, 13), exact, 1e-6f, 1e-7f);
  testing::ExpectNear(RunFloat("Gelu", {&x}, {{"approximate", StringAttr("tanh")}}, 20), approx, 1e-5f, 1e-7f);
  auto bad = RunOp("Gelu", {&x}, {{"approximate", StringAttr("fast")}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(bad.status().message().find("fast"), std::string::npos);
}

TEST(Unary, Float64) {
  const Tensor x = MakeTensor<double>({3}, {-1.0, 0.25, 2.0});
  auto out = RunOp("Tanh", {&x});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dtype(), DType::kFloat64);
  EXPECT_EQ(ToVector<double>((*out)[0]), (std::vector<double>{std::tanh(-1.0), std::tanh(0.25), std::tanh(2.0)}));
}

TEST(Unary, IsNaNIsInf) {
  const Tensor x = MakeTensor<float>({4}, {1.0f, kNaN, kInf, -kInf});
  auto nan = RunOp("IsNaN", {&x});
  ASSERT_TRUE(nan.ok());
  EXPECT_EQ(ToVector<bool>((*nan)[0]), (std::vector<bool>{false, true, false, false}));
  auto inf = RunOp("IsInf", {&x});
  ASSERT_TRUE(inf.ok());
  EXPECT_EQ(ToVector<bool>((*inf)[0]), (std::vector<bool>{false, false, true, true}));
  auto pos = RunOp("IsInf", {&x}, {{"detect_negative", IntAttr(0)}});
  ASSERT_TRUE(pos.ok());
  EXPECT_EQ(ToVector<bool>((*pos)[0]), (std::vector<bool>{false, false, true, false}));
}

TEST(Unary, UnsupportedDTypeIsUnsupported) {
  const Tensor x = MakeTensor<int32_t>({2}, {1, 4});
  auto out = RunOp("Sqrt", {&x});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(out.status().message().find("int32"), std::string::npos) << out.status().message();
  const Tensor b = MakeTensor<bool>({1}, {true});
  auto add = RunOp("Add", {&b, &b});
  ASSERT_FALSE(add.ok());
  EXPECT_EQ(add.status().code(), StatusCode::kUnsupported);
}

// --- binary ---------------------------------------------------------------------

TEST(Binary, Arithmetic) {
  const Tensor a = MakeTensor<float>({2, 2}, {1, 2, 3, 4});
  const Tensor b = MakeTensor<float>({2}, {10, 20});
  EXPECT_EQ(RunFloat("Add", {&a, &b}), (std::vector<float>{11, 22, 13, 24}));
  EXPECT_EQ(RunFloat("Sub", {&a, &b}), (std::vector<float>{-9, -18, -7, -16}));
  EXPECT_EQ(RunFloat("Mul", {&a, &b}), (std::vector<float>{10, 40, 30, 80}));
  EXPECT_EQ(RunFloat("Div", {&b, &a}), (std::vector<float>{10, 10, 10.0f / 3, 5}));
}

TEST(Binary, IntegerDivisionTruncatesAndRejectsZero) {
  const Tensor a = MakeTensor<int64_t>({4}, {7, -7, 7, std::numeric_limits<int64_t>::min()});
  const Tensor b = MakeTensor<int64_t>({4}, {2, 2, -2, -1});
  auto out = RunOp("Div", {&a, &b});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(ToVector<int64_t>((*out)[0]), (std::vector<int64_t>{3, -3, -3, std::numeric_limits<int64_t>::min()}));
  const Tensor zero = MakeTensor<int64_t>({1}, {0});
  auto bad = RunOp("Div", {&a, &zero});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("division by zero"), std::string::npos);
}

TEST(Binary, Int32WrapsAndMixedDTypesAreRejected) {
  const Tensor a = MakeTensor<int32_t>({2}, {std::numeric_limits<int32_t>::max(), 5});
  const Tensor one = MakeTensor<int32_t>({}, {1});
  auto out = RunOp("Add", {&a, &one});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(ToVector<int32_t>((*out)[0]), (std::vector<int32_t>{std::numeric_limits<int32_t>::min(), 6}));
  const Tensor f = MakeTensor<float>({2}, {1, 2});
  auto mixed = RunOp("Add", {&a, &f});
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(mixed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(mixed.status().message().find("different dtypes"), std::string::npos);
}

TEST(Binary, LegacyOpsetIsUnsupported) {
  const Tensor a = MakeTensor<float>({2}, {1, 2});
  auto out = RunOp("Add", {&a, &a}, {{"broadcast", IntAttr(1)}}, 6);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnsupported);
}

TEST(Binary, Mod) {
  const Tensor a = MakeTensor<int32_t>({4}, {7, -7, 7, -7});
  const Tensor b = MakeTensor<int32_t>({4}, {3, 3, -3, -3});
  auto py = RunOp("Mod", {&a, &b});
  ASSERT_TRUE(py.ok()) << py.status().ToString();
  EXPECT_EQ(ToVector<int32_t>((*py)[0]), (std::vector<int32_t>{1, 2, -2, -1}));
  auto c = RunOp("Mod", {&a, &b}, {{"fmod", IntAttr(1)}});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(ToVector<int32_t>((*c)[0]), (std::vector<int32_t>{1, -1, 1, -1}));
  const Tensor fa = MakeTensor<float>({2}, {5.5f, -5.5f});
  const Tensor fb = MakeTensor<float>({1}, {2.0f});
  EXPECT_EQ(RunFloat("Mod", {&fa, &fb}, {{"fmod", IntAttr(1)}}), (std::vector<float>{1.5f, -1.5f}));
  const Tensor zero = MakeTensor<int32_t>({1}, {0});
  EXPECT_EQ(RunOp("Mod", {&a, &zero}).status().code(), StatusCode::kInvalidArgument);
}

TEST(Binary, Pow) {
  const Tensor x = MakeTensor<float>({3}, {2.0f, -3.0f, 0.5f});
  const Tensor two = MakeTensor<float>({}, {2.0f});
  EXPECT_EQ(RunFloat("Pow", {&x, &two}), (std::vector<float>{4, 9, 0.25f}));
  const Tensor half = MakeTensor<float>({1}, {0.5f});
  const Tensor pos = MakeTensor<float>({2}, {4.0f, 9.0f});
  EXPECT_EQ(RunFloat("Pow", {&pos, &half}), (std::vector<float>{2, 3}));
  const Tensor e = MakeTensor<int64_t>({3}, {3, 2, -1});
  EXPECT_EQ(RunFloat("Pow", {&x, &e}), (std::vector<float>{8, 9, 2}));
  const Tensor fe = MakeTensor<float>({3}, {1.5f, 2.0f, 3.0f});
  testing::ExpectNear(RunFloat("Pow", {&x, &fe}), {std::pow(2.0f, 1.5f), 9, 0.125f}, 1e-6f);
  const Tensor ib = MakeTensor<int32_t>({3}, {3, -2, 5});
  const Tensor ie = MakeTensor<int32_t>({3}, {4, 3, 0});
  auto ii = RunOp("Pow", {&ib, &ie});
  ASSERT_TRUE(ii.ok()) << ii.status().ToString();
  EXPECT_EQ(ToVector<int32_t>((*ii)[0]), (std::vector<int32_t>{81, -8, 1}));
  const Tensor b = MakeTensor<bool>({1}, {true});
  EXPECT_EQ(RunOp("Pow", {&x, &b}).status().code(), StatusCode::kUnsupported);
}

TEST(Binary, PRelu) {
  const Tensor x = MakeTensor<float>({2, 2, 1}, {-1, 2, -3, 4});
  const Tensor slope = MakeTensor<float>({2, 1}, {0.5f, 0.25f});
  // slope [2, 1] broadcasts along dim 1 of x [2, 2, 1].
  EXPECT_EQ(RunFloat("PRelu", {&x, &slope}), (std::vector<float>{-0.5f, 2, -1.5f, 4}));
}

TEST(Variadic, SumMeanMinMax) {
  const Tensor a = MakeTensor<float>({2, 2}, {1, 5, 3, 8});
  const Tensor b = MakeTensor<float>({2}, {4, 2});
  const Tensor c = MakeTensor<float>({2, 1}, {0, 10});
  EXPECT_EQ(RunFloat("Sum", {&a, &b, &c}), (std::vector<float>{5, 7, 17, 20}));
  EXPECT_EQ(RunFloat("Mean", {&a, &b, &c}), (std::vector<float>{5.0f / 3, 7.0f / 3, 17.0f / 3, 20.0f / 3}));
  EXPECT_EQ(RunFloat("Min", {&a, &b, &c}), (std::vector<float>{0, 0, 3, 2}));
  EXPECT_EQ(RunFloat("Max", {&a, &b, &c}), (std::vector<float>{4, 5, 10, 10}));
  EXPECT_EQ(RunFloat("Max", {&a}), (std::vector<float>{1, 5, 3, 8}));
  const Tensor n = MakeTensor<float>({2}, {kNaN, 1});
  const std::vector<float> mx = RunFloat("Max", {&n, &b});
  EXPECT_TRUE(std::isnan(mx[0]));
  EXPECT_EQ(mx[1], 2);
  const Tensor i = MakeTensor<int64_t>({3}, {1, -4, 9});
  const Tensor j = MakeTensor<int64_t>({1}, {2});
  auto mn = RunOp("Min", {&i, &j});
  ASSERT_TRUE(mn.ok()) << mn.status().ToString();
  EXPECT_EQ(ToVector<int64_t>((*mn)[0]), (std::vector<int64_t>{1, -4, 2}));
  const Tensor f = MakeTensor<float>({1}, {1});
  EXPECT_EQ(RunOp("Sum", {&i, &f}).status().code(), StatusCode::kInvalidArgument);
}

// --- comparisons, logic, Where ----------------------------------------------

TEST(CompareLogic, Comparisons) {
  const Tensor a = MakeTensor<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = MakeTensor<float>({3}, {2, 2, 7});
  auto check = [&](const char* op, std::vector<bool> expected) {
    auto out = RunOp(op, {&a, &b});
    ASSERT_TRUE(out.ok()) << op << ": " << out.status().ToString();
    EXPECT_EQ((*out)[0].dtype(), DType::kBool);
    EXPECT_EQ(ToVector<bool>((*out)[0]), expected) << op;
  };
  check("Equal", {false, true, false, false, false, false});
  check("Less", {true, false, true, false, false, true});
  check("LessOrEqual", {true, true, true, false, false, true});
  check("Greater", {false, false, false, true, true, false});
  check("GreaterOrEqual", {false, true, false, true, true, false});
  const Tensor i = MakeTensor<int64_t>({3}, {1, 2, 3});
  const Tensor j = MakeTensor<int64_t>({}, {2});
  auto eq = RunOp("Equal", {&i, &j});
  ASSERT_TRUE(eq.ok());
  EXPECT_EQ(ToVector<bool>((*eq)[0]), (std::vector<bool>{false, true, false}));
}

TEST(CompareLogic, Logic) {
  const Tensor a = MakeTensor<bool>({2, 2}, {true, true, false, false});
  const Tensor b = MakeTensor<bool>({2}, {true, false});
  auto run = [&](const char* op, std::vector<const Tensor*> in) {
    auto out = RunOp(op, in);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? ToVector<bool>((*out)[0]) : std::vector<bool>{};
  };
  EXPECT_EQ(run("And", {&a, &b}), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(run("Or", {&a, &b}), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(run("Xor", {&a, &b}), (std::vector<bool>{false, true, true, false}));
  EXPECT_EQ(run("Not", {&a}), (std::vector<bool>{false, false, true, true}));
  const Tensor f = MakeTensor<float>({1}, {1});
  EXPECT_EQ(RunOp("And", {&f, &f}).status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(RunOp("Not", {&f}).status().code(), StatusCode::kUnsupported);
}

TEST(Where, BroadcastsAllThreeInputs) {
  const Tensor c = MakeTensor<bool>({2, 1}, {true, false});
  const Tensor x = MakeTensor<int64_t>({3}, {1, 2, 3});
  const Tensor y = MakeTensor<int64_t>({}, {-1});
  auto out = RunOp("Where", {&c, &x, &y});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{2, 3}));
  EXPECT_EQ(ToVector<int64_t>((*out)[0]), (std::vector<int64_t>{1, 2, 3, -1, -1, -1}));
  const Tensor c2 = MakeTensor<bool>({4}, {true, false, false, true});
  const Tensor fx = MakeTensor<float>({4}, {1, 2, 3, 4});
  const Tensor fy = MakeTensor<float>({1}, {0});
  EXPECT_EQ(RunFloat("Where", {&c2, &fx, &fy}), (std::vector<float>{1, 0, 0, 4}));
  EXPECT_EQ(RunOp("Where", {&fx, &fx, &fy}).status().code(), StatusCode::kInvalidArgument);  // float cond
}

// --- Cast, Clip -----------------------------------------------------------------

TEST(Cast, Conversions) {
  const Tensor x = MakeTensor<float>({5}, {-1.7f, 2.9f, 0.0f, kNaN, 3e10f});
  auto i32 = RunOp("Cast", {&x}, {{"to", IntAttr(6)}});
  ASSERT_TRUE(i32.ok()) << i32.status().ToString();
  EXPECT_EQ((*i32)[0].dtype(), DType::kInt32);
  EXPECT_EQ(ToVector<int32_t>((*i32)[0]), (std::vector<int32_t>{-1, 2, 0, 0, std::numeric_limits<int32_t>::max()}));
  auto b = RunOp("Cast", {&x}, {{"to", IntAttr(9)}});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(ToVector<bool>((*b)[0]), (std::vector<bool>{true, true, false, true, true}));
  const Tensor i = MakeTensor<int64_t>({2}, {-3, 1 << 20});
  auto f = RunOp("Cast", {&i}, {{"to", IntAttr(1)}});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(ToVector<float>((*f)[0]), (std::vector<float>{-3, 1 << 20}));
  auto d = RunOp("Cast", {&i}, {{"to", IntAttr(11)}});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(ToVector<double>((*d)[0]), (std::vector<double>{-3, 1 << 20}));
  auto u8 = RunOp("Cast", {&i}, {{"to", IntAttr(2)}});
  ASSERT_TRUE(u8.ok());
  EXPECT_EQ(ToVector<uint8_t>((*u8)[0]), (std::vector<uint8_t>{253, 0}));  // wraps like C
  const Tensor like = MakeTensor<int32_t>({1}, {0});
  auto cl = RunOp("CastLike", {&x, &like});
  ASSERT_TRUE(cl.ok()) << cl.status().ToString();
  EXPECT_EQ((*cl)[0].dtype(), DType::kInt32);
}

TEST(Cast, UnsupportedTargets) {
  const Tensor x = MakeTensor<float>({1}, {1});
  for (int64_t to : {8, 10, 16}) {  // string, float16, bfloat16
    auto out = RunOp("Cast", {&x}, {{"to", IntAttr(to)}});
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kUnsupported) << to;
    EXPECT_NE(out.status().message().find("target type"), std::string::npos);
  }
}

TEST(Clip, AttributesBeforeOpset11) {
  const Tensor x = MakeTensor<float>({4}, {-3, -1, 1, 3});
  EXPECT_EQ(RunFloat("Clip", {&x}, {{"min", FloatAttr(-2)}, {"max", FloatAttr(2)}}, 6),
            (std::vector<float>{-2, -1, 1, 2}));
  EXPECT_EQ(RunFloat("Clip", {&x}, {{"max", FloatAttr(0)}}, 6), (std::vector<float>{-3, -1, 0, 0}));
}

TEST(Clip, InputsFromOpset11) {
  const Tensor x = MakeTensor<float>({5}, {-3, -1, 1, 3, kNaN});
  const Tensor lo = MakeTensor<float>({}, {-2});
  const Tensor hi = MakeTensor<float>({}, {2});
  std::vector<float> out = RunFloat("Clip", {&x, &lo, &hi}, {}, 13);
  EXPECT_EQ(std::vector<float>(out.begin(), out.begin() + 4), (std::vector<float>{-2, -1, 1, 2}));
  EXPECT_TRUE(std::isnan(out[4]));
  out = RunFloat("Clip", {&x, nullptr, &hi}, {}, 13);
  EXPECT_EQ(std::vector<float>(out.begin(), out.begin() + 4), (std::vector<float>{-3, -1, 1, 2}));
  // min > max: everything becomes max.
  out = RunFloat("Clip", {&x, &hi, &lo}, {}, 13);
  EXPECT_EQ(std::vector<float>(out.begin(), out.begin() + 4), (std::vector<float>{-2, -2, -2, -2}));
  const Tensor xi = MakeTensor<int8_t>({3}, {-100, 5, 100});
  const Tensor li = MakeTensor<int8_t>({}, {-10});
  auto ci = RunOp("Clip", {&xi, &li}, {}, 13);
  ASSERT_TRUE(ci.ok()) << ci.status().ToString();
  EXPECT_EQ(ToVector<int8_t>((*ci)[0]), (std::vector<int8_t>{-10, 5, 100}));
  const Tensor vec = MakeTensor<float>({2}, {0, 1});
  auto bad = RunOp("Clip", {&x, &vec}, {}, 13);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("scalar"), std::string::npos);
}

}  // namespace
}  // namespace kiln
