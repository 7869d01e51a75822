#include "runtime/thread_budget.h"

#include <algorithm>
#include <thread>

#include "runtime/host_cpu.h"

namespace kiln {

StatusOr<int> ThreadBudget::Impl::Acquire(int want, std::chrono::steady_clock::time_point deadline,
                                          const std::atomic<bool>* cancel) {
  // Polling period for the cancellation flag while waiting.
  constexpr auto kCancelPoll = std::chrono::milliseconds(1);
  want = std::clamp(want, 1, threads);
  MutexLock lock(mu_);
  ++waiting_;
  while (in_use.load(std::memory_order_relaxed) >= threads) {
    if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) {
      --waiting_;
      return Cancelled("the run was cancelled while waiting for a thread");
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      --waiting_;
      return DeadlineExceeded("the run's deadline passed while it waited for a thread (all ", threads,
                              " of the thread budget busy)");
    }
    freed_.WaitUntil(mu_, cancel != nullptr ? std::min(deadline, now + kCancelPoll) : deadline);
  }
  --waiting_;
  const int busy = in_use.load(std::memory_order_relaxed);
  // A whole team only for a run that computes alone: beside other runs, a
  // thread each does more work per core than teams that wait at each
  // other's barriers, and OpenMP workers spinning between a team's parallel
  // regions take cores the other runs need.
  const int granted = waiting_ > 0 || busy > 0 ? 1 : std::min(want, threads - busy);
  const int now_in_use = in_use.fetch_add(granted, std::memory_order_relaxed) + granted;
  if (now_in_use > peak_in_use.load(std::memory_order_relaxed))
    peak_in_use.store(now_in_use, std::memory_order_relaxed);
  // Another waiter may fit in what is left.
  if (now_in_use < threads && waiting_ > 0) freed_.NotifyOne();
  return granted;
}

void ThreadBudget::Impl::Release(int count) {
  {
    MutexLock lock(mu_);
    in_use.fetch_sub(count, std::memory_order_relaxed);
  }
  freed_.NotifyAll();
}

ThreadBudget::ThreadBudget(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ThreadBudget::~ThreadBudget() = default;

std::shared_ptr<ThreadBudget> ThreadBudget::Create(int threads) {
  if (threads <= 0) threads = runtime::HostCores();
  return std::shared_ptr<ThreadBudget>(new ThreadBudget(std::make_unique<Impl>(threads)));
}

int ThreadBudget::threads() const { return impl_->threads; }
int ThreadBudget::in_use() const { return impl_->in_use.load(std::memory_order_relaxed); }
int ThreadBudget::peak_in_use() const { return impl_->peak_in_use.load(std::memory_order_relaxed); }

}  // namespace kiln
