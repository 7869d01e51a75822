// Tests of the reduction family: ReduceX, ArgMax/ArgMin, Softmax,
// LogSoftmax, Hardmax, LayerNormalization, Pad, Resize and Upsample, with
// hand-computed values, opset variants and error cases. Larger reductions
// are checked against a naive loop written here, covering the row, column
// and general (non-adjacent axes) paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "test/kernels/kernel_test_util.h"

namespace kiln {
namespace {

using testing::ExpectNear;
using testing::FloatAttr;
using testing::FloatsAttr;
using testing::IntAttr;
using testing::IntsAttr;
using testing::MakeTensor;
using testing::RandomFloats;
using testing::RunOp;
using testing::StringAttr;
using testing::ToVector;

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---------------------------------------------------------------- ReduceX

TEST(Reduce, SumOverAxisAttributeOpset11) {
  Tensor x = MakeTensor<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto out = RunOp("ReduceSum", {&x}, {{"axes", IntsAttr({1})}}, 11);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{2, 1}));
  ExpectNear(ToVector<float>((*out)[0]), {6, 15});
}

TEST(Reduce, SumAxesInputOpset13NoKeepdims) {
  Tensor x = MakeTensor<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor axes = MakeTensor<int64_t>({1}, {0});
  auto out = RunOp("ReduceSum", {&x, &axes}, {{"keepdims", IntAttr(0)}}, 13);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{3}));
  ExpectNear(ToVector<float>((*out)[0]), {5, 7, 9});
}

TEST(Reduce, EmptyAxesReducesAllOrIsNoop) {
  Tensor x = MakeTensor<float>({2, 2}, {1, 2, 3, 4});
  Tensor empty = MakeTensor<int64_t>({0}, {});
  auto all = RunOp("ReduceSum", {&x, &empty}, {}, 13);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ((*all)[0].dims(), (Dims{1, 1}));
  ExpectNear(ToVector<float>((*all)[0]), {10});
  auto noop = RunOp("ReduceSum", {&x, &empty}, {{"noop_with_empty_axes", IntAttr(1)}}, 13);
  ASSERT_TRUE(noop.ok()) << noop.status().ToString();
  EXPECT_EQ((*noop)[0].dims(), (Dims{2, 2}));
  ExpectNear(ToVector<float>((*noop)[0]), {1, 2, 3, 4});
  // Omitted axes input is the same as empty axes.
  auto omitted = RunOp("ReduceMax", {&x}, {{"keepdims", IntAttr(0)}}, 18);
  ASSERT_TRUE(omitted.ok()) << omitted.status().ToString();
  EXPECT_EQ((*omitted)[0].dims(), (Dims{}));
  ExpectNear(ToVector<float>((*omitted)[0]), {4});
}

TEST(Reduce, EveryOpOnOneRow) {
  Tensor x = MakeTensor<float>({1, 3}, {1, -2, 3});
  struct Case {
    const char* op;
    float expected;
  };
  const Case cases[] = {
      {"ReduceSum", 2},
      {"ReduceMean", 2.0f / 3},
      {"ReduceMax", 3},
      {"ReduceMin", -2},
      {"ReduceProd", -6},
      {"ReduceL1", 6},
      {"ReduceL2", std::sqrt(14.0f)},
      {"ReduceSumSquare", 14},
      {"ReduceLogSumExp", std::log(std::exp(1.0f) + std::exp(-2.0f) + std::exp(3.0f))},
  };
  for (const Case& c : cases) {
    auto out = RunOp(c.op, {&x}, {{"axes", IntsAttr({-1})}}, 13);
    ASSERT_TRUE(out.ok()) << c.op << ": " << out.status().ToString();
    EXPECT_EQ((*out)[0].dims(), (Dims{1, 1})) << c.op;
    ExpectNear(ToVector<float>((*out)[0]), {c.expected});
  }
  Tensor pos = MakeTensor<float>({3}, {1, 2, 3});
  auto log_sum = RunOp("ReduceLogSum", {&pos}, {}, 13);
  ASSERT_TRUE(log_sum.ok()) << log_sum.status().ToString();
  ExpectNear(ToVector<float>((*log_sum)[0]), {std::log(6.0f)});
}

TEST(Reduce, LogSumExpIsStableForLargeInputs) {
  Tensor x = MakeTensor<float>({2}, {1000, 1000});
  auto out = RunOp("ReduceLogSumExp", {&x}, {}, 13);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectNear(ToVector<float>((*out)[0]), {1000 + std::log(2.0f)});
}

