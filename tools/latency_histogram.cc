#include "tools/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace kiln::cli {
namespace {

// 2^kSubBits buckets per power of two: latencies below 2^kSubBits ns get a
// bucket each, larger ones keep their top kSubBits + 1 bits.
constexpr int kSubBits = 9;
constexpr int64_t kSubBuckets = int64_t{1} << kSubBits;
// Latencies up to 2^kMaxBits ns (~4.9 hours) have buckets of their own.
constexpr int kMaxBits = 44;
constexpr int64_t kLargest = (int64_t{1} << kMaxBits) - 1;
constexpr size_t kBuckets = static_cast<size_t>(kSubBuckets * (kMaxBits - kSubBits + 1));

size_t BucketOf(int64_t ns) {
  if (ns < kSubBuckets) return static_cast<size_t>(ns);
  const int top_bit = std::bit_width(static_cast<uint64_t>(ns)) - 1;  // >= kSubBits
  const int shift = top_bit - kSubBits;
  const int64_t sub = (ns >> shift) - kSubBuckets;  // in [0, kSubBuckets)
  return static_cast<size_t>(kSubBuckets * (shift + 1) + sub);
}

// The middle of bucket `b`, in nanoseconds.
double MiddleOf(size_t b) {
  const int64_t bucket = static_cast<int64_t>(b);
  if (bucket < kSubBuckets) return static_cast<double>(bucket);
  const int shift = static_cast<int>(bucket / kSubBuckets) - 1;
  const int64_t low = (kSubBuckets + bucket % kSubBuckets) << shift;
  return static_cast<double>(low) + 0.5 * static_cast<double>((int64_t{1} << shift) - 1);
}

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(kBuckets, 0) {}

void LatencyHistogram::Record(int64_t nanoseconds) {
  const int64_t ns = std::clamp<int64_t>(nanoseconds, 0, kLargest);
  ++counts_[BucketOf(ns)];
  min_ns_ = count_ == 0 ? ns : std::min(min_ns_, ns);
  max_ns_ = count_ == 0 ? ns : std::max(max_ns_, ns);
  ++count_;
  sum_ns_ += static_cast<double>(ns);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (size_t b = 0; b < kBuckets; ++b) counts_[b] += other.counts_[b];
  min_ns_ = count_ == 0 ? other.min_ns_ : std::min(min_ns_, other.min_ns_);
  max_ns_ = count_ == 0 ? other.max_ns_ : std::max(max_ns_, other.max_ns_);
  count_ += other.count_;
  sum_ns_ += other.sum_ns_;
}

double LatencyHistogram::min_ms() const { return static_cast<double>(min_ns_) * 1e-6; }
double LatencyHistogram::max_ms() const { return static_cast<double>(max_ns_) * 1e-6; }
double LatencyHistogram::mean_ms() const { return count_ == 0 ? 0 : sum_ns_ / static_cast<double>(count_) * 1e-6; }

double LatencyHistogram::PercentileMs(double p) const {
  if (count_ == 0) return 0;
  const int64_t rank = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(p * static_cast<double>(count_))), 1, count_);
  int64_t seen = 0;
  for (size_t b = 0; b < kBuckets; ++b) {
    seen += counts_[b];
    if (seen >= rank) {
      const double ns = std::clamp(MiddleOf(b), static_cast<double>(min_ns_), static_cast<double>(max_ns_));
      return ns * 1e-6;
    }
  }
  return max_ms();  // not reached: the buckets hold count_ latencies
}

}  // namespace kiln::cli
