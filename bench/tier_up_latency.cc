#include "bench/tier_up_latency.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "bench/latency_samples.h"
#include "bench/zoo.h"
#include "kiln/session.h"

namespace kiln::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Whether every region of `stats` has finished compiling its first
// signature, successfully or not.
bool AllRegionsSettled(const SessionStats& stats) {
  for (const RegionStats& r : stats.regions) {
    if (r.specializations == 0 && r.failed_compiles == 0) return false;
  }
  return true;
}

Status MeasureTierUp(const ZooCase& zoo_case, benchmark::State& state) {
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model, Model::Load(zoo_case.model_path));
  KILN_ASSIGN_OR_RETURN(std::vector<NamedTensor> inputs, LoadZooInputs(zoo_case));

  // The interpreter's steady state: warm up (primitive creation, page
  // faults on first touch), then time.
  SessionOptions interp_options;
  interp_options.intra_op_threads = 1;
  interp_options.tier = TierPolicy::kInterpreter;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> interp, Session::Create(model, interp_options));
  constexpr int kWarmupRuns = 10;
  constexpr int kInterpRuns = 200;
  constexpr auto kMaxInterpTime = std::chrono::seconds(3);
  std::vector<double> interp_ms;
  const Clock::time_point interp_start = Clock::now();
  for (int i = 0; i < kWarmupRuns + kInterpRuns && Clock::now() - interp_start < kMaxInterpTime; ++i) {
    const Clock::time_point start = Clock::now();
    KILN_RETURN_IF_ERROR(interp->Run(inputs).status());
    if (i >= kWarmupRuns) interp_ms.push_back(Ms(Clock::now() - start));
  }
  interp.reset();

  // Tier-up: a fresh default-policy session, warmed up like the
  // interpreter's before anything compiles. A fresh session's first runs
  // are cold start, not tier-up: kernel set-up, and page faults on memory
  // the allocator has not handed out before (a 4 MiB graph output faulted
  // in cost silu_ln_gelu ~4 ms per run for its first ~9 runs, slower than
  // any compile's interference). So the hot threshold is set to the warm-up
  // count: the last warm-up run queues the compiles, and every request from
  // then until they finish counts.
  SessionOptions options;
  options.intra_op_threads = 1;
  options.tier = TierPolicy::kAuto;
  options.jit_hot_threshold = kWarmupRuns;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Create(model, options));
  for (int i = 0; i < kWarmupRuns; ++i) KILN_RETURN_IF_ERROR(session->Run(inputs).status());
  std::vector<double> tierup_ms;
  constexpr auto kMaxTierUp = std::chrono::seconds(30);
  const Clock::time_point tierup_start = Clock::now();
  while (!AllRegionsSettled(session->stats()) && Clock::now() - tierup_start < kMaxTierUp) {
    const Clock::time_point start = Clock::now();
    KILN_RETURN_IF_ERROR(session->Run(inputs).status());
    tierup_ms.push_back(Ms(Clock::now() - start));
  }
  const double tierup_wall_ms = Ms(Clock::now() - tierup_start);
  const SessionStats stats = session->stats();
  if (!AllRegionsSettled(stats)) return Internal("regions still compiling after 30 s");

  double compile_ms = 0;
  for (const RegionStats& r : stats.regions) compile_ms += r.compile_ms;
  const double interp_p50 = Quantile(interp_ms, 0.5);
  const double p99 = Quantile(tierup_ms, 0.99);
  state.SetIterationTime(tierup_wall_ms / 1e3);
  state.counters["interp_p50_ms"] = interp_p50;
  // The machine's own tail without any compile, for reading the ratio.
  state.counters["interp_p99_ms"] = Quantile(interp_ms, 0.99);
  state.counters["tierup_p50_ms"] = Quantile(tierup_ms, 0.5);
  state.counters["tierup_p99_ms"] = p99;
  state.counters["tierup_max_ms"] = Quantile(tierup_ms, 1.0);
  state.counters["p99_over_interp_p50"] = interp_p50 > 0 ? p99 / interp_p50 : 0;
  state.counters["tierup_runs"] = static_cast<double>(tierup_ms.size());
  state.counters["tierup_ms"] = tierup_wall_ms;
  state.counters["compile_ms"] = compile_ms;
  state.counters["regions"] = static_cast<double>(stats.regions.size());
  return Status::Ok();
}

}  // namespace

void RegisterTierUpLatency(const std::string& zoo_dir) {
  StatusOr<std::vector<ZooCase>> cases = ReadZooManifest(zoo_dir);
  if (!cases.ok()) {
    const std::string error = cases.status().ToString();
    benchmark::RegisterBenchmark("BM_TierUpLatency/manifest", [error](benchmark::State& state) {
      for (auto _ : state) state.SkipWithError(error.c_str());
    });
    return;
  }
  for (const ZooCase& zoo_case : *cases) {
    const std::string name = "BM_TierUpLatency/model:" + zoo_case.name;
    benchmark::RegisterBenchmark(name.c_str(),
                                 [zoo_case](benchmark::State& state) {
                                   for (auto _ : state) {
                                     Status status = MeasureTierUp(zoo_case, state);
                                     if (!status.ok()) {
                                       state.SkipWithError(status.ToString().c_str());
                                       break;
                                     }
                                   }
                                 })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace kiln::bench