TEST(Reduce, IntegerSumMaxProd) {
  Tensor x = MakeTensor<int64_t>({2, 2}, {1, 5, -3, 4});
  Tensor axes = MakeTensor<int64_t>({1}, {0});
  auto sum = RunOp("ReduceSum", {&x, &axes}, {}, 13);
  ASSERT_TRUE(sum.ok()) << sum.status().ToString();
  EXPECT_EQ(ToVector<int64_t>((*sum)[0]), (std::vector<int64_t>{-2, 9}));
  auto max = RunOp("ReduceMax", {&x}, {{"axes", IntsAttr({1})}, {"keepdims", IntAttr(0)}}, 13);
  ASSERT_TRUE(max.ok()) << max.status().ToString();
  EXPECT_EQ(ToVector<int64_t>((*max)[0]), (std::vector<int64_t>{5, 4}));
  Tensor x32 = MakeTensor<int32_t>({3}, {2, 3, -4});
  auto prod = RunOp("ReduceProd", {&x32}, {}, 13);
  ASSERT_TRUE(prod.ok()) << prod.status().ToString();
  EXPECT_EQ(ToVector<int32_t>((*prod)[0]), (std::vector<int32_t>{-24}));
}

// Naive reduction over `axes` (keepdims) for the comparison tests.
std::vector<double> NaiveReduce(const std::vector<float>& x, const Dims& dims, const std::vector<bool>& reduced,
                                const std::string& op) {
  const size_t rank = dims.size();
  Dims out_dims = dims;
  for (size_t i = 0; i < rank; ++i) {
    if (reduced[i]) out_dims[i] = 1;
  }
  int64_t out_n = 1, n = 1;
  for (size_t i = 0; i < rank; ++i) {
    out_n *= out_dims[i];
    if (reduced[i]) n *= dims[i];
  }
  std::vector<std::vector<double>> groups(static_cast<size_t>(out_n));
  for (size_t flat = 0; flat < x.size(); ++flat) {
    int64_t rest = static_cast<int64_t>(flat), out_index = 0, mul = 1;
    for (size_t i = rank; i-- > 0;) {
      const int64_t c = rest % dims[i];
      rest /= dims[i];
      out_index += (reduced[i] ? 0 : c) * mul;
      mul *= out_dims[i];
    }
    groups[static_cast<size_t>(out_index)].push_back(x[flat]);
  }
  std::vector<double> out;
  for (const auto& g : groups) {
    double acc = 0, mx = -1e300, mn = 1e300, prod = 1;
    for (double v : g) {
      mx = std::max(mx, v);
      mn = std::min(mn, v);
      prod *= v;
    }
    if (op == "ReduceSum")
      for (double v : g) acc += v;
    if (op == "ReduceMean") {
      for (double v : g) acc += v;
      acc /= static_cast<double>(n);
    }
    if (op == "ReduceMax") acc = mx;
    if (op == "ReduceMin") acc = mn;
    if (op == "ReduceProd") acc = prod;
    if (op == "ReduceL1")
      for (double v : g) acc += std::fabs(v);
    if (op == "ReduceL2") {
      for (double v : g) acc += v * v;
      acc = std::sqrt(acc);
    }
    if (op == "ReduceSumSquare")
      for (double v : g) acc += v * v;
    if (op == "ReduceLogSumExp") {
      for (double v : g) acc += std::exp(v - mx);
      acc = std::log(acc) + mx;
    }
    out.push_back(acc);
  }
  return out;
}

