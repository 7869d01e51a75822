// CompileScheduler's policy on a fake clock: a compile "runs" by advancing
// its thread's CPU time and the wall clock, "waits" by advancing the wall
// clock only, and the cores are busy when the test says so.
#include "runtime/compile_scheduler.h"

#include <gtest/gtest.h>

#include <sched.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace kiln::runtime {
namespace {

constexpr int64_t kMs = 1'000'000;

struct FakeMachine {
  int64_t now_ns = 0;
  int64_t cpu_ns = 0;
  bool busy = false;
  int sleeps = 0;
  // Called after each fake sleep; a test may end the load there.
  std::function<void()> after_sleep;

  CompileScheduler::Environment Environment() {
    CompileScheduler::Environment env;
    env.now_ns = [this] { return now_ns; };
    env.thread_cpu_ns = [this] { return cpu_ns; };
    env.cores_busy = [this] { return busy; };
    env.sleep = [this](int64_t ns) {
      EXPECT_GT(ns, 0);
      EXPECT_LE(ns, CompileScheduler::kMaxWaitNs);
      now_ns += ns;
      ++sleeps;
      if (after_sleep) after_sleep();
    };
    return env;
  }

  // One unit of compile work on a core of its own: `ns` of CPU and wall
  // time, then a yield point.
  void Work(CompileScheduler& scheduler, int64_t ns) {
    cpu_ns += ns;
    now_ns += ns;
    scheduler.YieldPoint();
  }
};

TEST(CompileSchedulerTest, CompilesFreelyWhileACoreIsIdle) {
  FakeMachine machine;
  CompileScheduler scheduler(0.1, machine.Environment());
  scheduler.YieldPoint();
  for (int i = 0; i < 100; ++i) machine.Work(scheduler, kMs);
  const CompileScheduler::Account account = scheduler.ThisThreadAccount();
  EXPECT_EQ(account.yield_points, 101);
  EXPECT_EQ(account.waits, 0);
  EXPECT_EQ(machine.sleeps, 0);
  EXPECT_EQ(account.idle_cpu_ns, 100 * kMs);
  EXPECT_EQ(account.busy_cpu_ns, 0);
  EXPECT_EQ(machine.now_ns, 100 * kMs);  // no time lost to pauses
}

TEST(CompileSchedulerTest, HoldsTheCompileToItsShareWhileEveryCoreIsBusy) {
  for (double share : {0.05, 0.25, 0.5}) {
    SCOPED_TRACE(share);
    FakeMachine machine;
    machine.busy = true;
    CompileScheduler scheduler(share, machine.Environment());
    scheduler.YieldPoint();
    constexpr int kUnits = 400;
    constexpr int64_t kUnitNs = kMs / 4;
    for (int i = 0; i < kUnits; ++i) machine.Work(scheduler, kUnitNs);
    const CompileScheduler::Account account = scheduler.ThisThreadAccount();
    EXPECT_EQ(account.busy_cpu_ns, kUnits * kUnitNs);
    EXPECT_GT(account.waits, 0);
    // Every compile nanosecond is matched by its share of wall time, less
    // the bucket's burst and at most one pause's overshoot.
    const double used = static_cast<double>(machine.cpu_ns) / static_cast<double>(machine.now_ns);
    EXPECT_NEAR(used, share, 0.02 * share + 0.002);
    EXPECT_EQ(account.waited_ns, machine.now_ns - machine.cpu_ns);
  }
}

TEST(CompileSchedulerTest, GuaranteesProgressUnderConstantLoad) {
  // The cores never go idle: every yield point still returns, after a
  // bounded wait, so a compile of any length finishes.
  FakeMachine machine;
  machine.busy = true;
  CompileScheduler scheduler(0.01, machine.Environment());
  scheduler.YieldPoint();
  constexpr int64_t kCompileNs = 20 * kMs;
  for (int64_t done = 0; done < kCompileNs; done += kMs) machine.Work(scheduler, kMs);
  // 20 ms of compile at 1% of a core: about 2 s of wall time, not more
  // (less the burst the bucket held at the start).
  EXPECT_LE(machine.now_ns, static_cast<int64_t>(kCompileNs / 0.01) + 10 * kMs);
  EXPECT_GE(machine.now_ns, static_cast<int64_t>((kCompileNs - CompileScheduler::kBurstNs) / 0.01) - 10 * kMs);
}

TEST(CompileSchedulerTest, ResumesAtOnceWhenACoreGoesIdle) {
  FakeMachine machine;
  machine.busy = true;
  CompileScheduler scheduler(0.1, machine.Environment());
  scheduler.YieldPoint();
  // A long unit puts the compile far over its share (100 ms of CPU: 1 s
  // of pauses at 10%), but the requests end after the first pause.
  machine.after_sleep = [&machine] { machine.busy = false; };
  machine.Work(scheduler, 100 * kMs);
  EXPECT_EQ(machine.sleeps, 1);
  const CompileScheduler::Account account = scheduler.ThisThreadAccount();
  EXPECT_EQ(account.waits, 1);
  EXPECT_LE(account.waited_ns, CompileScheduler::kMaxWaitNs);
  // With the core idle, further work is free.
  machine.after_sleep = nullptr;
  for (int i = 0; i < 10; ++i) machine.Work(scheduler, kMs);
  EXPECT_EQ(machine.sleeps, 1);
  EXPECT_EQ(scheduler.ThisThreadAccount().idle_cpu_ns, 10 * kMs);
}

TEST(CompileSchedulerTest, ChargesWorkThatEndsAsTheCoresFreeUp) {
  // Work that began beside busy cores competed with requests, even if
  // they are idle by its end.
  FakeMachine machine;
  machine.busy = true;
  CompileScheduler scheduler(0.5, machine.Environment());
  scheduler.YieldPoint();
  machine.busy = false;
  machine.Work(scheduler, 3 * kMs);
  EXPECT_EQ(scheduler.ThisThreadAccount().busy_cpu_ns, 3 * kMs);
  machine.Work(scheduler, 3 * kMs);
  EXPECT_EQ(scheduler.ThisThreadAccount().idle_cpu_ns, 3 * kMs);
}

TEST(CompileSchedulerTest, IdleTimeBanksOnlyAShortBurst) {
  // Hours of idle cores do not let a compile then run unpaced beside
  // requests: the bucket holds at most kBurstNs, whatever the share.
  for (double share : {0.1, 0.5, 0.9}) {
    SCOPED_TRACE(share);
    FakeMachine machine;
    CompileScheduler scheduler(share, machine.Environment());
    scheduler.YieldPoint();
    machine.now_ns += 3600'000 * kMs;
    machine.busy = true;
    machine.Work(scheduler, CompileScheduler::kBurstNs / 2);  // within the burst
    EXPECT_EQ(scheduler.ThisThreadAccount().waits, 0);
    // A unit of `ns` earns share * ns while it runs, so it gets ahead of its
    // share by (1 - share) * ns: here twice the burst.
    const auto ns = static_cast<int64_t>(2 * CompileScheduler::kBurstNs / (1 - share));
    machine.Work(scheduler, ns);
    EXPECT_EQ(scheduler.ThisThreadAccount().waits, 1);
  }
}

TEST(CompileSchedulerTest, CreditsShortenAPauseByWhatTheShareWouldHaveNeeded) {
  // Request time saved by compiled code lets the compile spend as much CPU
  // on top of its share: at a 25% share, 0.5 ms saved is 2 ms less pause.
  constexpr double kShare = 0.25;
  constexpr int64_t kCreditNs = kMs / 2;
  int64_t waited_ns[2] = {0, 0};
  int64_t credited_ns[2] = {0, 0};
  for (int credited = 0; credited < 2; ++credited) {
    FakeMachine machine;
    machine.busy = true;
    CompileScheduler scheduler(kShare, machine.Environment());
    scheduler.YieldPoint();
    // Credited by a request thread while the compile is paused.
    machine.after_sleep = [&] {
      if (credited && machine.sleeps == 1) scheduler.Credit(kCreditNs);
    };
    machine.Work(scheduler, 10 * kMs);
    waited_ns[credited] = scheduler.ThisThreadAccount().waited_ns;
    credited_ns[credited] = scheduler.credited_ns();
  }
  EXPECT_GT(waited_ns[0], 10 * kMs);
  EXPECT_EQ(waited_ns[0] - waited_ns[1], static_cast<int64_t>(kCreditNs / kShare));
  EXPECT_EQ(credited_ns[0], 0);
  EXPECT_EQ(credited_ns[1], kCreditNs);
}

TEST(CompileSchedulerTest, CreditsNeverBankMoreThanABurst) {
  // However much compiled code saved before, a compile beside busy cores
  // still pauses after about kBurstNs: credits only shorten pauses.
  FakeMachine machine;
  CompileScheduler scheduler(0.5, machine.Environment());
  scheduler.YieldPoint();
  machine.busy = true;
  scheduler.Credit(1000 * kMs);
  scheduler.Credit(0);
  scheduler.Credit(-kMs);
  machine.Work(scheduler, CompileScheduler::kBurstNs / 2);
  EXPECT_EQ(scheduler.ThisThreadAccount().waits, 0);
  machine.Work(scheduler, 4 * CompileScheduler::kBurstNs);
  EXPECT_EQ(scheduler.ThisThreadAccount().waits, 1);
  EXPECT_EQ(scheduler.credited_ns(), 0);
}

TEST(CompileSchedulerTest, StopReleasesAWaitingCompileAndLaterYieldPoints) {
  // Real waiting (no fake sleep) on a frozen clock: without Stop the
  // compile would wait forever, as on a session destroyed while requests
  // keep every core busy.
  std::atomic<int64_t> cpu_ns{0};
  CompileScheduler::Environment env;
  env.now_ns = [] { return int64_t{0}; };
  env.thread_cpu_ns = [&cpu_ns] { return cpu_ns.load(); };
  env.cores_busy = [] { return true; };
  CompileScheduler scheduler(0.1, env);
  std::promise<void> waiting;
  std::thread compile([&] {
    scheduler.YieldPoint();
    cpu_ns = 50 * kMs;
    waiting.set_value();
    scheduler.YieldPoint();  // over its share: waits
    scheduler.YieldPoint();  // stopped: returns at once
  });
  waiting.get_future().wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  scheduler.Stop();
  compile.join();
  // The main thread never yielded.
  EXPECT_EQ(scheduler.ThisThreadAccount().yield_points, 0);
}

// Ticks (BoundBursts) on real clocks: the compile is one long unit of
// work with no yield point in it, as instruction selection of a big
// function is.

int64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Spins until the calling thread has used `ns` more CPU time.
void BurnCpu(int64_t ns) {
  const int64_t start = ThreadCpuNs();
  while (ThreadCpuNs() - start < ns) {
  }
}

int64_t WallNs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - since).count();
}

