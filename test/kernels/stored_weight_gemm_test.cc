// StoredWeightGemm (C = A * B^T on B [n, k] as stored) against a double
// precision reference: row counts that exercise its 4-, 2- and 1-row tiles,
// column counts off the eight-column blocks, k below, at and off the
// eight-float vector, strided rows, accumulation, and column tasks split
// over a runner, with guard values around C that must stay untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "kernels/stored_weight_gemm.h"
#include "test/kernels/kernel_test_util.h"

namespace kiln::kernels {
namespace {

using kiln::testing::ChunkedRunner;
using kiln::testing::RandomFloats;

constexpr float kGuard = 12345.0f;

void Check(int64_t m, int64_t n, int64_t k, bool accumulate, const ParallelRunner& runner) {
  SCOPED_TRACE(::testing::Message() << "m=" << m << " n=" << n << " k=" << k << (accumulate ? " accumulate" : ""));
  const int64_t lda = k + 3, ldb = k + 1, ldc = n + 5;
  const std::vector<float> a = RandomFloats(m * lda, 1);
  const std::vector<float> b = RandomFloats(n * ldb, 2);
  const std::vector<float> c0 = RandomFloats(m * ldc, 3);
  std::vector<float> c(static_cast<size_t>(m * ldc + 8));
  std::copy(c0.begin(), c0.end(), c.begin());
  std::fill(c.begin() + m * ldc, c.end(), kGuard);
  for (int64_t i = 0; i < m; ++i) std::fill_n(c.begin() + i * ldc + n, ldc - n, kGuard);
  StoredWeightGemm(a.data(), lda, m, b.data(), ldb, n, k, c.data(), ldc, accumulate, runner);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = accumulate ? c0[static_cast<size_t>(i * ldc + j)] : 0.0;
      double magnitude = std::fabs(sum);
      for (int64_t p = 0; p < k; ++p) {
        const double term = double{a[static_cast<size_t>(i * lda + p)]} * b[static_cast<size_t>(j * ldb + p)];
        sum += term;
        magnitude += std::fabs(term);
      }
      ASSERT_NEAR(c[static_cast<size_t>(i * ldc + j)], sum, 1e-5 * (1 + magnitude)) << "C[" << i << ", " << j << "]";
    }
    for (int64_t j = n; j < ldc; ++j) ASSERT_EQ(c[static_cast<size_t>(i * ldc + j)], kGuard) << "row " << i << " pad";
  }
  for (size_t t = static_cast<size_t>(m * ldc); t < c.size(); ++t) ASSERT_EQ(c[t], kGuard) << "past C";
}

TEST(StoredWeightGemm, MatchesReferenceAcrossShapes) {
  const SerialRunner serial;
  for (int64_t m : {1, 2, 3, 4, 5, 7, 9}) {
    for (int64_t n : {1, 3, 8, 13, 40}) {
      for (int64_t k : {1, 7, 8, 9, 33}) {
        Check(m, n, k, false, serial);
        Check(m, n, k, true, serial);
      }
    }
  }
}

TEST(StoredWeightGemm, ColumnTasksGiveTheSameSums) {
  const SerialRunner serial;
  const ChunkedRunner chunked;
  // Large enough for several tasks: each element's sum has one order.
  const int64_t m = 4, n = 1000, k = 300;
  const std::vector<float> a = RandomFloats(m * k, 4);
  const std::vector<float> b = RandomFloats(n * k, 5);
  std::vector<float> one(static_cast<size_t>(m * n)), split(static_cast<size_t>(m * n));
  StoredWeightGemm(a.data(), k, m, b.data(), k, n, k, one.data(), n, false, serial);
  StoredWeightGemm(a.data(), k, m, b.data(), k, n, k, split.data(), n, false, chunked);
  EXPECT_EQ(one, split);
  Check(m, n, k, false, chunked);
  Check(m, n, k, true, chunked);
}

TEST(StoredWeightGemm, EmptyDimensions) {
  const SerialRunner serial;
  std::vector<float> c = {1.0f, 2.0f, 3.0f};
  const std::vector<float> a = {1.0f}, b = {1.0f};
  StoredWeightGemm(a.data(), 0, 1, b.data(), 0, 3, 0, c.data(), 3, /*accumulate=*/true, serial);
  EXPECT_EQ(c, (std::vector<float>{1.0f, 2.0f, 3.0f})) << "k = 0 adds nothing";
  StoredWeightGemm(a.data(), 0, 1, b.data(), 0, 3, 0, c.data(), 3, /*accumulate=*/false, serial);
  EXPECT_EQ(c, (std::vector<float>{0.0f, 0.0f, 0.0f})) << "k = 0 writes zeros";
  StoredWeightGemm(a.data(), 1, 0, b.data(), 1, 3, 1, c.data(), 3, false, serial);  // m = 0: nothing to touch
}

}  // namespace
}  // namespace kiln::kernels