TEST(Reduce, MatchesNaiveOnRowColumnAndGeneralPaths) {
  const Dims dims = {3, 5, 4, 37};
  const std::vector<float> data = RandomFloats(3 * 5 * 4 * 37, 7);
  Tensor x = MakeTensor<float>(dims, data);
  const std::vector<std::vector<int64_t>> axes_cases = {{3},    {2, 3}, {1},       {0},          {0, 1},
                                                        {0, 2}, {1, 3}, {0, 2, 3}, {0, 1, 2, 3}, {-3, -1}};
  const char* ops[] = {"ReduceSum", "ReduceMean", "ReduceMax",       "ReduceMin",      "ReduceProd",
                       "ReduceL1",  "ReduceL2",   "ReduceSumSquare", "ReduceLogSumExp"};
  for (const auto& axes : axes_cases) {
    std::vector<bool> reduced(4, false);
    for (int64_t a : axes) reduced[static_cast<size_t>(a < 0 ? a + 4 : a)] = true;
    for (const char* op : ops) {
      Tensor axes_t = MakeTensor<int64_t>({static_cast<int64_t>(axes.size())}, axes);
      auto out = RunOp(op, {&x, &axes_t}, {}, 18);
      ASSERT_TRUE(out.ok()) << op << ": " << out.status().ToString();
      const std::vector<double> want = NaiveReduce(data, dims, reduced, op);
      const std::vector<float> got = ToVector<float>((*out)[0]);
      ASSERT_EQ(got.size(), want.size()) << op;
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_NEAR(got[i], want[i], 1e-4 + 1e-4 * std::fabs(want[i])) << op << " axes[0]=" << axes[0] << " at " << i;
      }
    }
  }
}

TEST(Reduce, ErrorsNameTheAxis) {
  Tensor x = MakeTensor<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto bad = RunOp("ReduceMean", {&x}, {{"axes", IntsAttr({2})}}, 13);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(bad.status().message(), "axis 2")) << bad.status().message();

  Tensor axes = MakeTensor<int64_t>({1}, {-3});
  auto neg = RunOp("ReduceSum", {&x, &axes}, {}, 13);
  ASSERT_FALSE(neg.ok());
  EXPECT_EQ(neg.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(neg.status().message(), "axis -3")) << neg.status().message();

  Tensor dup = MakeTensor<int64_t>({2}, {1, -1});
  auto twice = RunOp("ReduceSum", {&x, &dup}, {}, 13);
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().code(), StatusCode::kInvalidArgument);

  Tensor float_axes = MakeTensor<float>({1}, {0});
  auto wrong_type = RunOp("ReduceSum", {&x, &float_axes}, {}, 13);
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_EQ(wrong_type.status().code(), StatusCode::kInvalidArgument);

  Tensor ints = MakeTensor<int32_t>({2}, {1, 2});
  auto int_l2 = RunOp("ReduceL2", {&ints}, {}, 13);
  ASSERT_FALSE(int_l2.ok());
  EXPECT_EQ(int_l2.status().code(), StatusCode::kUnsupported);
}

// ------------------------------------------------------------ ArgMax/ArgMin

TEST(ArgMinMax, AxesKeepdimsAndSelectLastIndex) {
  Tensor x = MakeTensor<float>({2, 3}, {1, 3, 3, 5, 0, 5});
  auto a0 = RunOp("ArgMax", {&x}, {}, 13);
  ASSERT_TRUE(a0.ok()) << a0.status().ToString();
  EXPECT_EQ((*a0)[0].dims(), (Dims{1, 3}));
  EXPECT_EQ(ToVector<int64_t>((*a0)[0]), (std::vector<int64_t>{1, 0, 1}));
  auto a1 = RunOp("ArgMax", {&x}, {{"axis", IntAttr(-1)}, {"keepdims", IntAttr(0)}}, 13);
  ASSERT_TRUE(a1.ok()) << a1.status().ToString();
  EXPECT_EQ((*a1)[0].dims(), (Dims{2}));
  EXPECT_EQ(ToVector<int64_t>((*a1)[0]), (std::vector<int64_t>{1, 0}));
  auto last = RunOp("ArgMax", {&x}, {{"axis", IntAttr(1)}, {"select_last_index", IntAttr(1)}}, 13);
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  EXPECT_EQ(ToVector<int64_t>((*last)[0]), (std::vector<int64_t>{2, 2}));
  auto mn = RunOp("ArgMin", {&x}, {{"axis", IntAttr(1)}}, 13);
  ASSERT_TRUE(mn.ok()) << mn.status().ToString();
  EXPECT_EQ(ToVector<int64_t>((*mn)[0]), (std::vector<int64_t>{0, 1}));
  Tensor i = MakeTensor<int32_t>({3}, {4, -1, -1});
  auto mn_last = RunOp("ArgMin", {&i}, {{"select_last_index", IntAttr(1)}}, 13);
  ASSERT_TRUE(mn_last.ok()) << mn_last.status().ToString();
  EXPECT_EQ(ToVector<int64_t>((*mn_last)[0]), (std::vector<int64_t>{2}));
}

