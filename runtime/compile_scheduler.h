// Paces background compiles against requests (SessionOptions::
// jit_compile_cpu_share). While some core is idle a compile runs freely;
// while every core is serving, the scheduler holds it to a share of one
// core: a token bucket that fills at `cpu_share` of wall time and drains by
// the CPU time the compile spends while the cores are busy. A compile that
// has used its share sleeps until the bucket refills or a core goes idle.
//
// The scheduler looks at a compile at two kinds of points:
// - yield points, which the compile thread calls between small units of
//   work (each optimisation pass, each code generation pass);
// - ticks (BoundBursts), a timer signal on the compiling thread, wherever
//   it is. Some units of LLVM's work run for milliseconds without a yield
//   point (instruction selection of a big function, building the LLJIT,
//   linking). A compile thread that has taken a request's core keeps it
//   until it sleeps or the scheduler tick preempts it (4 ms at HZ=250), so
//   without ticks a request beside such a unit is slowed by that much at
//   once. While every core serves, a tick comes kBurstNs after the compile
//   last resumed; otherwise every kIdleTickNs, to notice the cores filling.
// With ticks, and a bucket that holds at most kBurstNs, a compile beside
// busy cores runs in bursts of about kBurstNs (2 kBurstNs after the cores
// were idle), each followed by a pause that keeps it to its share: the
// slowdown it costs requests is spread over many of them instead of
// falling on a few. Shorter bursts would spread it more thinly, but each
// burst costs the compile a tick and a wake-up (~50 us on a virtual
// machine).

// A bound compile also moves to the next of its thread's CPUs at each pause
// (while every core serves), so that its share is taken from every core's
// requests in turn: left to itself the kernel wakes it on the core it last
// ran on, and the requests of that one core lose the whole share (a 25%
// share made one request thread's calls 1.33x slower and left the other's
// alone).
//
// Compiled code pays for the compiles after it (Credit): while some region
// already runs compiled, each of its calls saves the request the
// difference between its interpreted and compiled time, and the compile
// may spend that much CPU on top of its share. The requests then take no
// longer than they would have interpreted, while the regions compiled
// first speed up the rest of a tier-up. A credit shortens the compile's
// pauses; it never fills the bucket past kBurstNs, so bursts stay short.
//
// The share is a floor as well as a ceiling: the paced compile thread runs
// at normal priority, so while it is under its share the kernel gives it a
// core's fair part instead of starving it behind the request threads (what
// a low-priority thread suffers when every core serves). How much a request
// slows while a compile runs beside it, and how soon compiled code serves,
// are both set by the share.
//
// Pausing is async-signal-safe (atomics, clock reads and nanosleep), since
// ticks pause the thread from a signal handler. A pause can fall while the
// compile holds a lock inside LLVM or the allocator. Request threads take
// LLVM's locks only to free dropped code, and the compile thread's
// allocator arena only to free large blocks it allocated, so at worst one
// of them rarely waits out a pause (< 1 ms).
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include "graph/mutex.h"

namespace kiln::runtime {

class ThreadTicker;

class CompileScheduler {
  struct ThreadState;  // below

 public:
  // What the scheduler reads and how it waits. Real() gives the process's
  // clocks; tests substitute a fake clock and activity. With ticks
  // (BoundBursts) each function is called from a signal handler too, so
  // it must be async-signal-safe (Real()'s are; `cores_busy` should load an
  // atomic).
  struct Environment {
    // Monotonic wall time, in nanoseconds.
    std::function<int64_t()> now_ns;
    // CPU time the calling thread has used, in nanoseconds.
    std::function<int64_t()> thread_cpu_ns;
    // Whether every core is computing a request right now.
    std::function<bool()> cores_busy;
    // When set, waiting calls this with the nanoseconds to wait instead of
    // sleeping (a fake clock advances by them).
    std::function<void(int64_t ns)> sleep;

    static Environment Real(std::function<bool()> cores_busy);
  };

  // What one compiling thread has been through, for logs and tests.
  struct Account {
    int64_t yield_points = 0;
    int64_t ticks = 0;      // timer ticks that looked at the compile
    int64_t waits = 0;      // yield points and ticks that had to wait
    int64_t waited_ns = 0;  // wall time spent waiting
    // Compile CPU time spent while every core served (charged to the
    // share) and while some core was idle (free).
    int64_t busy_cpu_ns = 0;
    int64_t idle_cpu_ns = 0;
    // The most CPU time charged at one look (yield point or tick): the
    // longest a request beside the compile can have lost to it at once.
    int64_t longest_busy_burst_ns = 0;
  };

  // While it lives, its thread is ticked (see BoundBursts). Destroy it on
  // the thread that made it, before the scheduler.
  class BurstBound {
   public:
    BurstBound();
    BurstBound(BurstBound&&) noexcept;
    BurstBound& operator=(BurstBound&&) noexcept;
    ~BurstBound();
    // False when the thread is paced at its yield points only.
    bool ticking() const { return ticker_ != nullptr; }

   private:
    friend class CompileScheduler;
    ThreadState* thread_ = nullptr;  // whose CPUs to give back
    std::unique_ptr<ThreadTicker> ticker_;
  };

