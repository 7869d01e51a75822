#include "bench/tier_up_under_load.h"

#include <benchmark/benchmark.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
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

// CPU time the calling thread has used, in milliseconds.
double ThreadCpuMs() {
  timespec ts{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

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

// Compiled calls after which any trial of a version has decided: the
// trial times kTrialSamples calls per tier, alternating, starting compiled
// (runtime/tier_trial.h); a version without a trial has served that many.
constexpr int64_t kTrialSamples = 4;

// Every region serves at its final tier: settled, and a version that
// serves has passed its verification call and its trial. Requests until
// then still do the tier-up's extra work (a verification call runs both
// tiers; a trial runs every other call interpreted), so this, not
// AllRegionsSettled, is where peak speed begins.
bool AllRegionsAtPeak(const SessionStats& stats) {
  if (!AllRegionsSettled(stats)) return false;
  for (const RegionStats& r : stats.regions) {
    if (r.specializations == 0) continue;
    const bool trial_decided = !r.break_even.empty() && r.break_even.back().measured;
    if (!trial_decided && r.compiled_calls <= kTrialSamples) return false;
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

// One timed request.
struct Request {
  double start_ms = 0;  // since the window opened
  double wall_ms = 0;
  // The request thread's CPU time in it. wall - cpu is how long the thread
  // was off its core (intra-op threads are 1, so the request runs on it):
  // what a compile thread, or any other process, took from it.
  double cpu_ms = 0;
  // Started before every region had settled: the window the counters
  // without "peak" in their name have always covered.
  bool before_settled = false;
};

struct Samples {
  std::vector<std::vector<Request>> per_thread = std::vector<std::vector<Request>>(kRequests);

  std::vector<Request> All() const {
    std::vector<Request> all;
    for (const auto& v : per_thread) all.insert(all.end(), v.begin(), v.end());
    return all;
  }
};

std::vector<double> WallMs(const std::vector<Request>& requests, bool before_settled_only) {
  std::vector<double> ms;
  for (const Request& r : requests) {
    if (!before_settled_only || r.before_settled) ms.push_back(r.wall_ms);
  }
  return ms;
}

double MaxOffCpuMs(const std::vector<Request>& requests) {
  double most = 0;
  for (const Request& r : requests) most = std::max(most, r.wall_ms - r.cpu_ms);
  return most;
}

// Runs the session once on the calling thread and times it.
StatusOr<Request> TimedRun(const Session& session, const std::vector<NamedTensor>& inputs, const RunOptions& options,
                           Clock::time_point window_start) {
  Request r;
  const double cpu_begin = ThreadCpuMs();
  const Clock::time_point begin = Clock::now();
  KILN_RETURN_IF_ERROR(session.Run(inputs, options).status());
  r.wall_ms = Ms(Clock::now() - begin);
  r.cpu_ms = ThreadCpuMs() - cpu_begin;
  r.start_ms = Ms(begin - window_start);
  return r;
}

// The interpreter's latency with kRequests threads serving at once.
StatusOr<std::vector<Request>> InterpreterLatency(const std::shared_ptr<const Model>& model,
                                                  const std::vector<NamedTensor>& inputs) {
  SessionOptions options;
  options.intra_op_threads = 1;
  options.tier = TierPolicy::kInterpreter;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Create(model, options));
  Samples samples;
  const Clock::time_point start = Clock::now();
  KILN_RETURN_IF_ERROR(RunConcurrently([&](int t, int run) -> StatusOr<bool> {
    KILN_ASSIGN_OR_RETURN(Request r, TimedRun(*session, inputs, RunOptions(), start));
    if (run >= kWarmupRuns) samples.per_thread[static_cast<size_t>(t)].push_back(r);
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
  // As kCold, on a code cache folder an earlier session filled: a replica
  // that joins a fleet sharing one folder. Its regions are linked, queued
  // from the hot set at Session::Create, under the same share.
  kWarmCache,
};

const char* StartName(Start start) {
  switch (start) {
    case Start::kWarm: return "warm";
    case Start::kCold: return "cold";
    case Start::kWarmCache: return "warm_cache";
  }
  return "";
}

// A fresh code cache folder for `zoo_case`, filled by one session that
// compiled every region (untimed, one request thread).
StatusOr<std::string> FillCodeCache(const ZooCase& zoo_case, const std::shared_ptr<const Model>& model,
                                    const std::vector<NamedTensor>& inputs) {
  std::string name = zoo_case.name;
  std::replace(name.begin(), name.end(), '/', '_');
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / "kiln_bench_code_cache" / (name + "_under_load");
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  SessionOptions options;
  options.intra_op_threads = 1;
  options.tier = TierPolicy::kAuto;
  options.jit_hot_threshold = 1;
  options.jit_cache_dir = dir.string();
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Create(model, options));
  const Clock::time_point start = Clock::now();
  do {
    KILN_RETURN_IF_ERROR(session->Run(inputs).status());
    session->WaitForCompiles();
  } while (!AllRegionsSettled(session->stats()) && Clock::now() - start < kMaxTierUp);
  if (!AllRegionsSettled(session->stats())) return Internal("filling the code cache: regions still compiling");
  return dir.string();
}

// KILN_TIERUP_DUMP=DIR: each case's Chrome trace (compile slices against
// requests tagged "thread/run") and a CSV of its requests, for finding what
// slowed the slow ones.
Status Dump(const std::string& dir, const std::string& name, const Session& session, const Samples& tierup) {
  KILN_RETURN_IF_ERROR(session.WriteTrace(dir + "/" + name + ".json"));
  std::ofstream csv(dir + "/" + name + ".csv");
  csv << "thread,run,start_ms,wall_ms,cpu_ms,before_settled\n";
  for (size_t t = 0; t < kRequests; ++t) {
    for (size_t i = 0; i < tierup.per_thread[t].size(); ++i) {
      const Request& r = tierup.per_thread[t][i];
      csv << t << "," << i << "," << r.start_ms << "," << r.wall_ms << "," << r.cpu_ms << "," << r.before_settled
          << "\n";
    }
  }
  if (!csv) return IoError("cannot write ", dir, "/", name, ".csv");
  return Status::Ok();
}

Status MeasureUnderLoad(const ZooCase& zoo_case, double share, Start start, benchmark::State& state) {
  double load_average[1] = {0};
  getloadavg(load_average, 1);
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model, Model::Load(zoo_case.model_path));
  KILN_ASSIGN_OR_RETURN(std::vector<NamedTensor> inputs, LoadZooInputs(zoo_case));
  KILN_ASSIGN_OR_RETURN(std::vector<Request> interp, InterpreterLatency(model, inputs));

  const char* dump_dir = getenv("KILN_TIERUP_DUMP");
  SessionOptions options;
  options.intra_op_threads = 1;
  options.tier = TierPolicy::kAuto;
  options.jit_compile_cpu_share = share;
  options.enable_tracing = dump_dir != nullptr;
  if (start == Start::kWarm) options.jit_hot_threshold = kWarmupRuns * kRequests;
  if (start == Start::kWarmCache) {
    KILN_ASSIGN_OR_RETURN(options.jit_cache_dir, FillCodeCache(zoo_case, model, inputs));
  }
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
  std::atomic<bool> at_peak{false};
  Clock::time_point settled_at{};
  const Clock::time_point tierup_start = start == Start::kWarm ? Clock::now() : created;
  KILN_RETURN_IF_ERROR(RunConcurrently([&](int t, int run) -> StatusOr<bool> {
    RunOptions run_options;
    if (dump_dir != nullptr) run_options.tag = std::to_string(t) + "/" + std::to_string(run);
    const bool before_settled = !settled.load();
    KILN_ASSIGN_OR_RETURN(Request r, TimedRun(*session, inputs, run_options, tierup_start));
    r.before_settled = before_settled;
    tierup.per_thread[static_cast<size_t>(t)].push_back(r);
    const SessionStats stats = session->stats();
    if (!settled.load() && AllRegionsSettled(stats) && !settled.exchange(true)) settled_at = Clock::now();
    if (AllRegionsAtPeak(stats)) at_peak = true;
    return !at_peak.load() && Clock::now() - tierup_start < kMaxTierUp;
  }));
  const double peak_wall_ms = Ms(Clock::now() - tierup_start);
  session->WaitForCompiles();
  const SessionStats stats = session->stats();
  if (!settled) return Internal("regions still compiling after ", kMaxTierUp.count(), " s");
  if (!at_peak) return Internal("regions still on verification or trial after ", kMaxTierUp.count(), " s");
  if (dump_dir != nullptr) {
    const std::string name =
        std::string(StartName(start)) + "_" + zoo_case.name + "_" + std::to_string(static_cast<int>(share * 100));
    KILN_RETURN_IF_ERROR(Dump(dump_dir, name, *session, tierup));
  }

  double compile_ms = 0;
  for (const RegionStats& r : stats.regions) compile_ms += r.compile_ms;
  const std::vector<Request> requests = tierup.All();
  const std::vector<double> interp_ms = WallMs(interp, false);
  const double interp_p50 = Quantile(interp_ms, 0.5);
  const double interp_p99 = Quantile(interp_ms, 0.99);

  // Until every region settled (the window these counters always had, so
  // that they stay comparable with earlier reports).
  const std::vector<double> tierup_ms = WallMs(requests, true);
  const double p99 = Quantile(tierup_ms, 0.99);
  state.SetIterationTime(Ms(settled_at - tierup_start) / 1e3);
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
  state.counters["tierup_ms"] = Ms(settled_at - tierup_start);

  // Until peak (every version verified and through its trial): the whole
  // tier-up as requests see it. Its few dozen requests make its p99 the
  // maximum or next to it, so one unlucky request decides it; hence also
  // the count of requests slower than 1.1x the interpreter's p99 beside the
  // count the interpreter itself would have had among as many requests,
  // and the longest any request was off its core (wall - CPU time), which
  // tells time taken by another thread from a request's own extra work.
  const std::vector<double> peak_ms = WallMs(requests, false);
  const double slow_ms = 1.1 * interp_p99;
  const auto slower = [slow_ms](const std::vector<double>& ms) {
    return static_cast<double>(std::count_if(ms.begin(), ms.end(), [slow_ms](double v) { return v > slow_ms; }));
  };
  state.counters["runs_to_peak"] = static_cast<double>(peak_ms.size()) / kRequests;
  state.counters["peak_ms"] = peak_wall_ms;
  state.counters["peak_p99_ms"] = Quantile(peak_ms, 0.99);
  state.counters["peak_p99_over_interp_p99"] = interp_p99 > 0 ? Quantile(peak_ms, 0.99) / interp_p99 : 0;
  state.counters["slow_requests"] = slower(peak_ms);
  state.counters["slow_requests_interp"] = interp_ms.empty() ? 0
                                                             : slower(interp_ms) * static_cast<double>(peak_ms.size()) /
                                                                   static_cast<double>(interp_ms.size());
  state.counters["offcpu_max_ms"] = MaxOffCpuMs(requests);
  state.counters["interp_offcpu_max_ms"] = MaxOffCpuMs(interp);

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
  // KILN_TIERUP_NO_TICKS=1: the process takes the compile scheduler's tick
  // signal (runtime/thread_ticker.h) for itself, so that compiles are paced
  // at LLVM's yield points only: the same scheduler without ticks, for
  // measuring what they change under the same load.
  if (const char* no_ticks = getenv("KILN_TIERUP_NO_TICKS"); no_ticks != nullptr && no_ticks[0] == '1') {
    signal(SIGRTMAX - 3, [](int) {});
  }
  StatusOr<std::vector<ZooCase>> cases = ReadZooManifest(zoo_dir);
  if (!cases.ok()) return;  // RegisterTierUpLatency reports the manifest's error
  for (const ZooCase& zoo_case : *cases) {
    if (std::find(std::begin(kCases), std::end(kCases), zoo_case.name) == std::end(kCases)) continue;
    for (double share : kShares) {
      const std::string suffix =
          "/model:" + zoo_case.name + "/requests:" + std::to_string(kRequests) + "/compile_share:" + ShareName(share);
      for (Start start : {Start::kWarm, Start::kCold, Start::kWarmCache}) {
        const char* bench = start == Start::kWarm   ? "BM_TierUpLatency"
                            : start == Start::kCold ? "BM_ZooTierUp"
                                                    : "BM_ZooTierUpWarmCache";
        const std::string name = bench + suffix;
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
