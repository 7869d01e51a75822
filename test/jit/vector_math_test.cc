// Accuracy of the vectorised transcendental approximations (through
// compiled one-op regions) against double-precision std:: over dense
// sweeps of their useful ranges.
#include "jit/vector_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>

#include "kernels/fast_math.h"
#include "test/jit/jit_test_util.h"

namespace kiln::jit {
namespace {

using testing::RegionBuilder;

struct Sweep {
  const char* op;
  float lo, hi;
  std::function<double(double)> ref;
  // Below this magnitude a result counts as absolute error (denormals).
  double tiny = 1e-37;
};

// Max relative error of `op` over n points in [lo, hi].
double MaxRelativeError(const Sweep& s, int64_t n) {
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, {n});
  rb.Output(rb.Node(s.op, {x}, "y"));
  auto compiled = rb.Compile();
  EXPECT_TRUE(compiled.ok()) << compiled.status().ToString();
  if (!compiled.ok()) return 1;
  std::vector<float> xs = testing::Linspace(s.lo, s.hi, n);
  auto outs = testing::Run(**compiled, {xs.data()}, {false}, n);
  EXPECT_TRUE(outs[0].GuardsIntact());
  double worst = 0;
  double worst_x = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double want = s.ref(xs[static_cast<size_t>(i)]);
    const double got = outs[0].at(i);
    const double err = std::fabs(got - want) / std::max(std::fabs(want), s.tiny);
    if (!(err <= worst)) {
      worst = err;
      worst_x = xs[static_cast<size_t>(i)];
    }
  }
  std::printf("[accuracy] %-8s [%g, %g]: max relative error %.3g at x=%.9g\n", s.op, s.lo, s.hi, worst, worst_x);
  return worst;
}

TEST(VectorMath, AccuracyAgainstStd) {
  const std::vector<Sweep> sweeps = {
      {"Exp", -87, 88.5, [](double x) { return std::exp(x); }},
      {"Exp", -1, 1, [](double x) { return std::exp(x); }},
      {"Log", 1e-30f, 1e30f, [](double x) { return std::log(x); }},
      {"Log", 0.5, 2, [](double x) { return std::log(x); }},
      {"Log", 1e-4f, 10, [](double x) { return std::log(x); }},
      {"Tanh", -10, 10, [](double x) { return std::tanh(x); }},
      {"Tanh", -0.01f, 0.01f, [](double x) { return std::tanh(x); }},
      {"Sigmoid", -80, 80, [](double x) { return 1 / (1 + std::exp(-x)); }},
      {"Erf", -5, 5, [](double x) { return std::erf(x); }},
      {"Erf", -1e-3f, 1e-3f, [](double x) { return std::erf(x); }},
      {"Softplus", -80, 80, [](double x) { return x > 40 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }},
      {"Elu", -10, 0, [](double x) { return std::expm1(x); }},
      {"Elu", -1e-3f, 0, [](double x) { return std::expm1(x); }},
  };
  for (const Sweep& s : sweeps) {
    SCOPED_TRACE(s.op);
    EXPECT_LT(MaxRelativeError(s, 200001), 2e-6);
  }
}

// The JIT's Erf and the interpreter's FastErf evaluate the same operations
// (one on signed x, the other on |x| with the sign put back), so they must
// agree bit for bit: a sweep over [-6, 6], both tails, zeros and NaN.
TEST(VectorMath, ErfEqualsTheKernelsBitForBit) {
  std::vector<float> xs = testing::Linspace(-6, 6, 400001);
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-45f, 3.92f, 3.95f, 4.0f, -4.0f, 1e30f, inf, -inf}) xs.push_back(v);
  xs.push_back(std::numeric_limits<float>::quiet_NaN());
  const int64_t n = static_cast<int64_t>(xs.size());
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, {n});
  rb.Output(rb.Node("Erf", {x}, "y"));
  auto compiled = rb.Compile();
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  auto outs = testing::Run(**compiled, {xs.data()}, {false}, n);
  int mismatches = 0;
  for (int64_t i = 0; i < n && mismatches < 10; ++i) {
    const float want = kernels::FastErf(xs[static_cast<size_t>(i)]);
    const float got = static_cast<float>(outs[0].at(i));
    const bool same = std::isnan(want) ? std::isnan(got) : std::memcmp(&want, &got, sizeof want) == 0;
    if (!same) {
      ++mismatches;
      ADD_FAILURE() << "erf(" << xs[static_cast<size_t>(i)] << "): JIT " << got << ", kernels " << want;
    }
  }
  EXPECT_EQ(kernels::FastErf(inf), 1.0f);
  EXPECT_EQ(kernels::FastErf(-inf), -1.0f);
}

