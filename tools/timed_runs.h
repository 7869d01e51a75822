// The timed part of `kiln run`: threads calling Run on one session, for a
// number of runs or a length of time, as a load test would.
#pragma once

#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include "kiln/session.h"
#include "kiln/status.h"
#include "tools/latency_histogram.h"

namespace kiln::cli {

struct TimedRunPlan {
  // Threads calling Run on the one session at once.
  int threads = 1;
  // Runs over all threads together; used when `duration` is zero.
  int64_t runs = 0;
  // When positive, every thread starts runs until this much time has
  // passed since the first started (a run under way then still finishes),
  // and at least one each.
  std::chrono::duration<double> duration{0};
  // (output index, input index): after each run, that output becomes that
  // input of the thread's next run (stateful streaming; one thread).
  std::vector<std::pair<size_t, size_t>> feeds;
};

struct TimedRunResult {
  LatencyHistogram latency;  // every run, from all threads
  // From the threads' start to the last run's end.
  double wall_seconds = 0;
  // One of the last runs' outputs (thread 0's when it ran); empty when no
  // run was made.
  std::vector<NamedTensor> last_outputs;

  double RunsPerSecond() const { return wall_seconds > 0 ? static_cast<double>(latency.count()) / wall_seconds : 0; }
};

// Runs `session` on `inputs` as `plan` says. Every thread reads the same
// inputs (Run never writes them). When a run fails, the other threads stop
// before their next run and the first failure (by thread number) is
// returned.
StatusOr<TimedRunResult> RunTimed(const Session& session, const std::vector<NamedTensor>& inputs,
                                  const TimedRunPlan& plan);

}  // namespace kiln::cli
