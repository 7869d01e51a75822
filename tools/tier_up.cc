#include "tools/tier_up.h"

#include "runtime/tier_trial.h"

namespace kiln::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Interpreted runs to measure before letting the compile queue drain
// without competition. The compiles were queued by the first runs and run
// in the background meanwhile, so on a fast model this costs little, and
// the "before" latency is a median of this many runs, not of one or two.
constexpr int64_t kBeforeRuns = 20;

// Whether a region's compiled code has finished its trial against the
// interpreter. The trial alternates tiers call by call, compiled first,
// until each has TierTrial::kSamples timings, and decides on the call that
// completes them; so once the region has made one compiled call more than
// that, the verdict is in (kept: the code stays; dropped: `declined` counts
// it). Code that is not on trial (generic code, or SessionOptions::
// jit_keep_faster_tier off) gets there after a few calls too.
bool TrialOver(const RegionStats& region) { return region.compiled_calls > runtime::TierTrial::kSamples; }

}  // namespace

TierUpProgress ProgressOf(const SessionStats& stats) {
  TierUpProgress p;
  p.regions = static_cast<int>(stats.regions.size());
  for (const RegionStats& r : stats.regions) {
    p.any_code |= r.specializations > 0;
    if (r.interpreted_calls + r.compiled_calls == 0) continue;
    ++p.hot;
    if (r.specializations > 0 && TrialOver(r)) {
      ++p.compiled;
    } else if (r.specializations == 0 && r.declined > 0) {
      ++p.declined;
    } else if (r.specializations == 0 && (r.failed_compiles > 0 || r.verify_failures > 0)) {
      ++p.failed;
    } else if (r.specializations == 0 && r.skipped_for_payback > 0 && r.break_even.empty()) {
      // Nothing was compiled or queued: the break-even gate said no.
      ++p.skipped;
    } else {
      ++p.waiting;
    }
  }
  return p;
}

StatusOr<TierUpResult> WarmUpUntilTieredUp(const Session& session, const std::vector<NamedTensor>& inputs,
                                           std::chrono::duration<double> timeout) {
  TierUpResult result;
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + std::chrono::duration_cast<Clock::duration>(timeout);
  // Every pass runs the model at most once and the deadline is checked
  // before each run, so the loop ends within a run (and a queued compile)
  // of the timeout, whatever the JIT does.
  while (true) {
    result.progress = ProgressOf(session.stats());
    if (result.runs > 0 && result.progress.waiting == 0) {
      result.settled = true;
      break;
    }
    if (Clock::now() >= deadline) break;
    if (!result.progress.any_code && result.before.count() >= kBeforeRuns) {
      // Enough "before" samples: let the queued compiles finish rather than
      // compete with them for the cores. Returns at once when none is
      // queued (no region hot yet, or its compile already failed).
      session.WaitForCompiles();
      result.progress = ProgressOf(session.stats());
    }
    const bool interpreted = !result.progress.any_code;
    const Clock::time_point run_start = Clock::now();
    StatusOr<std::vector<NamedTensor>> outputs = session.Run(inputs);
    const Clock::time_point run_end = Clock::now();
    if (!outputs.ok()) return outputs.status();
    ++result.runs;
    if (interpreted) {
      result.before.Record(std::chrono::duration_cast<std::chrono::nanoseconds>(run_end - run_start).count());
    }
  }
  result.elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  return result;
}

}  // namespace kiln::cli
