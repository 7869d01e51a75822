// What `kiln run` measured, summarised for its text output and written as
// the JSON of --report.
#pragma once

#include <string>
#include <vector>

#include "kiln/session.h"
#include "kiln/status.h"
#include "tools/tier_up.h"
#include "tools/timed_runs.h"

namespace kiln::cli {

// Sum and sum of absolute values of a tensor's elements, as doubles: enough
// to tell two runs' outputs apart at a glance.
struct Checksum {
  double sum = 0;
  double abs_sum = 0;
};
Checksum ChecksumOf(const Tensor& t);

// The regions' stats added up.
struct RegionTotals {
  int compiled = 0;
  int reused_code = 0;      // specializations that reused another region's code
  int declined = 0;         // specializations dropped: the interpreter was faster
  int verify_failures = 0;  // versions dropped: their outputs differed from the interpreter's
  double compile_ms = 0;
  int64_t deopts = 0;
  int64_t compiled_calls = 0;
  int64_t interpreted_calls = 0;
  double compiled_ms = 0;     // wall time in compiled regions, all runs
  double interpreted_ms = 0;  // wall time in regions run interpreted, all runs
};
RegionTotals TotalsOf(const SessionStats& stats);

// The break-even accounts (RegionStats::break_even) added up: whether the
// session's compiles have paid for themselves so far.
struct BreakEvenTotals {
  int versions = 0;   // compiled versions, dropped ones included
  int measured = 0;   // with a finished trial (a measured saving per call)
  int paid_back = 0;  // measured, and served at least payback_calls calls
  int never = 0;      // measured, and no faster than the interpreter
  int skipped_for_payback = 0;
  double compile_ms = 0;
  double net_saved_ms = 0;  // unmeasured versions count their compile only
};
BreakEvenTotals BreakEvenTotalsOf(const SessionStats& stats);

// Where a run's time goes, averaged over every run of the session (warm-up
// and first run included): compiled regions, regions that ran interpreted,
// and the rest (nodes outside regions, e.g. MatMul and Conv), the latter
// estimated from the timed runs' mean.
struct LatencySplit {
  double compiled_region_ms = 0;
  double interpreted_region_ms = 0;
  double other_ms = 0;
};
LatencySplit SplitOf(const RegionTotals& totals, int64_t runs, double mean_ms);

// Everything the report holds. The pointers are borrowed and non-null
// except `tier_up`, which is null without --wait-for-jit.
struct RunMeasurements {
  std::string model_path;
  std::string tier;  // the policy the session ran with
  TierPolicy tier_requested = TierPolicy::kAuto;
  GraphOptimization graph_optimization = GraphOptimization::kAll;
  int64_t intra_op_threads = 0;
  int64_t warmup = 0;
  int concurrency = 1;
  double duration_s = 0;  // requested; 0 when the runs were counted instead
  double load_ms = 0;
  double session_create_ms = 0;
  double first_run_ms = 0;
  const TimedRunResult* timed = nullptr;
  const TierUpResult* tier_up = nullptr;
  const SessionStats* stats = nullptr;
  const std::vector<NamedTensor>* outputs = nullptr;
};

// Writes `m` as one JSON object to `path` (keys in a fixed order: the
// report reads top-down, and tests and scripts may rely on it).
Status WriteRunReport(const RunMeasurements& m, const std::string& path);

}  // namespace kiln::cli
