// ThreadBudget's internals: a counting semaphore over compute threads that
// Session::Run takes its team from (see kiln/session.h for the policy).
#pragma once

#include <atomic>
#include <chrono>

#include "graph/mutex.h"
#include "kiln/session.h"

namespace kiln {

struct ThreadBudget::Impl {
  explicit Impl(int threads) : threads(threads) {}

  // Waits until a thread is free, then takes up to `want` of them when no
  // other run computes or waits, else one.
  // Gives up with kDeadlineExceeded at `deadline` or kCancelled once
  // `*cancel` is set (it is polled: nobody notifies on it).
  StatusOr<int> Acquire(int want, std::chrono::steady_clock::time_point deadline, const std::atomic<bool>* cancel);
  void Release(int count);

  const int threads;
  std::atomic<int> in_use{0};  // also read without the lock, by stats
  std::atomic<int> peak_in_use{0};

 private:
  Mutex mu_;
  CondVar freed_;
  int waiting_ KILN_GUARDED_BY(mu_) = 0;
};

namespace runtime {

// Threads taken from a budget for one run, given back when it ends.
class ThreadGrant {
 public:
  ThreadGrant(ThreadBudget::Impl& budget, int count) : budget_(budget), count_(count) {}
  ~ThreadGrant() { budget_.Release(count_); }
  ThreadGrant(const ThreadGrant&) = delete;
  ThreadGrant& operator=(const ThreadGrant&) = delete;

  int count() const { return count_; }

 private:
  ThreadBudget::Impl& budget_;
  int count_;
};

}  // namespace runtime
}  // namespace kiln
