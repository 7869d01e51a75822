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
//
// Counters (both): interp_p50_ms, interp_p99_ms, tierup_p50_ms,
// tierup_p99_ms, tierup_max_ms, p99_over_interp_p99 (goal <= 1.1),
// p50_over_interp_p50 (the typical request's slowdown),
// runs_to_tier_up (runs per request thread until every region has had its
// compile, kept or not; goal <= 30), tierup_ms (wall), compile_ms (the compiles' wall time,
// pauses included), regions, compile_share (0 = off), load_average (1 min,
// at the start). The benchmark's time is the tier-up wall time.
#pragma once

#include <string>

namespace kiln::bench {

void RegisterTierUpUnderLoad(const std::string& zoo_dir);

}  // namespace kiln::bench
