#include "runtime/compile_scheduler.h"

#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "graph/log.h"
#include "runtime/thread_ticker.h"

namespace kiln::runtime {
namespace {

// Shortest wait: below this a sleep is mostly the kernel's timer slack.
constexpr int64_t kMinWaitNs = 20'000;

int64_t SteadyNowNs() {
  timespec ts{};
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
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

CompileScheduler::BurstBound::BurstBound() = default;
CompileScheduler::BurstBound::BurstBound(BurstBound&& other) noexcept
    : thread_(other.thread_), ticker_(std::move(other.ticker_)) {
  other.thread_ = nullptr;
}
CompileScheduler::BurstBound& CompileScheduler::BurstBound::operator=(BurstBound&& other) noexcept {
  if (this != &other) {
    ticker_.reset();
    if (thread_ != nullptr) CompileScheduler::Unpin(*thread_);
    thread_ = other.thread_;
    ticker_ = std::move(other.ticker_);
    other.thread_ = nullptr;
  }
  return *this;
}
CompileScheduler::BurstBound::~BurstBound() {
  // No tick can pin the thread again once the ticker is gone.
  ticker_.reset();
  if (thread_ != nullptr) CompileScheduler::Unpin(*thread_);
}

CompileScheduler::CompileScheduler(double cpu_share, Environment environment)
    : share_(std::clamp(cpu_share, 0.01, 1.0)),
      fill_ns_(static_cast<int64_t>(static_cast<double>(kBurstNs) / share_)),
      env_(std::move(environment)),
      // Full at the start: a compile that begins while requests are
      // already running gets its burst at once.
      within_share_at_ns_(env_.now_ns() - fill_ns_) {}

CompileScheduler::~CompileScheduler() = default;

CompileScheduler::ThreadState& CompileScheduler::ThisThread() {
  MutexLock lock(mu_);
  std::unique_ptr<ThreadState>& thread = threads_[std::this_thread::get_id()];
  if (thread == nullptr) {
    thread = std::make_unique<ThreadState>();
    thread->scheduler = this;
    thread->cpu_at_last_charge_ns.store(env_.thread_cpu_ns(), std::memory_order_relaxed);
  }
  return *thread;
}

void CompileScheduler::YieldPoint() {
  ThreadState& thread = ThisThread();
  thread.yield_points.fetch_add(1, std::memory_order_relaxed);
  Pace(thread);
}

int64_t CompileScheduler::OnTick(void* thread_state) {
  auto& thread = *static_cast<ThreadState*>(thread_state);
  thread.ticks.fetch_add(1, std::memory_order_relaxed);
  CompileScheduler& scheduler = *thread.scheduler;
  scheduler.Pace(thread);
  const bool busy = scheduler.was_busy_.load(std::memory_order_relaxed);
  return busy && !scheduler.stopped_.load(std::memory_order_acquire) ? kBurstNs : kIdleTickNs;
}

CompileScheduler::BurstBound CompileScheduler::BoundBursts() {
  ThreadState& thread = ThisThread();
  BurstBound bound;
  // The CPUs to spread over: the thread's own, read again at each bound
  // (the process may have changed them).
  thread.cpu_count = 0;
  thread.pinned = false;
  if (sched_getaffinity(0, sizeof(thread.own_cpus), &thread.own_cpus) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE && thread.cpu_count < kMaxSpreadCpus; ++cpu) {
      if (CPU_ISSET(cpu, &thread.own_cpus)) thread.cpus[thread.cpu_count++] = cpu;
    }
  }
  StatusOr<std::unique_ptr<ThreadTicker>> ticker =
      ThreadTicker::Start(std::chrono::nanoseconds(kBurstNs), &CompileScheduler::OnTick, &thread);
  if (ticker.ok()) {
    bound.thread_ = &thread;
    bound.ticker_ = std::move(ticker).value();
  } else if (!reported_no_ticks_.exchange(true)) {
    Log().info("jit: compiles are paced at their yield points only: {}", ticker.status().ToString());
  }
  return bound;
}

void CompileScheduler::Pace(ThreadState& thread) {
  // Only the thread itself gets here, from its code or from a tick that
  // interrupted it; the flag keeps the second out while the first paces.
  if (thread.pacing.exchange(true, std::memory_order_acquire)) return;
  const int64_t cpu_ns = env_.thread_cpu_ns();
  const int64_t spent_ns = cpu_ns - thread.cpu_at_last_charge_ns.exchange(cpu_ns, std::memory_order_relaxed);
  if (!stopped_.load(std::memory_order_acquire)) {
    const int64_t now_ns = env_.now_ns();
    const bool busy = env_.cores_busy();
    const bool was_busy = was_busy_.exchange(busy, std::memory_order_relaxed);
    if (busy || was_busy) {
      thread.busy_cpu_ns.fetch_add(spent_ns, std::memory_order_relaxed);
      if (spent_ns > thread.longest_busy_burst_ns.load(std::memory_order_relaxed)) {
        thread.longest_busy_burst_ns.store(spent_ns, std::memory_order_relaxed);  // only this thread writes it
      }
      const auto charge_ns = static_cast<int64_t>(std::llround(static_cast<double>(spent_ns) / share_));
      int64_t seen = within_share_at_ns_.load(std::memory_order_relaxed);
      while (!within_share_at_ns_.compare_exchange_weak(seen, std::max(seen, now_ns - fill_ns_) + charge_ns,
                                                        std::memory_order_relaxed)) {
      }
    } else {
      thread.idle_cpu_ns.fetch_add(spent_ns, std::memory_order_relaxed);
      // With a core idle the kernel should place the compile where it
      // likes (on the idle core).
      if (thread.pinned) Unpin(thread);
    }
    if (busy && within_share_at_ns_.load(std::memory_order_relaxed) > now_ns) Wait(thread, now_ns);
  }
  thread.pacing.store(false, std::memory_order_release);
}

void CompileScheduler::PinToNextCpu(ThreadState& thread) {
  if (thread.cpu_count < 2) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(thread.cpus[thread.next_cpu], &one);
  thread.next_cpu = (thread.next_cpu + 1) % thread.cpu_count;
  // The raw system call: the thread (0) moves when it next wakes.
  if (syscall(SYS_sched_setaffinity, 0, sizeof(one), &one) == 0) thread.pinned = true;
}

void CompileScheduler::Unpin(ThreadState& thread) {
  if (!thread.pinned) return;
  syscall(SYS_sched_setaffinity, 0, sizeof(thread.own_cpus), &thread.own_cpus);
  thread.pinned = false;
}

void CompileScheduler::Wait(ThreadState& thread, int64_t now_ns) {
  thread.waits.fetch_add(1, std::memory_order_relaxed);
  // The next burst takes its time from the next core's requests.
  PinToNextCpu(thread);
  const int64_t wait_start_ns = now_ns;
  while (!stopped_.load(std::memory_order_acquire)) {
    const int64_t until_within_ns = within_share_at_ns_.load(std::memory_order_relaxed) - now_ns;
    if (until_within_ns <= 0) break;
    Sleep(std::clamp(until_within_ns, kMinWaitNs, kMaxWaitNs));
    now_ns = env_.now_ns();
    if (!env_.cores_busy()) {
      // A core went idle: the compile may use it freely.
      was_busy_.store(false, std::memory_order_relaxed);
      break;
    }
  }
  thread.waited_ns.fetch_add(now_ns - wait_start_ns, std::memory_order_relaxed);
}

void CompileScheduler::Sleep(int64_t ns) const {
  if (env_.sleep) {
    env_.sleep(ns);
    return;
  }
  // A tick may cut it short (EINTR); the caller looks again either way.
  const timespec duration{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  nanosleep(&duration, nullptr);
}

void CompileScheduler::Credit(int64_t saved_ns) {
  if (saved_ns <= 0) return;
  int64_t seen = within_share_at_ns_.load(std::memory_order_relaxed);
  const int64_t full_at_ns = env_.now_ns() - fill_ns_;
  if (seen <= full_at_ns) return;
  // The saving, in the wall time the share would have needed to earn it.
  const auto credit_ns = static_cast<int64_t>(std::llround(static_cast<double>(saved_ns) / share_));
  int64_t to = std::max(seen - credit_ns, full_at_ns);
  while (!within_share_at_ns_.compare_exchange_weak(seen, to, std::memory_order_relaxed)) {
    if (seen <= full_at_ns) return;
    to = std::max(seen - credit_ns, full_at_ns);
  }
  credited_ns_.fetch_add(static_cast<int64_t>(static_cast<double>(seen - to) * share_), std::memory_order_relaxed);
}

void CompileScheduler::Stop() { stopped_.store(true, std::memory_order_release); }

CompileScheduler::Account CompileScheduler::ThisThreadAccount() const {
  MutexLock lock(mu_);
  auto it = threads_.find(std::this_thread::get_id());
  if (it == threads_.end()) return Account{};
  const ThreadState& t = *it->second;
  Account account;
  account.yield_points = t.yield_points.load(std::memory_order_relaxed);
  account.ticks = t.ticks.load(std::memory_order_relaxed);
  account.waits = t.waits.load(std::memory_order_relaxed);
  account.waited_ns = t.waited_ns.load(std::memory_order_relaxed);
  account.busy_cpu_ns = t.busy_cpu_ns.load(std::memory_order_relaxed);
  account.idle_cpu_ns = t.idle_cpu_ns.load(std::memory_order_relaxed);
  account.longest_busy_burst_ns = t.longest_busy_burst_ns.load(std::memory_order_relaxed);
  return account;
}

}  // namespace kiln::runtime