TEST(CompileSchedulerTest, TicksPaceAUnitOfWorkWithoutYieldPoints) {
  // Without ticks nothing would look at the unit until it ended: it would
  // run unpaced beside busy cores, taking a request's core for as long.
  constexpr double kShare = 0.25;
  constexpr int64_t kUnitNs = 20 * kMs;
  CompileScheduler scheduler(kShare, CompileScheduler::Environment::Real([] { return true; }));
  const auto start = std::chrono::steady_clock::now();
  {
    CompileScheduler::BurstBound bound = scheduler.BoundBursts();
    if (!bound.ticking()) GTEST_SKIP() << "no ticks: the tick signal has a handler of the process's own";
    BurnCpu(kUnitNs);
  }
  const int64_t wall_ns = WallNs(start);
  const CompileScheduler::Account account = scheduler.ThisThreadAccount();
  EXPECT_EQ(account.yield_points, 0);
  EXPECT_GT(account.ticks, 0);
  EXPECT_GT(account.waits, 0);
  // Held to its share: the unit cannot finish sooner than its CPU time at
  // the share allows, less the bucket and the last tick's burst.
  EXPECT_GE(static_cast<double>(wall_ns), (kUnitNs - 2 * CompileScheduler::kBurstNs) / kShare);
  EXPECT_GE(account.busy_cpu_ns, kUnitNs - 2 * CompileScheduler::kBurstNs);
  EXPECT_EQ(account.idle_cpu_ns, 0);
  // Looked at in bursts far shorter than the unit (a tick comes 0.2 ms of
  // wall time after each resume; 4 ms is one scheduler tick of slack).
  EXPECT_GT(account.longest_busy_burst_ns, 0);
  EXPECT_LT(account.longest_busy_burst_ns, 4 * kMs);
}

