// Tier-up while every core serves (issue 16, latency-aware compiles): two
// request threads at one intra-op thread each keep both cores of a 2-core
// host busy, with and without the compile scheduler
// (SessionOptions::jit_compile_cpu_share; "off" is 0, the unpaced nice-10
// compile thread). For silu_ln_gelu and transformer_encoder:
//
//   BM_TierUpLatency/model:CASE/requests:2/compile_share:S
//     the interpreter's latency under the same two request threads, then a
//     session warmed up like it (the last warm-up run makes the regions
//     hot), run by both threads until every region has compiled. The
//     latency of those requests against the interpreter's.
//   BM_ZooTierUp/model:CASE/requests:2/compile_share:S
//     a new default-policy session run by both threads from its first
//     request until every region has compiled: how many runs that takes.
//   BM_ZooTierUpWarmCache/model:CASE/requests:2/compile_share:S
//     the same on a code cache folder an untimed session filled first
//     (SessionOptions::jit_cache_dir): a replica joining a fleet that shares
//     one folder, whose regions link, queued from the hot set at create.
//
// All run until every region is at peak: settled (compiled, or failed,
// dropped or skipped) and, where code serves, through its verification call
// and its trial, which still cost requests extra work.
//
// Counters (all), over the requests until every region settled (the
// window these counters always covered, kept for comparison):
// interp_p50_ms, interp_p99_ms, tierup_p50_ms, tierup_p99_ms,
// tierup_max_ms, p99_over_interp_p99 (goal <= 1.1), p50_over_interp_p50
// (the typical request's slowdown), runs_to_tier_up (runs per request
// thread until every region has had its compile, kept or not), tierup_ms
// (wall; also the benchmark's time).
// Over the requests until peak: runs_to_peak (goal <= 30), peak_ms,
// peak_p99_ms, peak_p99_over_interp_p99; and, since a few dozen requests
// make a p99 their maximum, slow_requests (requests slower than 1.1x the
// interpreter's p99) beside slow_requests_interp (how many the
// interpreter's own runs would have had among as many requests), and
// offcpu_max_ms beside interp_offcpu_max_ms (the longest any request's
// thread was off its core, wall - thread CPU time: time another thread
// took from it, as against extra work it did itself).
// Also: compile_ms (the compiles' wall time, pauses included), regions,
// compile_share (0 = off), load_average (1 min, at the start).
//
// KILN_TIERUP_DUMP=DIR writes each case's Chrome trace and a CSV of its
// requests (start, wall and CPU time) to DIR. KILN_TIERUP_NO_TICKS=1 paces
// compiles at LLVM's yield points only (the process takes the tick signal),
// to measure what the scheduler's ticks change.
#pragma once

#include <string>

namespace kiln::bench {

void RegisterTierUpUnderLoad(const std::string& zoo_dir);

}  // namespace kiln::bench
