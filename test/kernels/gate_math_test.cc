// The recurrent cells' gate activations (kernels/gate_math.h) against double
// precision: every float in a strided sweep of the whole range, the error
// in units in the last place of the correctly rounded result, plus NaN,
// infinities and the saturated ends.
#include "kernels/gate_math.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include <gtest/gtest.h>

namespace kiln::kernels {
namespace {

// The spacing of floats at `want`'s magnitude.
double Ulp(float want) {
  const float a = std::fabs(want);
  return static_cast<double>(std::nextafter(a, std::numeric_limits<float>::infinity())) - a;
}

// Calls check(x) for finite floats spread over the whole range (a stride
// through the bit patterns, both signs), plus values near the clamps and
// the series threshold.
template <typename Check>
void ForSweep(Check check) {
  for (uint64_t bits = 0; bits <= 0xFFFFFFFFull; bits += 4099) {
    float x;
    const uint32_t b = static_cast<uint32_t>(bits);
    std::memcpy(&x, &b, sizeof(x));
    if (std::isfinite(x)) check(x);
  }
  for (float x : {-88.0f, -87.5f, -87.0f, -86.9f, 87.9f, 88.0f, 88.1f, -0.25f, 0.25f, 0.2499f, -0.2501f, 0.0f, -0.0f,
                  1e-30f, -1e-30f}) {
    check(x);
  }
}

TEST(GateMathTest, ExpIsWithinTwoUlpOnItsRange) {
  double worst = 0;
  float worst_x = 0;
  ForSweep([&](float x) {
    if (x < -87.0f || x > 88.0f) return;
    const double want = std::exp(static_cast<double>(x));
    const double err = std::fabs(GateExp(x) - want) / Ulp(static_cast<float>(want));
    if (err > worst) worst = err, worst_x = x;
  });
  EXPECT_LE(worst, 2.0) << "at x = " << worst_x;
}

TEST(GateMathTest, SigmoidIsWithinFourUlpAndTinyAbsoluteErrorBelowItsRange) {
  double worst_ulp = 0, worst_abs = 0;
  float worst_x = 0;
  ForSweep([&](float x) {
    const double want = 1.0 / (1.0 + std::exp(-static_cast<double>(x)));
    const double got = GateSigmoid(x);
    if (x < -87.0f) {
      worst_abs = std::max(worst_abs, std::fabs(got - want));
      return;
    }
    const double err = std::fabs(got - want) / Ulp(static_cast<float>(want));
    if (err > worst_ulp) worst_ulp = err, worst_x = x;
  });
  EXPECT_LE(worst_ulp, 4.0) << "at x = " << worst_x;
  EXPECT_LT(worst_abs, 1e-37);
}

TEST(GateMathTest, TanhIsWithinFourUlp) {
  double worst = 0;
  float worst_x = 0;
  ForSweep([&](float x) {
    const double want = std::tanh(static_cast<double>(x));
    const float want_f = static_cast<float>(want);
    const double err = want_f == 0.0f ? (GateTanh(x) == 0.0f ? 0.0 : 1e9) : std::fabs(GateTanh(x) - want) / Ulp(want_f);
    if (err > worst) worst = err, worst_x = x;
  });
  EXPECT_LE(worst, 4.0) << "at x = " << worst_x;
}

TEST(GateMathTest, SaturatesAtTheEndsAndPropagatesNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(GateSigmoid(inf), 1.0f);
  EXPECT_EQ(GateSigmoid(200.0f), 1.0f);
  EXPECT_GE(GateSigmoid(-inf), 0.0f);
  EXPECT_LT(GateSigmoid(-inf), 1e-37f);
  EXPECT_EQ(GateTanh(inf), 1.0f);
  EXPECT_EQ(GateTanh(-inf), -1.0f);
  EXPECT_EQ(GateTanh(-200.0f), -1.0f);
  EXPECT_EQ(GateTanh(0.0f), 0.0f);
  EXPECT_TRUE(std::isnan(GateExp(nan)));
  EXPECT_TRUE(std::isnan(GateSigmoid(nan)));
  EXPECT_TRUE(std::isnan(GateTanh(nan)));
}

}  // namespace
}  // namespace kiln::kernels
