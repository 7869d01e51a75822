#include "bench/concurrent_requests.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bench/latency_samples.h"
#include "bench/zoo.h"
#include "kiln/session.h"

namespace kiln::bench {
namespace {

using Clock = std::chrono::steady_clock;

// The process's thread count, from /proc/self/status ("Threads:  17").
int ProcessThreads() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "Threads:") {
      int n = 0;
      status >> n;
      return n;
    }
  }
  return 0;
}

// kUnbudgeted is what a session did before budgets: every caller gets a
// whole team.
enum class ThreadMode { kBudget, kOnePerRequest, kUnbudgeted };

const char* ThreadModeName(ThreadMode mode) {
  switch (mode) {
    case ThreadMode::kBudget: return "budget";
    case ThreadMode::kOnePerRequest: return "one_per_request";
    case ThreadMode::kUnbudgeted: return "unbudgeted";
  }
  return "?";
}

Status Serve(const ZooCase& zoo_case, int requests, ThreadMode mode, benchmark::State& state) {
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model, Model::Load(zoo_case.model_path));
  KILN_ASSIGN_OR_RETURN(std::vector<NamedTensor> inputs, LoadZooInputs(zoo_case));
  SessionOptions options;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  switch (mode) {
    case ThreadMode::kBudget: options.thread_budget = ThreadBudget::Create(cores); break;
    case ThreadMode::kOnePerRequest:
      options.intra_op_threads = 1;
      options.thread_budget = ThreadBudget::Create(requests);
      break;
    case ThreadMode::kUnbudgeted: options.thread_budget = ThreadBudget::Create(requests * cores); break;
  }
  const std::shared_ptr<ThreadBudget> budget = options.thread_budget;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Create(model, options));
  // Warm up until the JIT tier is in place, so the measurement is of the
  // serving steady state.
  for (int i = 0; i < 10; ++i) KILN_RETURN_IF_ERROR(session->Run(inputs).status());
  session->WaitForCompiles();
  for (int i = 0; i < 10; ++i) KILN_RETURN_IF_ERROR(session->Run(inputs).status());

  constexpr auto kServeTime = std::chrono::seconds(2);
  std::atomic<bool> failed{false};
  std::atomic<int> max_threads{0};
  std::vector<std::vector<double>> latencies(static_cast<size_t>(requests));
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> callers;
  for (int r = 0; r < requests; ++r) {
    callers.emplace_back([&, r] {
      std::vector<double>& mine = latencies[static_cast<size_t>(r)];
      while (Clock::now() - start < kServeTime) {
        const Clock::time_point t0 = Clock::now();
        if (!session->Run(inputs).ok()) failed = true;
        mine.push_back(Ms(Clock::now() - t0));
        // One caller samples the thread count as it goes.
        if (r == 0 && mine.size() % 16 == 1) max_threads = std::max(max_threads.load(), ProcessThreads());
      }
    });
  }
  for (auto& c : callers) c.join();
  const double wall_ms = Ms(Clock::now() - start);
  if (failed) return Internal("a request failed");

  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  state.SetIterationTime(wall_ms / 1e3);
  state.counters["qps"] = static_cast<double>(all.size()) / (wall_ms / 1e3);
  state.counters["p50_ms"] = Quantile(all, 0.5);
  state.counters["p99_ms"] = Quantile(all, 0.99);
  state.counters["os_threads"] = std::max(max_threads.load(), ProcessThreads());
  state.counters["compute_threads"] = budget->peak_in_use();
  return Status::Ok();
}

}  // namespace

void RegisterConcurrentRequests(const std::string& zoo_dir) {
  StatusOr<std::vector<ZooCase>> cases = ReadZooManifest(zoo_dir);
  if (!cases.ok()) return;  // RegisterZoo reports the manifest's error
  // A small-GEMM MLP and a transformer: requests of a few hundred
  // microseconds to a few milliseconds, where threading overheads show.
  const std::set<std::string> served = {"mlp_b32", "transformer_encoder"};
  for (const ZooCase& zoo_case : *cases) {
    if (!served.count(zoo_case.name)) continue;
    for (int requests : {1, 2, 4, 8}) {
      for (ThreadMode mode : {ThreadMode::kBudget, ThreadMode::kOnePerRequest, ThreadMode::kUnbudgeted}) {
        const std::string name = "BM_ConcurrentRequests/model:" + zoo_case.name +
                                 "/requests:" + std::to_string(requests) + "/threads:" + ThreadModeName(mode);
        benchmark::RegisterBenchmark(name.c_str(),
                                     [zoo_case, requests, mode](benchmark::State& state) {
                                       for (auto _ : state) {
                                         Status status = Serve(zoo_case, requests, mode, state);
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