TEST(ArgMinMax, AxisOutOfRange) {
  Tensor x = MakeTensor<float>({2, 3}, {1, 3, 3, 5, 0, 5});
  auto bad = RunOp("ArgMin", {&x}, {{"axis", IntAttr(2)}}, 13);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(bad.status().message(), "axis 2")) << bad.status().message();
}

// ---------------------------------------------------------------- Softmax

TEST(Softmax, Opset13NormalisesAlongOneAxis) {
  Tensor x = MakeTensor<float>({2, 2}, {0, 0, 1, 3});
  auto last = RunOp("Softmax", {&x}, {}, 13);
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  const float e2 = std::exp(2.0f);
  ExpectNear(ToVector<float>((*last)[0]), {0.5f, 0.5f, 1 / (1 + e2), e2 / (1 + e2)});
  auto first = RunOp("Softmax", {&x}, {{"axis", IntAttr(0)}}, 13);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const float e1 = std::exp(1.0f), e3 = std::exp(3.0f);
  ExpectNear(ToVector<float>((*first)[0]), {1 / (1 + e1), 1 / (1 + e3), e1 / (1 + e1), e3 / (1 + e3)});
}

TEST(Softmax, Opset11CoercesTo2D) {
  // Default axis 1 of a [1, 2, 2] tensor: softmax over all four elements.
  Tensor x = MakeTensor<float>({1, 2, 2}, {0, 0, 0, 0});
  auto out = RunOp("Softmax", {&x}, {}, 11);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectNear(ToVector<float>((*out)[0]), {0.25f, 0.25f, 0.25f, 0.25f});
  // The opset 13 default (last axis only) gives halves instead.
  auto v13 = RunOp("Softmax", {&x}, {}, 13);
  ASSERT_TRUE(v13.ok()) << v13.status().ToString();
  ExpectNear(ToVector<float>((*v13)[0]), {0.5f, 0.5f, 0.5f, 0.5f});
}

TEST(Softmax, LargeInputsAndLogSoftmax) {
  Tensor x = MakeTensor<float>({1, 3}, {1000, 1001, 1002});
  auto sm = RunOp("Softmax", {&x}, {}, 13);
  ASSERT_TRUE(sm.ok()) << sm.status().ToString();
  const float s = 1 + std::exp(1.0f) + std::exp(2.0f);
  ExpectNear(ToVector<float>((*sm)[0]), {1 / s, std::exp(1.0f) / s, std::exp(2.0f) / s});
  auto lsm = RunOp("LogSoftmax", {&x}, {}, 13);
  ASSERT_TRUE(lsm.ok()) << lsm.status().ToString();
  const float ls = std::log(s);
  ExpectNear(ToVector<float>((*lsm)[0]), {-ls, 1 - ls, 2 - ls}, 1e-4f, 1e-4f);
}

TEST(Softmax, StridedAxisMatchesRows) {
  // Axis 1 of [2, 3, 5] (inner 5) against the same data transposed.
  const std::vector<float> data = RandomFloats(30, 3);
  Tensor x = MakeTensor<float>({2, 3, 5}, data);
  auto out = RunOp("LogSoftmax", {&x}, {{"axis", IntAttr(1)}}, 13);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const std::vector<float> got = ToVector<float>((*out)[0]);
  for (int o = 0; o < 2; ++o) {
    for (int i = 0; i < 5; ++i) {
      double sum = 0;
      for (int r = 0; r < 3; ++r) sum += std::exp(data[static_cast<size_t>(o * 15 + r * 5 + i)]);
      for (int r = 0; r < 3; ++r) {
        const size_t k = static_cast<size_t>(o * 15 + r * 5 + i);
        EXPECT_NEAR(got[k], data[k] - std::log(sum), 1e-5);
      }
    }
  }
}

TEST(Hardmax, FirstMaximumWins) {
  Tensor x = MakeTensor<float>({2, 3}, {1, 3, 3, -1, -2, -3});
  auto rows = RunOp("Hardmax", {&x}, {}, 13);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ExpectNear(ToVector<float>((*rows)[0]), {0, 1, 0, 1, 0, 0});
  auto cols = RunOp("Hardmax", {&x}, {{"axis", IntAttr(0)}}, 13);
  ASSERT_TRUE(cols.ok()) << cols.status().ToString();
  ExpectNear(ToVector<float>((*cols)[0]), {1, 1, 1, 0, 0, 0});
  auto flat = RunOp("Hardmax", {&x}, {{"axis", IntAttr(0)}}, 11);
  ASSERT_TRUE(flat.ok()) << flat.status().ToString();
  ExpectNear(ToVector<float>((*flat)[0]), {0, 1, 0, 0, 0, 0});
}

