// Interrupts one thread when it asks to be, wherever it is: a POSIX timer
// on the monotonic clock whose signal goes to that thread alone
// (SIGEV_THREAD_ID), and whose handler calls a function on it that says
// when to tick next.
//
// The compile scheduler uses it to look at a compile between its yield
// points: LLVM's longest units of work (instruction selection or register
// allocation of a big function, building an LLJIT, linking) run for
// milliseconds without one, and a compile thread that has taken a
// request's core keeps it until it sleeps or the scheduler tick preempts it
// (4 ms at HZ=250). A CPU-time timer (CLOCK_THREAD_CPUTIME_ID) would say
// "this thread has run for 200 us" more directly, but the kernel checks
// CPU-time timers only at the scheduler tick, so it cannot fire sooner than
// the preemption it is meant to beat; monotonic timers are high resolution.
//
// A tick is not free: a timer interrupt and a signal delivery, ~30 us of
// the thread's CPU on a virtual machine. Hence one-shot ticks, each
// setting the next: often while it matters, rarely otherwise.
//
// The signal is TickSignal(), a real-time signal. Its handler is installed
// on the first Start() while the signal has its default disposition; when
// the process has a handler of its own for it, Start() fails and the
// caller does without ticks (kiln never replaces another handler).
#pragma once

#include <time.h>

#include <chrono>
#include <memory>

#include "kiln/status.h"

namespace kiln::runtime {

class ThreadTicker {
 public:
  // Called on the ticked thread from a signal handler: it may use only
  // async-signal-safe functions (no locks, no allocation, no logging;
  // atomics, clock_gettime and nanosleep are fine). The signal is blocked
  // while it runs, so it is never re-entered by a tick. Returns the
  // nanoseconds until the next tick; <= 0 stops ticking.
  using TickFunction = int64_t (*)(void* context);

  // The signal the ticks arrive as.
  static int TickSignal();

  // Ticks the calling thread `first_tick` from now, then as each tick
  // says, until the ticker is destroyed, which must happen on the same
  // thread. Fails when the signal belongs to someone else or the timer
  // cannot be created.
  static StatusOr<std::unique_ptr<ThreadTicker>> Start(std::chrono::nanoseconds first_tick, TickFunction tick,
                                                       void* context);
  // Stops the timer and discards a tick still pending, so that `tick` is
  // never called after this returns.
  ~ThreadTicker();
  ThreadTicker(const ThreadTicker&) = delete;
  ThreadTicker& operator=(const ThreadTicker&) = delete;

  // Called by the signal handler: the tick, then the timer set for the
  // next one. Async-signal-safe.
  void Tick() const;

 private:
  ThreadTicker(TickFunction tick, void* context) : tick_(tick), context_(context) {}
  // Sets the one tick to come `ns` from now (timer_settime is
  // async-signal-safe). False when the timer refuses.
  bool Arm(int64_t ns) const;

  const TickFunction tick_;
  void* const context_;
  timer_t timer_{};
};

}  // namespace kiln::runtime
