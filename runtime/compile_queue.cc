#include "runtime/compile_queue.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "graph/log.h"

namespace kiln::runtime {

CompileQueue::CompileQueue(int num_threads, bool low_priority)
    : num_threads_(std::max(1, num_threads)), low_priority_(low_priority) {}

CompileQueue::~CompileQueue() {
  std::vector<std::thread> workers;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    jobs_.clear();
    workers.swap(workers_);
  }
  work_cv_.NotifyAll();
  idle_cv_.NotifyAll();
  for (auto& w : workers) w.join();
}

void CompileQueue::Enqueue(std::function<void()> job) {
  {
    MutexLock lock(mu_);
    jobs_.push_back(std::move(job));
    // The workers start with the first job rather than with the queue: a
    // session is created before any region is hot, and starting a thread
    // (tens to hundreds of microseconds on a virtual machine) would
    // otherwise add to the time to its first result.
    if (workers_.empty() && !stopping_) {
      for (int i = 0; i < num_threads_; ++i) {
        workers_.emplace_back([this, low_priority = low_priority_] { WorkerLoop(low_priority); });
      }
    }
  }
  work_cv_.NotifyOne();
}

void CompileQueue::WaitIdle() {
  MutexLock lock(mu_);
  while (!jobs_.empty() || running_ != 0) idle_cv_.Wait(mu_);
}

namespace {

// Compile threads yield to request threads when cores are scarce: tier-up
// must never stall a request, and a compile that takes a little longer only
// delays the speed-up. Nice 10 (about a tenth of a normal thread's CPU
// share under contention) rather than SCHED_IDLE, which on a saturated
// machine would starve compiles almost completely. Linux applies nice per
// thread. Even a tenth starves a compile when every core serves requests,
// which is why paced compiles (CompileScheduler) keep normal priority.
constexpr int kCompileThreadNice = 10;

void LowerCompileThreadPriority() {
  const auto tid = static_cast<id_t>(syscall(SYS_gettid));
  if (setpriority(PRIO_PROCESS, tid, kCompileThreadNice) != 0) {
    Log().debug("compile queue: could not lower the compile thread's priority (errno {})", errno);
  }
}

}  // namespace

void CompileQueue::WorkerLoop(bool low_priority) {
  if (low_priority) LowerCompileThreadPriority();
  for (;;) {
    std::function<void()> job;
    {
      MutexLock lock(mu_);
      while (!stopping_ && jobs_.empty()) work_cv_.Wait(mu_);
      if (jobs_.empty()) return;  // stopping, nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_;
    }
    job();
    MutexLock lock(mu_);
    --running_;
    if (jobs_.empty() && running_ == 0) idle_cv_.NotifyAll();
    // Still under the lock: WaitIdle returns only once the job's captures
    // are destroyed.
    job = nullptr;
  }
}

}  // namespace kiln::runtime