TEST(Softmax, AxisOutOfRange) {
  Tensor x = MakeTensor<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto bad = RunOp("Softmax", {&x}, {{"axis", IntAttr(-3)}}, 13);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(bad.status().message(), "axis -3")) << bad.status().message();
  Tensor ints = MakeTensor<int32_t>({2}, {1, 2});
  auto int_softmax = RunOp("Softmax", {&ints}, {}, 13);
  ASSERT_FALSE(int_softmax.ok());
  EXPECT_EQ(int_softmax.status().code(), StatusCode::kUnsupported);
}

// ------------------------------------------------------- LayerNormalization

TEST(LayerNorm, NormalisesRowsWithScaleBiasAndStatistics) {
  Tensor x = MakeTensor<float>({2, 2}, {1, 3, 2, 2});
  Tensor scale = MakeTensor<float>({2}, {1, 2});
  Tensor bias = MakeTensor<float>({2}, {0, 1});
  auto out = RunOp("LayerNormalization", {&x, &scale, &bias}, {{"epsilon", FloatAttr(0)}}, 17, 3);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  // Row 0: mean 2, var 1 -> [-1, 1] * [1, 2] + [0, 1]; row 1: var 0 -> 0/0.
  const std::vector<float> y = ToVector<float>((*out)[0]);
  EXPECT_NEAR(y[0], -1, 1e-6);
  EXPECT_NEAR(y[1], 3, 1e-6);
  EXPECT_EQ((*out)[1].dims(), (Dims{2, 1}));
  ExpectNear(ToVector<float>((*out)[1]), {2, 2});
  EXPECT_NEAR(ToVector<float>((*out)[2])[0], 1, 1e-6);
}

TEST(LayerNorm, AxisZeroWithoutBiasAndOneOutput) {
  Tensor x = MakeTensor<float>({2, 2}, {0, 2, 4, 6});
  Tensor scale = MakeTensor<float>({2, 2}, {1, 1, 1, 1});
  auto out = RunOp("LayerNormalization", {&x, &scale}, {{"axis", IntAttr(0)}, {"epsilon", FloatAttr(0)}}, 17);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  // mean 3, var (9 + 1 + 1 + 9) / 4 = 5.
  const float s = std::sqrt(5.0f);
  ExpectNear(ToVector<float>((*out)[0]), {-3 / s, -1 / s, 1 / s, 3 / s});
}

TEST(LayerNorm, Errors) {
  Tensor x = MakeTensor<float>({2, 2}, {0, 2, 4, 6});
  Tensor bad_scale = MakeTensor<float>({3}, {1, 1, 1});
  auto shape = RunOp("LayerNormalization", {&x, &bad_scale}, {}, 17);
  ASSERT_FALSE(shape.ok());
  EXPECT_EQ(shape.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(shape.status().message(), "Scale")) << shape.status().message();
  Tensor scale = MakeTensor<float>({2}, {1, 1});
  auto axis = RunOp("LayerNormalization", {&x, &scale}, {{"axis", IntAttr(2)}}, 17);
  ASSERT_FALSE(axis.ok());
  EXPECT_EQ(axis.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(axis.status().message(), "axis 2")) << axis.status().message();
}

// -------------------------------------------------------------------- Pad

TEST(Pad, ConstantReflectEdgeWrapOpset11) {
  Tensor x = MakeTensor<float>({1, 3}, {1, 2, 3});
  Tensor pads = MakeTensor<int64_t>({4}, {0, 2, 0, 1});
  Tensor value = MakeTensor<float>({}, {9});
  auto c = RunOp("Pad", {&x, &pads, &value}, {}, 11);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*c)[0].dims(), (Dims{1, 6}));
  ExpectNear(ToVector<float>((*c)[0]), {9, 9, 1, 2, 3, 9});
  auto r = RunOp("Pad", {&x, &pads}, {{"mode", StringAttr("reflect")}}, 11);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectNear(ToVector<float>((*r)[0]), {3, 2, 1, 2, 3, 2});
  auto e = RunOp("Pad", {&x, &pads}, {{"mode", StringAttr("edge")}}, 11);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  ExpectNear(ToVector<float>((*e)[0]), {1, 1, 1, 2, 3, 3});
  auto w = RunOp("Pad", {&x, &pads}, {{"mode", StringAttr("wrap")}}, 19);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ExpectNear(ToVector<float>((*w)[0]), {2, 3, 1, 2, 3, 1});
}

