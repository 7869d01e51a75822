// A race between compiled code and the interpreter on one signature
// (JitTierOptions::keep_faster_tier): fused code is not always faster than
// the interpreter, whose kernels are fused too (LayerNorm, Gelu, GEMM
// epilogues), so each new specialization earns its place by measurement.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <limits>

namespace kiln::runtime {

// Calls alternate between the two tiers until each has kSamples timings,
// then the best of each decides once. Best, not median: noise on a shared
// machine only ever adds time. Thread-safe.
class TierTrial {
 public:
  static constexpr int kSamples = 4;
  // A trial whose samples never complete (calls that failed) stops
  // alternating after this many turns.
  static constexpr int kMaxTurns = 4 * kSamples;
  // Compiled code within this factor of the interpreter's best is kept:
  // closer than that is noise, and compiled code frees the interpreter's
  // intermediate buffers.
  static constexpr double kKeepWithin = 1.03;
  enum class Verdict { kPending, kKeep, kDrop };

  // Puts the trial in force; before the code is published.
  void Start() { active_ = true; }
  // Whether this call should run interpreted, as the trial's comparison
  // sample: every other call while the trial runs, the first one compiled.
  bool TakeInterpretedTurn() const;
  // Adds a call's time. Returns kKeep or kDrop exactly once, to the call
  // that completes both sample sets; kPending to every other.
  Verdict AddSample(bool compiled, int64_t nanoseconds) const;
  double compiled_best_ms() const { return static_cast<double>(compiled_best_ns_.load()) * 1e-6; }
  double interpreted_best_ms() const { return static_cast<double>(interpreted_best_ns_.load()) * 1e-6; }
  // The median of each tier's first kSamples timings: what a typical call
  // takes, for break-even accounting (the best decides the verdict; the
  // median is what calls save on average). 0 before any sample.
  double compiled_median_ms() const { return MedianMs(compiled_ns_); }
  double interpreted_median_ms() const { return MedianMs(interpreted_ns_); }

 private:
  using Samples = std::array<std::atomic<int64_t>, kSamples>;
  static double MedianMs(const Samples& samples);

  bool active_ = false;
  mutable std::atomic<int> turns_{0};
  mutable std::atomic<int> compiled_samples_{0};
  mutable std::atomic<int> interpreted_samples_{0};
  mutable std::atomic<int64_t> compiled_best_ns_{std::numeric_limits<int64_t>::max()};
  mutable std::atomic<int64_t> interpreted_best_ns_{std::numeric_limits<int64_t>::max()};
  mutable std::atomic<bool> decided_{false};
  // Each tier's first kSamples timings (-1: not yet written); slots are
  // claimed by fetch_add so concurrent calls never share one.
  mutable std::atomic<int> compiled_slots_{0};
  mutable std::atomic<int> interpreted_slots_{0};
  static_assert(kSamples == 4, "the initialisers below list kSamples slots");
  mutable Samples compiled_ns_{{{-1}, {-1}, {-1}, {-1}}};
  mutable Samples interpreted_ns_{{{-1}, {-1}, {-1}, {-1}}};
};

}  // namespace kiln::runtime