// Exp at the ends of its range, where the scaling by 2^n leaves the normal
// floats: denormal results within one denormal step of std::exp, overflow
// to inf exactly where float overflows (up to rounding at FLT_MAX), 0 below
// the smallest denormal, and NaN in (any payload) gives NaN out.
TEST(VectorMath, ExpRangeEnds) {
  const int64_t n = 100001;
  std::vector<float> xs = testing::Linspace(-106, -86, n);
  const std::vector<float> high = testing::Linspace(88, 90, n);
  xs.insert(xs.end(), high.begin(), high.end());
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {89.0001f, 100.f, 1e10f, 3e38f, inf, -105.0001f, -200.f, -1e10f, -3e38f, -inf}) xs.push_back(v);
  const size_t num_finite = xs.size();
  for (uint32_t bits : {0x7fc00000u, 0xffc00000u, 0x7fc00001u, 0x7fc00002u, 0x7fc001ffu, 0x7fffffffu, 0xffc12345u,
                        0x7f800001u, 0x7fa00003u}) {
    float nan;
    std::memcpy(&nan, &bits, sizeof nan);
    xs.push_back(nan);
  }
  const int64_t total = static_cast<int64_t>(xs.size());
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, {total});
  rb.Output(rb.Node("Exp", {x}, "y"));
  auto compiled = rb.Compile();
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  auto outs = testing::Run(**compiled, {xs.data()}, {false}, total);
  EXPECT_TRUE(outs[0].GuardsIntact());
  const double max_float = std::numeric_limits<float>::max();
  const double denormal_step = std::numeric_limits<float>::denorm_min();
  int failures = 0;
  for (int64_t i = 0; i < total && failures < 10; ++i) {
    const float xi = xs[static_cast<size_t>(i)];
    const double got = outs[0].at(i);
    const double want = std::exp(static_cast<double>(xi));
    bool ok;
    if (static_cast<size_t>(i) >= num_finite) {
      ok = std::isnan(got);
    } else if (want > max_float * (1 + 2e-6)) {
      ok = std::isinf(got) && got > 0;
    } else if (want > max_float * (1 - 2e-6)) {
      ok = std::isinf(got) || std::fabs(got - want) <= 2e-6 * want;  // either side of the rounding edge
    } else {
      ok = std::fabs(got - want) <= 2e-6 * want + denormal_step;
    }
    if (!ok) {
      ++failures;
      ADD_FAILURE() << "exp(" << xi << "): got " << got << ", want " << want;
    }
  }
  EXPECT_EQ(outs[0].at(static_cast<int64_t>(num_finite) - 5), 0.0) << "exp(-105.0001)";
  EXPECT_EQ(outs[0].at(static_cast<int64_t>(num_finite) - 1), 0.0) << "exp(-inf)";
  EXPECT_GT(outs[0].at(n / 2), 0.0) << "exp(-96): denormal, not flushed";
}