TEST(Pad, AttributesBeforeOpset11AndOuterAxes) {
  Tensor x = MakeTensor<int64_t>({2, 2}, {1, 2, 3, 4});
  auto out = RunOp("Pad", {&x}, {{"pads", IntsAttr({1, 0, 0, 1})}, {"value", FloatAttr(7)}}, 2);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{3, 3}));
  EXPECT_EQ(ToVector<int64_t>((*out)[0]), (std::vector<int64_t>{7, 7, 7, 1, 2, 7, 3, 4, 7}));
}

TEST(Pad, NegativePadsCropAndAxesInput) {
  Tensor x = MakeTensor<uint8_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor pads = MakeTensor<int64_t>({2}, {-1, 1});
  Tensor axes = MakeTensor<int64_t>({1}, {-1});
  auto out = RunOp("Pad", {&x, &pads, nullptr, &axes}, {{"mode", StringAttr("edge")}}, 18);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{2, 3}));
  EXPECT_EQ(ToVector<uint8_t>((*out)[0]), (std::vector<uint8_t>{2, 3, 3, 5, 6, 6}));
}

TEST(Pad, Errors) {
  Tensor x = MakeTensor<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor short_pads = MakeTensor<int64_t>({2}, {1, 1});
  auto count = RunOp("Pad", {&x, &short_pads}, {}, 13);
  ASSERT_FALSE(count.ok());
  EXPECT_EQ(count.status().code(), StatusCode::kInvalidArgument);
  Tensor crop = MakeTensor<int64_t>({4}, {0, -2, 0, -2});
  auto over = RunOp("Pad", {&x, &crop}, {}, 13);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), StatusCode::kInvalidArgument);
  Tensor pads = MakeTensor<int64_t>({2}, {1, 1});
  Tensor axes = MakeTensor<int64_t>({1}, {5});
  auto axis = RunOp("Pad", {&x, &pads, nullptr, &axes}, {}, 18);
  ASSERT_FALSE(axis.ok());
  EXPECT_EQ(axis.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(axis.status().message(), "axis 5")) << axis.status().message();
  auto mode = RunOp("Pad", {&x, &pads}, {{"mode", StringAttr("mirror")}}, 13);
  ASSERT_FALSE(mode.ok());
  EXPECT_EQ(mode.status().code(), StatusCode::kUnsupported);
}

// ----------------------------------------------------------------- Resize

TEST(Resize, NearestUpsampleScalesAsymmetricFloor) {
  Tensor x = MakeTensor<float>({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor scales = MakeTensor<float>({4}, {1, 1, 2, 1.5f});
  auto out =
      RunOp("Resize", {&x, nullptr, &scales},
            {{"coordinate_transformation_mode", StringAttr("asymmetric")}, {"nearest_mode", StringAttr("floor")}}, 13);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{1, 1, 4, 3}));
  // Columns: 0, 0.67, 1.33 -> 0, 0, 1.
  ExpectNear(ToVector<float>((*out)[0]), {1, 1, 2, 1, 1, 2, 3, 3, 4, 3, 3, 4});
}

TEST(Resize, LinearHalfPixelSizes) {
  Tensor x = MakeTensor<float>({1, 2}, {0, 4});
  Tensor sizes = MakeTensor<int64_t>({2}, {1, 4});
  auto out = RunOp("Resize", {&x, nullptr, nullptr, &sizes}, {{"mode", StringAttr("linear")}}, 13);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  // x_orig = (j + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped at the edges).
  ExpectNear(ToVector<float>((*out)[0]), {0, 1, 3, 4});
  auto ac =
      RunOp("Resize", {&x, nullptr, nullptr, &sizes},
            {{"mode", StringAttr("linear")}, {"coordinate_transformation_mode", StringAttr("align_corners")}}, 13);
  ASSERT_TRUE(ac.ok()) << ac.status().ToString();
  ExpectNear(ToVector<float>((*ac)[0]), {0, 4.0f / 3, 8.0f / 3, 4});
}

