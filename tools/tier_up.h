// `kiln run --wait-for-jit`: warm a session up until the JIT has had its
// say on every hot region, so that the timed runs measure the steady state
// rather than the interpreter waiting for a background compile.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "kiln/session.h"
#include "kiln/status.h"
#include "tools/latency_histogram.h"

namespace kiln::cli {

// Where the JIT stands on a session's regions, from its stats. A region is
// hot once it has run. A hot region is settled when its code is compiled and
// has passed its trial against the interpreter, when that trial dropped it,
// or when its compile or its shadow verification failed; until then it is
// waiting.
struct TierUpProgress {
  int regions = 0;
  int hot = 0;
  int compiled = 0;  // settled with compiled code in use
  int declined = 0;  // settled back on the interpreter: its code was slower
  int failed = 0;    // settled on the interpreter: the compile failed, or its code computed something else
  int skipped = 0;   // settled on the interpreter: projected not to pay back (--payback-horizon)
  int waiting = 0;
  bool any_code = false;  // some region has compiled code (settled or not)
};
TierUpProgress ProgressOf(const SessionStats& stats);

struct TierUpResult {
  // Every hot region settled before the timeout.
  bool settled = false;
  int64_t runs = 0;
  double elapsed_ms = 0;
  // The runs made while no region had compiled code yet: the latency
  // before tier-up.
  LatencyHistogram before;
  TierUpProgress progress;  // at the end
};

// Runs `session` on `inputs` until ProgressOf(stats) has no region waiting
// (at least once), or until `timeout` has passed; then returns. A run's
// failure is returned as is.
StatusOr<TierUpResult> WarmUpUntilTieredUp(const Session& session, const std::vector<NamedTensor>& inputs,
                                           std::chrono::duration<double> timeout);

}  // namespace kiln::cli
