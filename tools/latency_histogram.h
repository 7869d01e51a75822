// Run latencies for `kiln run`: memory that stays the same however long a
// load test runs, and percentiles accurate to 0.1%.
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::cli {

// Latencies in nanoseconds, counted in log-linear buckets (HdrHistogram's
// idea): exact below 512 ns, then 512 buckets per power of two, so a
// bucket's middle is within 1/1024 of any latency in it. About 150 KB
// whatever the count; count, min, max and mean are exact. Not thread-safe:
// one per thread, merged at the end.
class LatencyHistogram {
 public:
  LatencyHistogram();

  // Negative latencies count as 0; above ~4.9 hours as ~4.9 hours.
  void Record(int64_t nanoseconds);
  void Merge(const LatencyHistogram& other);

  int64_t count() const { return count_; }
  // In milliseconds; 0 when empty.
  double min_ms() const;
  double max_ms() const;
  double mean_ms() const;
  // The nearest-rank percentile, `p` in (0, 1]: the middle of the bucket
  // holding the ceil(p * count)-th smallest latency, kept within [min, max]
  // (so one sample, or all equal, give that latency exactly). 0 when empty.
  double PercentileMs(double p) const;

 private:
  std::vector<int64_t> counts_;  // per bucket
  int64_t count_ = 0;
  int64_t min_ns_ = 0;
  int64_t max_ns_ = 0;
  double sum_ns_ = 0;
};

}  // namespace kiln::cli