TEST(Resize, BilinearMatchesSeparableHandComputation) {
  Tensor x = MakeTensor<float>({2, 2}, {0, 1, 2, 3});
  Tensor scales = MakeTensor<float>({2}, {2, 2});
  auto out = RunOp("Resize", {&x, nullptr, &scales},
                   {{"mode", StringAttr("linear")}, {"coordinate_transformation_mode", StringAttr("asymmetric")}}, 13);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  // Coordinates 0, 0.5, 1, 1.5 along each axis; value = x + 2y (bilinear is
  // exact on a linear function), clamped to the last row/column.
  ExpectNear(ToVector<float>((*out)[0]), {0, 0.5f, 1, 1, 1, 1.5f, 2, 2, 2, 2.5f, 3, 3, 2, 2.5f, 3, 3});
}

TEST(Resize, AxesAttributeOpset18AndNearestInt) {
  Tensor x = MakeTensor<int32_t>({2, 2}, {1, 2, 3, 4});
  Tensor sizes = MakeTensor<int64_t>({1}, {4});
  auto out = RunOp("Resize", {&x, nullptr, nullptr, &sizes}, {{"axes", IntsAttr({1})}}, 18);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{2, 4}));
  EXPECT_EQ(ToVector<int32_t>((*out)[0]), (std::vector<int32_t>{1, 1, 2, 2, 3, 3, 4, 4}));
}

TEST(Resize, Opset10AndUpsample) {
  Tensor x = MakeTensor<float>({1, 4}, {1, 2, 3, 4});
  Tensor down = MakeTensor<float>({2}, {1, 0.6f});
  auto r10 = RunOp("Resize", {&x, &down}, {}, 10);
  ASSERT_TRUE(r10.ok()) << r10.status().ToString();
  // Downsampling in opsets < 11 rounds the source coordinate up: 0, ceil(1.67).
  ExpectNear(ToVector<float>((*r10)[0]), {1, 3});
  Tensor y = MakeTensor<float>({1, 2}, {1, 2});
  auto up7 = RunOp("Upsample", {&y}, {{"scales", FloatsAttr({1, 2})}}, 7);
  ASSERT_TRUE(up7.ok()) << up7.status().ToString();
  ExpectNear(ToVector<float>((*up7)[0]), {1, 1, 2, 2});
  Tensor scales = MakeTensor<float>({2}, {1, 2});
  auto up9 = RunOp("Upsample", {&y, &scales}, {{"mode", StringAttr("linear")}}, 9);
  ASSERT_TRUE(up9.ok()) << up9.status().ToString();
  ExpectNear(ToVector<float>((*up9)[0]), {1, 1.5f, 2, 2});
}

TEST(Resize, Errors) {
  Tensor x = MakeTensor<float>({1, 2}, {0, 4});
  Tensor scales = MakeTensor<float>({2}, {1, 2});
  Tensor sizes = MakeTensor<int64_t>({2}, {1, 4});
  auto both = RunOp("Resize", {&x, nullptr, &scales, &sizes}, {}, 13);
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.status().code(), StatusCode::kInvalidArgument);
  Tensor three = MakeTensor<float>({3}, {1, 1, 2});
  auto count = RunOp("Resize", {&x, nullptr, &three}, {}, 13);
  ASSERT_FALSE(count.ok());
  EXPECT_EQ(count.status().code(), StatusCode::kInvalidArgument);
  Tensor zero = MakeTensor<float>({2}, {1, 0});
  auto nonpositive = RunOp("Resize", {&x, nullptr, &zero}, {}, 13);
  ASSERT_FALSE(nonpositive.ok());
  EXPECT_EQ(nonpositive.status().code(), StatusCode::kInvalidArgument);
  auto crop = RunOp("Resize", {&x, nullptr, &scales},
                    {{"coordinate_transformation_mode", StringAttr("tf_crop_and_resize")}}, 13);
  ASSERT_FALSE(crop.ok());
  EXPECT_EQ(crop.status().code(), StatusCode::kUnsupported);
  auto antialias = RunOp("Resize", {&x, nullptr, &scales}, {{"antialias", IntAttr(1)}}, 18);
  ASSERT_FALSE(antialias.ok());
  EXPECT_EQ(antialias.status().code(), StatusCode::kUnsupported);
  Tensor ints = MakeTensor<int32_t>({1, 2}, {0, 4});
  auto int_linear = RunOp("Resize", {&ints, nullptr, &scales}, {{"mode", StringAttr("linear")}}, 13);
  ASSERT_FALSE(int_linear.ok());
  EXPECT_EQ(int_linear.status().code(), StatusCode::kUnsupported);
}

