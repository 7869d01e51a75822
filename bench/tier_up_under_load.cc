#include "bench/tier_up_under_load.h"

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/latency_samples.h"
#include "bench/zoo.h"
#include "kiln/session.h"

namespace kiln::bench {
namespace {

using Clock = std::chrono::steady_clock;

// The two cases: a row-reduction chain, and a transformer layer
// (GEMMs, LayerNorms, attention).
const char* const kCases[] = {"silu_ln_gelu", "transformer_encoder"};
// 0: no scheduler (the nice-10 compile thread); 0.25: the default; 1: never
// paced, at normal priority.
const double kShares[] = {0, 0.1, 0.25, 0.5, 1};
constexpr int kRequests = 2;

// Interpreted runs per request thread before and while timing, and the
// cap on the interpreter phase.
constexpr int kWarmupRuns = 10;
constexpr int kInterpRuns = 100;
constexpr auto kMaxInterpTime = std::chrono::seconds(2);
constexpr auto kMaxTierUp = std::chrono::seconds(60);

// Every region has had its compile: it serves compiled code, or its
// compile failed, or the code was dropped after its trial or verification
// (it lost to the interpreter on this loaded machine, which happens), or the
// payback gate kept it interpreted.
bool AllRegionsSettled(const SessionStats& stats) {
  for (const RegionStats& r : stats.regions) {
    if (r.specializations == 0 && r.failed_compiles == 0 && r.declined == 0 && r.verify_failures == 0 &&
        r.skipped_for_payback == 0) {
      return false;
    }
  }
  return true;
}

// Runs `body(thread, run)` on kRequests threads started together, each
// until `body` returns false; the first error stops all of them.
Status RunConcurrently(const std::function<StatusOr<bool>(int thread, int run)>& body) {
  std::atomic<int> ready{0};
  std::atomic<bool> failed{false};
  std::vector<Status> errors(kRequests);
  std::vector<std::thread> threads;
  for (int t = 0; t < kRequests; ++t) {
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < kRequests) {
      }
      for (int run = 0; !failed.load(); ++run) {
        StatusOr<bool> more = body(t, run);
        if (!more.ok()) {
          errors[static_cast<size_t>(t)] = more.status();
          failed = true;
        }
        if (!more.ok() || !*more) break;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : errors) KILN_RETURN_IF_ERROR(s);
  return Status::Ok();
}

struct Samples {
  std::vector<std::vector<double>> per_thread = std::vector<std::vector<double>>(kRequests);
  std::vector<double> All() const {
    std::vector<double> all;
    for (const auto& v : per_thread) all.insert(all.end(), v.begin(), v.end());
    return all;
  }
};

// The interpreter's latency with kRequests threads serving at once.
StatusOr<std::vector<double>> InterpreterLatency(const std::shared_ptr<const Model>& model,
                                                 const std::vector<NamedTensor>& inputs) {
  SessionOptions options;
  options.intra_op_threads = 1;
  options.tier = TierPolicy::kInterpreter;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Create(model, options));
  Samples samples;
  const Clock::time_point start = Clock::now();
  KILN_RETURN_IF_ERROR(RunConcurrently([&](int t, int run) -> StatusOr<bool> {
    const Clock::time_point begin = Clock::now();
    KILN_RETURN_IF_ERROR(session->Run(inputs).status());
    if (run >= kWarmupRuns) samples.per_thread[static_cast<size_t>(t)].push_back(Ms(Clock::now() - begin));
    return run + 1 < kWarmupRuns + kInterpRuns && Clock::now() - start < kMaxInterpTime;
  }));
  return samples.All();
}

enum class Start {
  // Both threads warm the session up first (kWarmupRuns each); the last
  // warm-up run makes the regions hot, so cold-start costs stay out.
  kWarm,
  // From Session::Create at the default hot threshold: time to peak as a
  // new replica sees it.
  kCold,
};

Status MeasureUnderLoad(const ZooCase& zoo_case, double share, Start start, benchmark::State& state) {
  double load_average[1] = {0};
  getloadavg(load_average, 1);
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model, Model::Load(zoo_case.model_path));
  KILN_ASSIGN_OR_RETURN(std::vector<NamedTensor> inputs, LoadZooInputs(zoo_case));
  KILN_ASSIGN_OR_RETURN(std::vector<double> interp_ms, InterpreterLatency(model, inputs));

