#include "tools/timed_runs.h"

#include <algorithm>
#include <atomic>
#include <thread>

namespace kiln::cli {
namespace {

using Clock = std::chrono::steady_clock;

// What one thread measured. Each thread writes only its own, so the hot
// loop shares nothing but the run counter and the stop flag.
struct ThreadRecord {
  LatencyHistogram latency;
  std::vector<NamedTensor> last_outputs;
  Status status;
  Clock::time_point end;
};

}  // namespace

StatusOr<TimedRunResult> RunTimed(const Session& session, const std::vector<NamedTensor>& inputs,
                                  const TimedRunPlan& plan) {
  if (plan.threads < 1) return InvalidArgument("timed runs need at least one thread, got ", plan.threads);
  if (!plan.feeds.empty() && plan.threads != 1) return InvalidArgument("fed-back outputs need a single thread");
  const bool timed_by_duration = plan.duration.count() > 0;
  std::vector<ThreadRecord> records(static_cast<size_t>(plan.threads));
  std::atomic<int64_t> runs_started{0};
  std::atomic<bool> failed{false};
  const Clock::time_point start = Clock::now();
  const Clock::time_point end = start + std::chrono::duration_cast<Clock::duration>(plan.duration);

  auto work = [&](ThreadRecord& record) {
    std::vector<NamedTensor> fed;  // the inputs with fed-back outputs, when plan.feeds says so
    if (!plan.feeds.empty()) fed = inputs;
    const std::vector<NamedTensor>& run_inputs = plan.feeds.empty() ? inputs : fed;
    bool first = true;
    while (!failed.load(std::memory_order_relaxed)) {
      if (timed_by_duration) {
        if (!first && Clock::now() >= end) break;
      } else if (runs_started.fetch_add(1, std::memory_order_relaxed) >= plan.runs) {
        break;
      }
      first = false;
      const Clock::time_point run_start = Clock::now();
      StatusOr<std::vector<NamedTensor>> outputs = session.Run(run_inputs);
      const Clock::time_point run_end = Clock::now();
      if (!outputs.ok()) {
        record.status = outputs.status();
        failed.store(true, std::memory_order_relaxed);
        break;
      }
      record.latency.Record(std::chrono::duration_cast<std::chrono::nanoseconds>(run_end - run_start).count());
      record.last_outputs = std::move(outputs).value();
      for (const auto& [out, in] : plan.feeds) fed[in].tensor = record.last_outputs[out].tensor;
    }
    record.end = Clock::now();
  };

  {
    // jthreads join when this scope ends, also when starting one throws
    // (std::system_error): the ones already started finish their bounded
    // work first, and `records` outlives them all.
    std::vector<std::jthread> threads;
    threads.reserve(records.size() - 1);
    for (size_t t = 1; t < records.size(); ++t) threads.emplace_back(work, std::ref(records[t]));
    work(records[0]);  // the calling thread is thread 0
  }

  TimedRunResult result;
  Clock::time_point last_end = start;
  for (ThreadRecord& record : records) {
    if (!record.status.ok()) return record.status;
    result.latency.Merge(record.latency);
    last_end = std::max(last_end, record.end);
    if (result.last_outputs.empty()) result.last_outputs = std::move(record.last_outputs);
  }
  result.wall_seconds = std::chrono::duration<double>(last_end - start).count();
  return result;
}

}  // namespace kiln::cli