// ------------------------------------------------------------ parallelism

// Splits work into grain-sized chunks run on real threads, so the kernels'
// task indexing is exercised the way the runtime's pool does it.
class ThreadRunner final : public kernels::ParallelRunner {
 public:
  void For(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) const override {
    std::vector<std::thread> threads;
    for (int64_t b = 0; b < n; b += grain) threads.emplace_back(fn, b, std::min(n, b + grain));
    for (std::thread& t : threads) t.join();
  }
  int num_threads() const override { return 4; }
};

std::vector<Tensor> RunParallel(const std::string& op, const std::vector<const Tensor*>& inputs,
                                std::map<std::string, graph::Attribute> attrs, int opset) {
  graph::Node node;
  node.op_type = op;
  node.opset = opset;
  node.attributes = std::move(attrs);
  auto kernel = kernels::DefaultKernelRegistry().Create(node);
  EXPECT_TRUE(kernel.ok()) << kernel.status().ToString();
  std::vector<Tensor> outputs(1);
  testing::PlainAllocator allocator;
  ThreadRunner runner;
  kernels::KernelContext ctx(inputs, outputs, allocator, runner);
  Status st = (*kernel)->Compute(ctx);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return outputs;
}

TEST(Parallel, LargeOpsMatchSerial) {
  const std::vector<float> data = RandomFloats(64 * 3 * 1100, 11);
  Tensor x = MakeTensor<float>({64, 3, 1100}, data);
  struct Case {
    const char* op;
    std::map<std::string, graph::Attribute> attrs;
  };
  const std::vector<Case> cases = {
      {"ReduceSum", {{"axes", IntsAttr({1})}}},
      {"ReduceLogSumExp", {{"axes", IntsAttr({0})}}},
      {"ReduceMax", {{"axes", IntsAttr({2})}}},
      {"ReduceMean", {{"axes", IntsAttr({0, 2})}}},
      {"ArgMax", {{"axis", IntAttr(1)}}},
      {"Softmax", {{"axis", IntAttr(1)}}},
      {"LogSoftmax", {}},
  };
  for (const Case& c : cases) {
    auto serial = RunOp(c.op, {&x}, c.attrs, 13);
    ASSERT_TRUE(serial.ok()) << c.op << ": " << serial.status().ToString();
    std::vector<Tensor> parallel = RunParallel(c.op, {&x}, c.attrs, 13);
    ASSERT_EQ(parallel[0].dims(), (*serial)[0].dims()) << c.op;
    ASSERT_EQ(std::memcmp(parallel[0].raw_data(), (*serial)[0].raw_data(), parallel[0].byte_size()), 0) << c.op;
  }
  Tensor pads = MakeTensor<int64_t>({6}, {1, 0, 2, 1, 1, 3});
  auto pad_serial = RunOp("Pad", {&x, &pads}, {{"mode", StringAttr("reflect")}}, 13);
  ASSERT_TRUE(pad_serial.ok()) << pad_serial.status().ToString();
  std::vector<Tensor> pad_parallel = RunParallel("Pad", {&x, &pads}, {{"mode", StringAttr("reflect")}}, 13);
  ASSERT_EQ(std::memcmp(pad_parallel[0].raw_data(), (*pad_serial)[0].raw_data(), pad_parallel[0].byte_size()), 0);
  Tensor scales = MakeTensor<float>({3}, {1, 2, 0.5f});
  const std::map<std::string, graph::Attribute> cubic = {{"mode", StringAttr("cubic")}};
  auto resize_serial = RunOp("Resize", {&x, nullptr, &scales}, cubic, 13);
  ASSERT_TRUE(resize_serial.ok()) << resize_serial.status().ToString();
  std::vector<Tensor> resize_parallel = RunParallel("Resize", {&x, nullptr, &scales}, cubic, 13);
  ASSERT_EQ(std::memcmp(resize_parallel[0].raw_data(), (*resize_serial)[0].raw_data(), resize_parallel[0].byte_size()),
            0);
}

}  // namespace
}  // namespace kiln