TEST(CompileSchedulerTest, PausesMoveTheCompileAcrossItsCpusAndTheMaskComesBack) {
  // Left where it last ran, a compile would take its whole share from one
  // core's requests; each pause beside busy cores moves it to the next CPU.
  cpu_set_t own;
  ASSERT_EQ(sched_getaffinity(0, sizeof(own), &own), 0);
  if (CPU_COUNT(&own) < 2) GTEST_SKIP() << "one CPU: nothing to spread over";
  CompileScheduler scheduler(0.25, CompileScheduler::Environment::Real([] { return true; }));
  cpu_set_t ran_on;
  CPU_ZERO(&ran_on);
  {
    CompileScheduler::BurstBound bound = scheduler.BoundBursts();
    if (!bound.ticking()) GTEST_SKIP() << "no ticks: the tick signal has a handler of the process's own";
    const int64_t start = ThreadCpuNs();
    while (ThreadCpuNs() - start < 20 * kMs) {
      const int cpu = sched_getcpu();
      if (cpu >= 0) CPU_SET(cpu, &ran_on);
    }
  }
  EXPECT_GT(scheduler.ThisThreadAccount().waits, 1);
  EXPECT_GE(CPU_COUNT(&ran_on), 2);
  cpu_set_t after;
  ASSERT_EQ(sched_getaffinity(0, sizeof(after), &after), 0);
  EXPECT_TRUE(CPU_EQUAL(&own, &after));
}