  SessionOptions options;
  options.intra_op_threads = 1;
  options.tier = TierPolicy::kAuto;
  options.jit_compile_cpu_share = share;
  if (start == Start::kWarm) options.jit_hot_threshold = kWarmupRuns * kRequests;
  const Clock::time_point created = Clock::now();
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Create(model, options));
  if (start == Start::kWarm) {
    KILN_RETURN_IF_ERROR(RunConcurrently([&](int, int run) -> StatusOr<bool> {
      KILN_RETURN_IF_ERROR(session->Run(inputs).status());
      return run + 1 < kWarmupRuns;
    }));
  }
  Samples tierup;
  std::atomic<bool> settled{false};
  const Clock::time_point tierup_start = start == Start::kWarm ? Clock::now() : created;
  KILN_RETURN_IF_ERROR(RunConcurrently([&](int t, int) -> StatusOr<bool> {
    const Clock::time_point begin = Clock::now();
    KILN_RETURN_IF_ERROR(session->Run(inputs).status());
    tierup.per_thread[static_cast<size_t>(t)].push_back(Ms(Clock::now() - begin));
    if (AllRegionsSettled(session->stats())) settled = true;
    return !settled.load() && Clock::now() - tierup_start < kMaxTierUp;
  }));
  const double tierup_wall_ms = Ms(Clock::now() - tierup_start);
  session->WaitForCompiles();
  const SessionStats stats = session->stats();
  if (!settled) return Internal("regions still compiling after ", kMaxTierUp.count(), " s");

  double compile_ms = 0;
  for (const RegionStats& r : stats.regions) compile_ms += r.compile_ms;
  const std::vector<double> tierup_ms = tierup.All();
  const double interp_p50 = Quantile(interp_ms, 0.5);
  const double interp_p99 = Quantile(interp_ms, 0.99);
  const double p99 = Quantile(tierup_ms, 0.99);
  state.SetIterationTime(tierup_wall_ms / 1e3);
  state.counters["interp_p50_ms"] = interp_p50;
  state.counters["interp_p99_ms"] = interp_p99;
  state.counters["tierup_p50_ms"] = Quantile(tierup_ms, 0.5);
  state.counters["tierup_p99_ms"] = p99;
  state.counters["tierup_max_ms"] = Quantile(tierup_ms, 1.0);
  state.counters["p99_over_interp_p99"] = interp_p99 > 0 ? p99 / interp_p99 : 0;
  // The typical request's slowdown: on a loaded machine the p99s are mostly
  // other processes' noise.
  state.counters["p50_over_interp_p50"] = interp_p50 > 0 ? Quantile(tierup_ms, 0.5) / interp_p50 : 0;
  state.counters["runs_to_tier_up"] = static_cast<double>(tierup_ms.size()) / kRequests;
  state.counters["tierup_ms"] = tierup_wall_ms;
  state.counters["compile_ms"] = compile_ms;
  state.counters["regions"] = static_cast<double>(stats.regions.size());
  state.counters["compile_share"] = share;
  state.counters["load_average"] = load_average[0];
  return Status::Ok();
}

std::string ShareName(double share) {
  if (share <= 0) return "off";
  std::string s = std::to_string(share);
  s.erase(s.find_last_not_of('0') + 1);
  if (s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

void RegisterTierUpUnderLoad(const std::string& zoo_dir) {
  StatusOr<std::vector<ZooCase>> cases = ReadZooManifest(zoo_dir);
  if (!cases.ok()) return;  // RegisterTierUpLatency reports the manifest's error
  for (const ZooCase& zoo_case : *cases) {
    if (std::find(std::begin(kCases), std::end(kCases), zoo_case.name) == std::end(kCases)) continue;
    for (double share : kShares) {
      const std::string suffix =
          "/model:" + zoo_case.name + "/requests:" + std::to_string(kRequests) + "/compile_share:" + ShareName(share);
      for (Start start : {Start::kWarm, Start::kCold}) {
        const std::string name = (start == Start::kWarm ? "BM_TierUpLatency" : "BM_ZooTierUp") + suffix;
        benchmark::RegisterBenchmark(name.c_str(),
                                     [zoo_case, share, start](benchmark::State& state) {
                                       for (auto _ : state) {
                                         const Status status = MeasureUnderLoad(zoo_case, share, start, state);
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
  }
}

}  // namespace kiln::bench
