#include "runtime/preparation_queue.h"

#include <omp.h>

#include <algorithm>
#include <utility>

namespace kiln::runtime {

PreparationQueue::PreparationQueue(std::vector<std::function<void()>> jobs, int run_threads)
    : jobs_(std::move(jobs)), run_threads_(std::max(1, run_threads)), worker_([this] { Work(); }) {}

PreparationQueue::~PreparationQueue() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  worker_.join();
}

void PreparationQueue::WaitIdle() {
  MutexLock lock(mu_);
  while (!done_) done_cv_.Wait(mu_);
}

void PreparationQueue::Work() {
  omp_set_num_threads(run_threads_);
  for (std::function<void()>& job : jobs_) {
    {
      MutexLock lock(mu_);
      if (stopping_) break;
    }
    job();
    // Its captures go now, not when the queue does.
    job = nullptr;
  }
  MutexLock lock(mu_);
  done_ = true;
  done_cv_.NotifyAll();
}

}  // namespace kiln::runtime
