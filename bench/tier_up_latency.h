// Does tier-up stall requests? For each zoo case (zoo.h) at 1 thread:
//
//   BM_TierUpLatency/model:CASE
//
// first measures the interpreter's steady-state latency (p50 over a few
// hundred runs of a kInterpreter session), then creates a default-policy
// (kAuto) session and sends requests back to back from one thread while its
// regions become hot and compile on the background compile thread, until
// every region has compiled (or failed to). Counters:
//   interp_p50_ms      the interpreter's median latency
//   tierup_p50_ms, tierup_p99_ms, tierup_max_ms
//                      latency of the requests sent while a compile was
//                      queued or running (from the run that made the last
//                      region hot to the end of the last compile)
//   p99_over_interp_p50  the goal is <= 1.2
//   tierup_runs, tierup_ms, compile_ms
// The benchmark's time is the tier-up wall time (manual time).
#pragma once

#include <string>

namespace kiln::bench {

void RegisterTierUpLatency(const std::string& zoo_dir);

}  // namespace kiln::bench
