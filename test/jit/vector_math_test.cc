// Accuracy of the vectorised transcendental approximations (through
// compiled one-op regions) against double-precision std:: over dense
// sweeps of their useful ranges.
#include "jit/vector_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>

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
