#include "runtime/thread_budget.h"

#include <algorithm>
#include <thread>

namespace kiln {

StatusOr<int> ThreadBudget::Impl::Acquire(int want, std::chrono::steady_clock::time_point deadline,
                                          const std::atomic<bool>* cancel) {
  // Polling period for the cancellation flag while waiting.
  constexpr auto kCancelPoll = std::chrono::milliseconds(1);
  want = std::clamp(want, 1, threads);
  MutexLock lock(mu_);
  // First come, first served: a run waits until it is at the head of the
  // queue and a thread is free, so under sustained load no request waits
  // behind others that came after it (the tail latency of a queue, not of
  // whichever thread the scheduler wakes first).
  const uint64_t ticket = next_ticket_++;
  queue_.push_back(ticket);
  auto leave = [&] {
    queue_.erase(std::find(queue_.begin(), queue_.end(), ticket));
    // The next in line may be able to go now.
    freed_.NotifyAll();
  };
  while (queue_.front() != ticket || in_use.load(std::memory_order_relaxed) >= threads) {
    if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) {
      leave();
      return Cancelled("the run was cancelled while waiting for a thread");
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      leave();
      return DeadlineExceeded("the run's deadline passed while it waited for a thread (all ", threads,
                              " of the thread budget busy)");
    }
    freed_.WaitUntil(mu_, cancel != nullptr ? std::min(deadline, now + kCancelPoll) : deadline);
  }
  queue_.pop_front();
  const int busy = in_use.load(std::memory_order_relaxed);
  // A whole team only for a run that computes alone: beside other runs, a
  // thread each does more work per core than teams that wait at each
  // other's barriers, and OpenMP workers spinning between a team's parallel
  // regions take cores the other runs need.
  const int granted = !queue_.empty() || busy > 0 ? 1 : std::min(want, threads - busy);
  const int now_in_use = in_use.fetch_add(granted, std::memory_order_relaxed) + granted;
  if (now_in_use > peak_in_use.load(std::memory_order_relaxed))
    peak_in_use.store(now_in_use, std::memory_order_relaxed);
  // The next in line may fit in what is left.
  if (now_in_use < threads && !queue_.empty()) freed_.NotifyAll();
  return granted;
}

int ThreadBudget::Impl::waiting() {
  MutexLock lock(mu_);
  return static_cast<int>(queue_.size());
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
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::shared_ptr<ThreadBudget>(new ThreadBudget(std::make_unique<Impl>(threads)));
}

int ThreadBudget::threads() const { return impl_->threads; }
int ThreadBudget::in_use() const { return impl_->in_use.load(std::memory_order_relaxed); }
int ThreadBudget::peak_in_use() const { return impl_->peak_in_use.load(std::memory_order_relaxed); }

}  // namespace kiln