  // Longest single wait: the scheduler looks again at least this often
  // whether a core has gone idle (nothing notifies it when a request ends)
  // or Stop() was called.
  static constexpr int64_t kMaxWaitNs = 1'000'000;
  // The most CPU time the bucket holds (how far a compile may run ahead of
  // its share after the cores were idle, whatever the share), and the wall
  // time from a bound compile's resuming beside busy cores to its next
  // tick: short, so that no single request loses much to one burst.
  static constexpr int64_t kBurstNs = 200'000;
  // Ticks while some core is idle, or after Stop().
  static constexpr int64_t kIdleTickNs = 1'000'000;
  // CPUs a bound compile spreads its bursts over, at most.
  static constexpr int kMaxSpreadCpus = 256;

  // `cpu_share` is clamped to [0.01, 1].
  CompileScheduler(double cpu_share, Environment environment);
  ~CompileScheduler();
  CompileScheduler(const CompileScheduler&) = delete;
  CompileScheduler& operator=(const CompileScheduler&) = delete;

  // Called on a compiling thread between two units of its work. Returns at
  // once while some core is idle or the compile is within its share;
  // otherwise waits until it is back within its share, a core is idle, or
  // Stop() is called.
  void YieldPoint();
  // Paces the calling thread between its yield points as well, for as long
  // as the returned bound lives: each tick does what a yield
  // point does. When ticks are unavailable (the tick signal has a handler
  // of the process's own, or no timer can be made) the bound does nothing
  // and yield points alone pace the thread; the first such failure is
  // logged.
  BurstBound BoundBursts();
  // Credits the compile with `saved_ns` of request time that compiled code
  // saved (see above). Called by request threads; a clock read and, while
  // the compile is paused, one atomic update. Callers skip it while nothing
  // compiles.
  void Credit(int64_t saved_ns);
  // Request time credited so far that shortened a pause or filled the
  // bucket (less what the bucket's cap turned away).
  int64_t credited_ns() const { return credited_ns_.load(std::memory_order_relaxed); }
  // Every waiting and later YieldPoint() and tick returns at once (a wait
  // in progress ends within kMaxWaitNs), so a session can be destroyed
  // without waiting for a paced compile's share.
  void Stop();

  // The calling thread's account so far (zeros for a thread that never
  // yielded or was bound).
  Account ThisThreadAccount() const;
  double cpu_share() const { return share_; }

 private:
  // One compiling thread. Its fields are touched by that thread only, but
  // from both its ordinary code and its tick handler, hence atomics.
  struct ThreadState {
    CompileScheduler* scheduler = nullptr;
    // Set while the thread is in Pace(): a tick landing in a yield point's
    // pause leaves the pacing to it.
    std::atomic<bool> pacing{false};
    std::atomic<int64_t> cpu_at_last_charge_ns{0};
    std::atomic<int64_t> yield_points{0};
    std::atomic<int64_t> ticks{0};
    std::atomic<int64_t> waits{0};
    std::atomic<int64_t> waited_ns{0};
    std::atomic<int64_t> busy_cpu_ns{0};
    std::atomic<int64_t> idle_cpu_ns{0};
    std::atomic<int64_t> longest_busy_burst_ns{0};
    // Spreading over the CPUs (BoundBursts): the thread's own CPU mask, the
    // CPUs in it, which one it moves to next, and whether it is pinned to
    // one now. Set before the ticker starts; used by the thread only.
    cpu_set_t own_cpus{};
    int cpus[kMaxSpreadCpus] = {};
    int cpu_count = 0;
    int next_cpu = 0;
    bool pinned = false;
  };
  // Pins the thread to its next CPU (a pause beside busy cores), or gives
  // it its own mask back. Async-signal-safe (a system call).
  static void PinToNextCpu(ThreadState& thread);
  static void Unpin(ThreadState& thread);

  // The calling thread's state, made at its first call (so its CPU time
  // before that is not charged).
  ThreadState& ThisThread();
  // What a yield point or tick does. Async-signal-safe.
  void Pace(ThreadState& thread);
  // Waits until the compile is back within its share, a core is idle or
  // Stop() is called. Async-signal-safe.
  void Wait(ThreadState& thread, int64_t now_ns);
  void Sleep(int64_t ns) const;
  // A tick: paces, then says when the next one is due.
  static int64_t OnTick(void* thread_state);

  const double share_;
  // Wall time over which the bucket fills up: kBurstNs / share_.
  const int64_t fill_ns_;
  const Environment env_;
  std::atomic<bool> stopped_{false};
  // The bucket, as the wall time at which the compile's charged CPU time
  // exactly matches its share (a "virtual finishing time"): the compile is
  // over its share while this lies in the future, and the bucket is full
  // when it lies fill_ns_ or more in the past. One atomic, so ticks update
  // it without a lock.
  std::atomic<int64_t> within_share_at_ns_;
  // Whether the cores were busy at the last look: work since then is
  // charged if they were busy at either end.
  std::atomic<bool> was_busy_{false};
  std::atomic<bool> reported_no_ticks_{false};
  std::atomic<int64_t> credited_ns_{0};
  mutable Mutex mu_;
  // One entry per compiling thread (a handful, for the tier's lifetime);
  // entries never move or go away while the scheduler lives.
  std::map<std::thread::id, std::unique_ptr<ThreadState>> threads_ KILN_GUARDED_BY(mu_);
};

}  // namespace kiln::runtime
