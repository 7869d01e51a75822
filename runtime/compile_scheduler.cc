#include "runtime/compile_scheduler.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace kiln::runtime {
namespace {

// Shortest wait: below this a sleep is mostly the kernel's timer slack.
constexpr int64_t kMinWaitNs = 20'000;

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t ThreadCpuNs() {
  timespec ts{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

CompileScheduler::Environment CompileScheduler::Environment::Real(std::function<bool()> cores_busy) {
  Environment env;
  env.now_ns = SteadyNowNs;
  env.thread_cpu_ns = ThreadCpuNs;
  env.cores_busy = std::move(cores_busy);
  return env;
}

CompileScheduler::CompileScheduler(double cpu_share, Environment environment)
    : share_(std::clamp(cpu_share, 0.01, 1.0)), env_(std::move(environment)) {
  MutexLock lock(mu_);
  // Full at the start: a compile that begins while requests are already
  // running gets its burst at once.
  credit_ns_ = share_ * kWindowNs;
  refilled_at_ns_ = env_.now_ns();
}

void CompileScheduler::Refill(int64_t now_ns) {
  credit_ns_ = std::min(credit_ns_ + share_ * static_cast<double>(now_ns - refilled_at_ns_), share_ * kWindowNs);
  refilled_at_ns_ = now_ns;
}

void CompileScheduler::YieldPoint() {
  const int64_t cpu_ns = env_.thread_cpu_ns();
  MutexLock lock(mu_);
  auto [it, first_yield] = threads_.try_emplace(std::this_thread::get_id());
  ThreadState& thread = it->second;
  // A thread's first yield point has nothing to charge: its CPU time so far
  // is not compile work this scheduler has seen start.
  const int64_t spent_ns = first_yield ? 0 : cpu_ns - thread.cpu_at_last_yield_ns;
  thread.cpu_at_last_yield_ns = cpu_ns;
  ++thread.account.yield_points;
  if (stopped_) return;
  Refill(env_.now_ns());
  const bool busy = env_.cores_busy();
  if (busy || was_busy_) {
    credit_ns_ -= static_cast<double>(spent_ns);
    thread.account.busy_cpu_ns += spent_ns;
  } else {
    thread.account.idle_cpu_ns += spent_ns;
  }
  was_busy_ = busy;
  if (!busy || credit_ns_ >= 0) return;

  ++thread.account.waits;
  const int64_t wait_start_ns = env_.now_ns();
  while (!stopped_ && credit_ns_ < 0) {
    const double until_refilled = std::ceil(-credit_ns_ / share_);
    const int64_t wait_ns = std::clamp(static_cast<int64_t>(until_refilled), kMinWaitNs, kMaxWaitNs);
    if (env_.sleep) {
      env_.sleep(wait_ns);
    } else {
      stopped_cv_.WaitUntil(mu_, std::chrono::steady_clock::now() + std::chrono::nanoseconds(wait_ns));
    }
    Refill(env_.now_ns());
    if (!env_.cores_busy()) {
      // A core went idle: the compile may use it freely.
      was_busy_ = false;
      break;
    }
  }
  thread.account.waited_ns += env_.now_ns() - wait_start_ns;
}

void CompileScheduler::Stop() {
  {
    MutexLock lock(mu_);
    stopped_ = true;
  }
  stopped_cv_.NotifyAll();
}

CompileScheduler::Account CompileScheduler::ThisThreadAccount() const {
  MutexLock lock(mu_);
  auto it = threads_.find(std::this_thread::get_id());
  return it == threads_.end() ? Account{} : it->second.account;
}

}  // namespace kiln::runtime