// Sigmoid's and Softplus's exp(-|x|) takes EmitExp's path for non-positive
// arguments (one scaling by 2^(n + 64), then by 2^-64). In the lower tail
// their results are denormal: within one denormal step of the double
// result there, within 2e-6 relative above, and 0 where float has nothing
// smaller; NaN stays NaN.
TEST(VectorMath, SigmoidAndSoftplusLowerTails) {
  const int64_t n = 100001;
  std::vector<float> xs = testing::Linspace(-110, -80, n);
  xs.push_back(-std::numeric_limits<float>::infinity());
  xs.push_back(std::numeric_limits<float>::quiet_NaN());
  const int64_t total = static_cast<int64_t>(xs.size());
  const double denormal_step = std::numeric_limits<float>::denorm_min();
  for (const char* op : {"Sigmoid", "Softplus"}) {
    SCOPED_TRACE(op);
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {total});
    rb.Output(rb.Node(op, {x}, "y"));
    auto compiled = rb.Compile();
    ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
    auto outs = testing::Run(**compiled, {xs.data()}, {false}, total);
    int failures = 0;
    for (int64_t i = 0; i < n && failures < 10; ++i) {
      const double e = std::exp(static_cast<double>(xs[static_cast<size_t>(i)]));
      const double want = e / (1 + e);  // log1p(e) = e / (1 + e) to double precision here
      const double got = outs[0].at(i);
      if (!(std::fabs(got - want) <= 2e-6 * want + denormal_step)) {
        ++failures;
        ADD_FAILURE() << op << "(" << xs[static_cast<size_t>(i)] << ") = " << got << ", want " << want;
      }
    }
    EXPECT_GT(outs[0].at(n / 2), 0.0) << "at -95: denormal, not flushed";
    EXPECT_EQ(outs[0].at(0), 0.0) << "at -110: 0, below the smallest denormal";
    EXPECT_EQ(outs[0].at(total - 2), 0.0) << "at -inf";
    EXPECT_TRUE(std::isnan(outs[0].at(total - 1)));
  }
}

// Tanh's expm1(-2|x|) also takes the non-positive exp path (EmitTanh says
// so explicitly): the whole range through both tails, where tanh is +-1
// exactly, and the specials.
TEST(VectorMath, TanhTailsAndSpecials) {
  std::vector<float> xs = testing::Linspace(-120, 120, 240001);
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> specials = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e30f, -1e30f, inf, -inf};
  const size_t first_special = xs.size();
  xs.insert(xs.end(), specials.begin(), specials.end());
  xs.push_back(std::numeric_limits<float>::quiet_NaN());
  const int64_t total = static_cast<int64_t>(xs.size());
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, {total});
  rb.Output(rb.Node("Tanh", {x}, "y"));
  auto compiled = rb.Compile();
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  auto outs = testing::Run(**compiled, {xs.data()}, {false}, total);
  int failures = 0;
  for (size_t i = 0; i + 1 < xs.size() && failures < 10; ++i) {
    const double want = std::tanh(static_cast<double>(xs[i]));
    const double got = outs[0].at(static_cast<int64_t>(i));
    const bool ok =
        std::fabs(want) > 1 - 1e-9 ? got == (want > 0 ? 1.0 : -1.0) : std::fabs(got - want) <= 2e-6 * std::fabs(want);
    if (!ok || std::signbit(got) != std::signbit(want)) {
      ++failures;
      ADD_FAILURE() << "tanh(" << xs[i] << ") = " << got << ", want " << want;
    }
  }
  EXPECT_EQ(outs[0].at(static_cast<int64_t>(first_special)), 0.0);
  EXPECT_TRUE(std::signbit(outs[0].at(static_cast<int64_t>(first_special) + 1))) << "tanh(-0) = -0";
  EXPECT_TRUE(std::isnan(outs[0].at(total - 1)));
}

TEST(VectorMath, PowAgainstStd) {
  // x^y through exp/log: relative error grows with |y log x|, bounded here.
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, {400, 1});
  auto y = rb.Input("y", DType::kFloat32, {1, 50});
  rb.Output(rb.Node("Pow", {x, y}, "p"));
  auto compiled = rb.Compile();
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  std::vector<float> xs = testing::Linspace(0.01f, 20, 400);
  std::vector<float> ys = testing::Linspace(-8, 8, 50);
  auto outs = testing::Run(**compiled, {xs.data(), ys.data()}, {false}, 400 * 50, 2);
  double worst = 0;
  for (int64_t i = 0; i < 400; ++i) {
    for (int64_t j = 0; j < 50; ++j) {
      const double want = std::pow(static_cast<double>(xs[static_cast<size_t>(i)]), ys[static_cast<size_t>(j)]);
      if (want > 3e38 || want < 1e-37) continue;
      worst = std::max(worst, std::fabs(outs[0].at(i * 50 + j) - want) / want);
    }
  }
  std::printf("[accuracy] Pow: max relative error %.3g\n", worst);
  EXPECT_LT(worst, 1e-5);
}

}  // namespace
}  // namespace kiln::jit
