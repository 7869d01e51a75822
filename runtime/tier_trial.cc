#include "runtime/tier_trial.h"

#include <algorithm>
#include <vector>

namespace kiln::runtime {

bool TierTrial::TakeInterpretedTurn() const {
  if (!active_ || decided_.load(std::memory_order_relaxed)) return false;
  const int turn = turns_.fetch_add(1, std::memory_order_relaxed);
  // Odd turns, so the first call after the swap runs the new code.
  return turn % 2 == 1 && turn < kMaxTurns;
}

TierTrial::Verdict TierTrial::AddSample(bool compiled, int64_t nanoseconds) const {
  if (!active_ || decided_.load(std::memory_order_relaxed)) return Verdict::kPending;
  std::atomic<int64_t>& best = compiled ? compiled_best_ns_ : interpreted_best_ns_;
  int64_t seen = best.load(std::memory_order_relaxed);
  while (nanoseconds < seen && !best.compare_exchange_weak(seen, nanoseconds, std::memory_order_relaxed)) {
  }
  const int slot = (compiled ? compiled_slots_ : interpreted_slots_).fetch_add(1, std::memory_order_relaxed);
  if (slot < kSamples) (compiled ? compiled_ns_ : interpreted_ns_)[slot].store(nanoseconds, std::memory_order_relaxed);
  (compiled ? compiled_samples_ : interpreted_samples_).fetch_add(1, std::memory_order_acq_rel);
  if (compiled_samples_.load(std::memory_order_acquire) < kSamples ||
      interpreted_samples_.load(std::memory_order_acquire) < kSamples) {
    return Verdict::kPending;
  }
  if (decided_.exchange(true, std::memory_order_acq_rel)) return Verdict::kPending;  // another call decided
  const double compiled_ns = static_cast<double>(compiled_best_ns_.load());
  const double interpreted_ns = static_cast<double>(interpreted_best_ns_.load());
  return compiled_ns <= interpreted_ns * kKeepWithin ? Verdict::kKeep : Verdict::kDrop;
}

double TierTrial::MedianMs(const Samples& samples) {
  std::vector<int64_t> written;
  for (const std::atomic<int64_t>& s : samples) {
    const int64_t ns = s.load(std::memory_order_relaxed);
    if (ns >= 0) written.push_back(ns);
  }
  if (written.empty()) return 0;
  std::sort(written.begin(), written.end());
  const size_t n = written.size();
  const double median_ns =
      n % 2 == 1 ? static_cast<double>(written[n / 2]) : 0.5 * static_cast<double>(written[n / 2 - 1] + written[n / 2]);
  return median_ns * 1e-6;
}

}  // namespace kiln::runtime
