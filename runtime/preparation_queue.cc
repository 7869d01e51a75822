#include "runtime/preparation_queue.h"

#include <utility>

namespace kiln::runtime {

PreparationQueue::PreparationQueue(std::vector<std::function<void()>> jobs)
    : jobs_(std::move(jobs)), worker_([this] { Work(); }) {}

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
