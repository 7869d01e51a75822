// Background compile workers with a queue of their own, separate from the
// intra-op pool, so a compile never delays a request's kernels and requests
// never wait for a compile (unless a blocking policy asks them to).
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "graph/mutex.h"

namespace kiln::runtime {

class CompileQueue {
 public:
  // With `low_priority`, the workers run at a lowered scheduling priority
  // (nice 10), so the kernel prefers request threads; without it they keep
  // normal priority, for compiles that a CompileScheduler paces instead.
  // The `num_threads` workers start with the first Enqueue.
  explicit CompileQueue(int num_threads, bool low_priority = true);
  // Drops the jobs that have not started and waits for the running ones
  // (at most one per worker), so destruction takes at most one compile's
  // time however many are queued.
  ~CompileQueue();
  CompileQueue(const CompileQueue&) = delete;
  CompileQueue& operator=(const CompileQueue&) = delete;

  void Enqueue(std::function<void()> job);
  // Blocks until the queue is empty and no job runs.
  void WaitIdle();

 private:
  void WorkerLoop(bool low_priority);

  Mutex mu_;
  CondVar work_cv_;  // a job was queued, or stopping_ was set
  CondVar idle_cv_;  // the queue drained and no job runs
  std::deque<std::function<void()>> jobs_ KILN_GUARDED_BY(mu_);
  int running_ KILN_GUARDED_BY(mu_) = 0;
  bool stopping_ KILN_GUARDED_BY(mu_) = false;
  const int num_threads_;
  const bool low_priority_;
  std::vector<std::thread> workers_ KILN_GUARDED_BY(mu_);  // none until the first job
};

}  // namespace kiln::runtime