TEST(CompileSchedulerTest, TicksAreSparseAndNeverPauseWhileACoreIsIdle) {
  CompileScheduler scheduler(0.25, CompileScheduler::Environment::Real([] { return false; }));
  const auto start = std::chrono::steady_clock::now();
  {
    CompileScheduler::BurstBound bound = scheduler.BoundBursts();
    if (!bound.ticking()) GTEST_SKIP() << "no ticks: the tick signal has a handler of the process's own";
    BurnCpu(10 * kMs);
  }
  const int64_t wall_ns = WallNs(start);
  const CompileScheduler::Account account = scheduler.ThisThreadAccount();
  EXPECT_GT(account.ticks, 0);
  EXPECT_EQ(account.waits, 0);
  EXPECT_EQ(account.busy_cpu_ns, 0);
  // The first tick after kBurstNs, then one per kIdleTickNs.
  EXPECT_LE(account.ticks, wall_ns / CompileScheduler::kIdleTickNs + 2);
}

TEST(CompileSchedulerTest, StopReleasesACompilePausedByATick) {
  // The wall clock is frozen, so once over its share the compile would
  // wait forever, as beside requests that never end.
  std::atomic<bool> paused{false};
  CompileScheduler::Environment env = CompileScheduler::Environment::Real([] { return true; });
  env.now_ns = [] { return int64_t{0}; };
  env.sleep = [&paused](int64_t ns) {
    paused = true;
    const timespec duration{0, static_cast<long>(ns)};
    nanosleep(&duration, nullptr);
  };
  CompileScheduler scheduler(0.25, env);
  std::atomic<bool> ticking{true};
  std::thread compile([&] {
    CompileScheduler::BurstBound bound = scheduler.BoundBursts();
    ticking = bound.ticking();
    if (ticking) BurnCpu(5 * kMs);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (ticking && !paused && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (ticking) EXPECT_TRUE(paused.load());
  scheduler.Stop();
  compile.join();
  if (!ticking) GTEST_SKIP() << "no ticks: the tick signal has a handler of the process's own";
}

}  // namespace
}  // namespace kiln::runtime
