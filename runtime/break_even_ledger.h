// What one compiled version of a region cost and what it has earned since:
// the break-even account behind RegionStats::break_even. It lives apart
// from the Specialization so that the account outlives code the trial or
// shadow verification dropped (its compile time was still spent), without
// keeping that code's JIT memory alive.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

#include "kiln/session.h"

namespace kiln::runtime {

// Thread-safe: request threads count calls and record the trial while
// Session::stats() reads it.
class BreakEvenLedger {
 public:
  BreakEvenLedger(std::string signature, double compile_ms)
      : signature_(std::move(signature)), compile_ms_(compile_ms) {}

  // One call served by this version's code.
  void CountCompiledCall() const { compiled_calls_.fetch_add(1, std::memory_order_relaxed); }
  // The trial's typical call time per tier (TierTrial's medians). Called
  // once, by the call that decided the trial.
  void RecordTrial(double interpreted_ms_per_call, double compiled_ms_per_call) const;

  // The account as of now: saving per call, payback, net time saved.
  BreakEven Snapshot() const;

 private:
  const std::string signature_;
  const double compile_ms_;
  mutable std::atomic<int64_t> compiled_calls_{0};
  mutable std::atomic<double> interpreted_ms_per_call_{0};
  mutable std::atomic<double> compiled_ms_per_call_{0};
  // Set (release) after the two times above are stored.
  mutable std::atomic<bool> measured_{false};
};

// ceil(compile_ms / saving_ms_per_call), or -1 when the saving is not
// positive: the calls a compile needs to pay for itself.
int64_t PaybackCalls(double compile_ms, double saving_ms_per_call);

}  // namespace kiln::runtime
