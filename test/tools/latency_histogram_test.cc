// The latency histogram behind `kiln run`'s percentiles: exact where it
// promises to be, within 1/1024 elsewhere, and merging like one histogram.
#include "tools/latency_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace kiln::cli {
namespace {

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.PercentileMs(0.5), 0);
  EXPECT_EQ(h.max_ms(), 0);
  EXPECT_EQ(h.mean_ms(), 0);
}

TEST(LatencyHistogramTest, OneSampleIsExactAtEveryPercentile) {
  LatencyHistogram h;
  h.Record(1234567);  // 1.234567 ms: inside a bucket wider than 1 ns
  for (double p : {0.01, 0.5, 0.9, 0.99, 1.0}) EXPECT_DOUBLE_EQ(h.PercentileMs(p), 1.234567) << p;
  EXPECT_DOUBLE_EQ(h.min_ms(), 1.234567);
  EXPECT_DOUBLE_EQ(h.max_ms(), 1.234567);
  EXPECT_DOUBLE_EQ(h.mean_ms(), 1.234567);
}

TEST(LatencyHistogramTest, SmallLatenciesAreExactNearestRank) {
  LatencyHistogram h;
  for (int64_t ns = 1; ns <= 100; ++ns) h.Record(ns);  // 1..100 ns
  EXPECT_EQ(h.count(), 100);
  EXPECT_DOUBLE_EQ(h.PercentileMs(0.5), 50e-6);
  EXPECT_DOUBLE_EQ(h.PercentileMs(0.9), 90e-6);
  EXPECT_DOUBLE_EQ(h.PercentileMs(0.99), 99e-6);
  EXPECT_DOUBLE_EQ(h.PercentileMs(1.0), 100e-6);
  EXPECT_DOUBLE_EQ(h.mean_ms(), 50.5e-6);
}

// Against the exact nearest-rank percentile of the same samples, spread
// over six decades.
TEST(LatencyHistogramTest, PercentilesAreWithinATenthOfAPercent) {
  std::vector<int64_t> samples;
  uint64_t state = 42;
  for (int i = 0; i < 20000; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const double exponent = 3.0 + 6.0 * static_cast<double>(state >> 11) * 0x1.0p-53;  // 1 us .. 1 s
    samples.push_back(static_cast<int64_t>(std::pow(10.0, exponent)));
  }
  LatencyHistogram h;
  for (int64_t s : samples) h.Record(s);
  std::sort(samples.begin(), samples.end());
  for (double p : {0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(samples.size())));
    const double exact_ms = static_cast<double>(samples[rank - 1]) * 1e-6;
    EXPECT_NEAR(h.PercentileMs(p), exact_ms, exact_ms / 1024) << p;
  }
  EXPECT_DOUBLE_EQ(h.min_ms(), static_cast<double>(samples.front()) * 1e-6);
  EXPECT_DOUBLE_EQ(h.max_ms(), static_cast<double>(samples.back()) * 1e-6);
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a, b, all;
  for (int64_t ns = 1000; ns < 900000; ns += 997) {
    (ns % 3 == 0 ? a : b).Record(ns);
    all.Record(ns);
  }
  LatencyHistogram merged;
  merged.Merge(a);
  merged.Merge(b);
  merged.Merge(LatencyHistogram());  // an empty one changes nothing
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_DOUBLE_EQ(merged.min_ms(), all.min_ms());
  EXPECT_DOUBLE_EQ(merged.max_ms(), all.max_ms());
  EXPECT_DOUBLE_EQ(merged.mean_ms(), all.mean_ms());
  for (double p : {0.5, 0.9, 0.99}) EXPECT_DOUBLE_EQ(merged.PercentileMs(p), all.PercentileMs(p)) << p;
}

TEST(LatencyHistogramTest, OutOfRangeLatenciesAreClamped) {
  LatencyHistogram h;
  h.Record(-5);
  h.Record(int64_t{1} << 62);
  EXPECT_EQ(h.count(), 2);
  EXPECT_EQ(h.min_ms(), 0);
  EXPECT_GT(h.max_ms(), 1.7e7);  // ~4.9 hours, in ms
  EXPECT_LE(h.PercentileMs(1.0), h.max_ms());
}

}  // namespace
}  // namespace kiln::cli
