#include "test/tolerance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

namespace kiln::testing {
namespace {

bool SpecialValuesMatch(double got, double want, bool* decided) {
  *decided = true;
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  if (std::isinf(want) || std::isinf(got)) return got == want;
  *decided = false;
  return false;
}

void ExpectAll(const std::vector<float>& got, const std::vector<float>& want,
               const std::function<bool(double, double)>& close, const char* rule) {
  ASSERT_EQ(got.size(), want.size());
  int failures = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (close(got[i], want[i])) continue;
    if (++failures <= 10)
      ADD_FAILURE() << "at " << i << ": got " << got[i] << ", want " << want[i] << " (" << rule << ")";
  }
  EXPECT_EQ(failures, 0) << "elements outside the tolerance, of " << got.size();
}

}  // namespace

bool IsClose(double got, double want, double rtol, double atol) {
  bool decided;
  const bool match = SpecialValuesMatch(got, want, &decided);
  if (decided) return match;
  return std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

bool IsCloseScaled(double got, double want, double tol) {
  bool decided;
  const bool match = SpecialValuesMatch(got, want, &decided);
  if (decided) return match;
  return std::fabs(got - want) <= tol * std::max(1.0, std::fabs(want));
}

bool AllCloseScaled(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  if (got.size() != want.size()) return false;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!IsCloseScaled(got[i], want[i], tol)) return false;
  }
  return true;
}

void ExpectNear(const std::vector<float>& got, const std::vector<float>& want, double rtol, double atol) {
  ExpectAll(
      got, want, [&](double g, double w) { return IsClose(g, w, rtol, atol); }, "atol + rtol * |want|");
}

void ExpectNear(const Tensor& got, const Tensor& want, double rtol, double atol) {
  ASSERT_EQ(got.dtype(), DType::kFloat32);
  ASSERT_EQ(want.dtype(), DType::kFloat32);
  ASSERT_EQ(got.dims(), want.dims());
  const float* g = got.data<float>();
  const float* w = want.data<float>();
  ExpectNear(std::vector<float>(g, g + got.num_elements()), std::vector<float>(w, w + want.num_elements()), rtol, atol);
}

void ExpectNearScaled(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  ExpectAll(
      got, want, [&](double g, double w) { return IsCloseScaled(g, w, tol); }, "tol * max(1, |want|)");
}

}  // namespace kiln::testing
