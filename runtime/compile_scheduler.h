// Paces background compiles against requests (SessionOptions::
// jit_compile_cpu_share). The compile thread calls YieldPoint() between
// small units of compile work (each optimisation pass, each code generation
// pass); the scheduler lets it go on at once while some core is idle, and
// while every core is serving it holds the compile to a share of one core:
// a token bucket that fills at `cpu_share` of wall time and drains by the
// CPU time the compile spends while the cores are busy. A compile that has
// used its share sleeps at the yield point until the bucket refills or a
// core goes idle.
//
// The share is a floor as well as a ceiling: the paced compile thread runs
// at normal priority, so while it is under its share the kernel gives it a
// core's fair part instead of starving it behind the request threads (what
// a low-priority thread suffers when every core serves). How much a request
// slows while a compile runs beside it, and how soon compiled code serves,
// are both set by the share.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <thread>

#include "graph/mutex.h"

namespace kiln::runtime {

class CompileScheduler {
 public:
  // What the scheduler reads and how it waits. Real() gives the process's
  // clocks; tests substitute a fake clock and activity.
  struct Environment {
    // Monotonic wall time, in nanoseconds.
    std::function<int64_t()> now_ns;
    // CPU time the calling thread has used, in nanoseconds.
    std::function<int64_t()> thread_cpu_ns;
    // Whether every core is computing a request right now.
    std::function<bool()> cores_busy;
    // When set, waiting calls this with the nanoseconds to wait instead of
    // sleeping (a fake clock advances by them); Stop() cannot cut it short.
    std::function<void(int64_t ns)> sleep;

    static Environment Real(std::function<bool()> cores_busy);
  };

  // What one compiling thread has been through, for logs and tests.
  struct Account {
    int64_t yield_points = 0;
    int64_t waits = 0;      // yield points that had to wait
    int64_t waited_ns = 0;  // wall time spent waiting
    // Compile CPU time spent while every core served (charged to the
    // share) and while some core was idle (free).
    int64_t busy_cpu_ns = 0;
    int64_t idle_cpu_ns = 0;
  };

  // Longest single wait: the scheduler looks again at least this often
  // whether a core has gone idle (nothing notifies it when a request ends).
  static constexpr int64_t kMaxWaitNs = 1'000'000;
  // The bucket holds at most cpu_share times this much CPU time: how far a
  // compile may run ahead of its share after the cores were idle. Short,
  // so that the compile's time beside a request is spread thinly over many
  // requests rather than taken from one.
  static constexpr int64_t kWindowNs = 2'000'000;

  // `cpu_share` is clamped to [0.01, 1].
  CompileScheduler(double cpu_share, Environment environment);
  CompileScheduler(const CompileScheduler&) = delete;
  CompileScheduler& operator=(const CompileScheduler&) = delete;

  // Called on a compiling thread between two units of its work. Returns at
  // once while some core is idle or the compile is within its share;
  // otherwise waits until it is back within its share, a core is idle, or
  // Stop() is called.
  void YieldPoint();
  // Every waiting and later YieldPoint() returns at once, so a session can
  // be destroyed without waiting for a paced compile's share.
  void Stop();

  // The calling thread's account so far (zeros for a thread that never
  // yielded).
  Account ThisThreadAccount() const;
  double cpu_share() const { return share_; }

 private:
  // Adds the share earned since the last update to the bucket (capped).
  void Refill(int64_t now_ns) KILN_REQUIRES(mu_);

  const double share_;
  const Environment env_;
  mutable Mutex mu_;
  CondVar stopped_cv_;
  bool stopped_ KILN_GUARDED_BY(mu_) = false;
  // CPU nanoseconds the compile may still spend while the cores are busy;
  // negative when it is over its share.
  double credit_ns_ KILN_GUARDED_BY(mu_);
  int64_t refilled_at_ns_ KILN_GUARDED_BY(mu_);
  // Whether the cores were busy at the last yield point: work since then
  // is charged if they were busy at either end.
  bool was_busy_ KILN_GUARDED_BY(mu_) = false;
  struct ThreadState {
    int64_t cpu_at_last_yield_ns = 0;
    Account account;
  };
  // One entry per compiling thread (a handful, for the tier's lifetime).
  std::map<std::thread::id, ThreadState> threads_ KILN_GUARDED_BY(mu_);
};

}  // namespace kiln::runtime
