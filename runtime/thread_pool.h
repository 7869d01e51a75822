// kiln's intra-op thread pool. The calling thread always takes part in its
// own parallel loop, so a pool of N threads starts N-1 workers, nested or
// concurrent For() calls (many sessions' runs at once) cannot deadlock, and a
// 1-thread pool runs everything inline. Idle workers sleep on a condition
// variable: they never spin against oneDNN's OpenMP threads.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "graph/mutex.h"
#include "kernels/kernel.h"

namespace kiln::runtime {

class ThreadPool final : public kernels::ParallelRunner {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool() override;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void For(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) const override;
  int num_threads() const override { return num_threads_; }

 private:
  struct Job;
  static void RunChunks(Job& job);
  void WorkerLoop();

  int num_threads_;
  mutable Mutex mu_;
  mutable CondVar work_cv_;  // a job was queued, or stopping_ was set
  mutable std::deque<std::shared_ptr<Job>> queue_ KILN_GUARDED_BY(mu_);
  bool stopping_ KILN_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace kiln::runtime
