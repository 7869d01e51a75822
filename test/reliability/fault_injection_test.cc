// Injected faults: allocation failures during a run, JIT compile errors,
// and slow compiles. A fault fails at most the request it hits (never one
// that does not depend on it), the next request succeeds, and nothing
// hangs: every blocking step runs under a watchdog.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "kiln/session.h"
#include "test/reliability/reliability_util.h"

namespace kiln::reliability {
namespace {

std::unique_ptr<Session> MakeSession(const std::shared_ptr<const Model>& model, SessionOptions options) {
  auto session = Session::Create(model, options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  return session.ok() ? std::move(session).value() : nullptr;
}

std::vector<float> Reference(const std::shared_ptr<const Model>& model, const std::vector<float>& x, int64_t batch) {
  SessionOptions options;
  options.tier = TierPolicy::kInterpreter;
  options.intra_op_threads = 1;
  auto session = MakeSession(model, options);
  auto y = RunBatch(*session, x, batch);
  EXPECT_TRUE(y.ok()) << y.status().ToString();
  return y.ok() ? *y : std::vector<float>{};
}

// An allocator stand-in for SessionOptions::before_allocate_hook: counts
// allocations and fails the one numbered `fail_at` (1-based; 0 = never).
struct FailNthAllocation {
  std::atomic<int> count{0};
  std::atomic<int> fail_at{0};

  std::function<Status(size_t)> Hook() {
    return [this](size_t bytes) -> Status {
      const int n = ++count;
      if (n == fail_at.load()) return ResourceExhausted("injected allocation failure of ", bytes, " bytes");
      return Status::Ok();
    };
  }
};

// (a) Every allocation a first run makes (planned intermediates as they
// grow, and the output) fails once in turn: Run reports kResourceExhausted,
// and the next Run on the same session succeeds with the right result.
TEST(FaultInjection, EachAllocationOfARunCanFailCleanly) {
  auto model = SiluMatMulErfModel();
  const int64_t batch = 6;
  const auto x = RandomFloats(batch * 64, 7, -3.f, 3.f);
  const auto expected = Reference(model, x, batch);

  // Count what one cold run allocates.
  FailNthAllocation counter;
  SessionOptions options;
  options.tier = TierPolicy::kInterpreter;
  options.intra_op_threads = 1;
  options.before_allocate_hook = counter.Hook();
  {
    auto session = MakeSession(model, options);
    ASSERT_TRUE(RunBatch(*session, x, batch).ok());
  }
  const int allocations = counter.count.load();
  ASSERT_GE(allocations, 2) << "expected intermediates and an output";

  for (int n = 1; n <= allocations; ++n) {
    FailNthAllocation injector;
    injector.fail_at = n;
    options.before_allocate_hook = injector.Hook();
    auto session = MakeSession(model, options);
    auto failed = RunBatch(*session, x, batch);
    ASSERT_FALSE(failed.ok()) << "allocation " << n;
    EXPECT_EQ(failed.status().code(), StatusCode::kResourceExhausted) << failed.status().ToString();
    EXPECT_NE(failed.status().message().find("injected allocation failure"), std::string::npos)
        << failed.status().ToString();
    auto retried = RunBatch(*session, x, batch);
    ASSERT_TRUE(retried.ok()) << "allocation " << n << ": " << retried.status().ToString();
    EXPECT_TRUE(AllCloseScaled(*retried, expected, 0.0)) << "allocation " << n;
    EXPECT_EQ(session->stats().runs, 1);  // the failed run does not count
  }
}

// (a) The same for compiled regions: once both regions run compiled (their
// buffers are warm, so only the output allocates), failing that allocation
// fails the run and the next compiled run is correct.
TEST(FaultInjection, AllocationFailureInACompiledRun) {
  auto model = SiluMatMulErfModel();
  const int64_t batch = 4;
  const auto x = RandomFloats(batch * 64, 8, -3.f, 3.f);
  const auto expected = Reference(model, x, batch);
  FailNthAllocation injector;
  SessionOptions options;
  options.tier = TierPolicy::kJit;       // compiles on the first call, runs compiled from the second
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  options.intra_op_threads = 1;
  options.before_allocate_hook = injector.Hook();
  auto session = MakeSession(model, options);
  ASSERT_TRUE(RunBatch(*session, x, batch).ok());
  ASSERT_TRUE(RunBatch(*session, x, batch).ok());
  // The second run is compiled in all three regions: the SiLU, the
  // MatMul's GEMM and the erf chain.
  int64_t compiled = 0;
  for (const RegionStats& r : session->stats().regions) compiled += r.compiled_calls;
  ASSERT_EQ(compiled, 3);

  // A run reuses output memory its caller released (OutputBufferPool), so
  // a warm run allocates nothing: hold one run's outputs, and the next one
  // has to allocate its own.
  auto held = session->Run({{"x", Tensor::View(DType::kFloat32, {batch, 64}, const_cast<float*>(x.data()))}});
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  injector.fail_at = injector.count.load() + 1;
  auto failed = RunBatch(*session, x, batch);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kResourceExhausted) << failed.status().ToString();
  auto retried = RunBatch(*session, x, batch);
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  EXPECT_TRUE(AllCloseScaled(*retried, expected, kRelTol));
}

// (a) The hook as an embedder's memory budget: a request too big for it is
// refused with kResourceExhausted while small ones keep running, also from
// other threads at the same time.
TEST(FaultInjection, AllocationBudgetRefusesOnlyTheRequestsOverIt) {
  auto model = SiluMatMulErfModel();
  constexpr size_t kBudget = 16 * 64 * sizeof(float);  // batch 16 fits, batch 64 does not
  SessionOptions options;
  options.intra_op_threads = 1;
  options.before_allocate_hook = [](size_t bytes) -> Status {
    if (bytes > kBudget) return ResourceExhausted("over budget: ", bytes, " bytes");
    return Status::Ok();
  };
  auto session = MakeSession(model, options);
  const auto small = RandomFloats(16 * 64, 9, -3.f, 3.f);
  const auto big = RandomFloats(64 * 64, 10, -3.f, 3.f);
  const auto expected_small = Reference(model, small, 16);
  std::atomic<int> small_failed{0};
  std::atomic<int> big_succeeded{0};
  RunWithWatchdog("budget", [&] {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int rep = 0; rep < 10; ++rep) {
          if ((t + rep) % 2 == 0) {
            auto y = RunBatch(*session, small, 16);
            if (!y.ok() || !AllCloseScaled(*y, expected_small, kRelTol)) ++small_failed;
          } else {
            auto y = RunBatch(*session, big, 64);
            if (y.ok()) {
              ++big_succeeded;
            } else {
              EXPECT_EQ(y.status().code(), StatusCode::kResourceExhausted) << y.status().ToString();
            }
          }
        }
      });
    }
    for (auto& th : threads) th.join();
  });
  EXPECT_EQ(small_failed.load(), 0);
  EXPECT_EQ(big_succeeded.load(), 0);
}

// (b) Every compile fails: requests still succeed (interpreted, exact), and
// the stats show each region as not compiled, each signature tried once.
TEST(FaultInjection, FailingCompilesLeaveRegionsInterpreted) {
  auto model = SiluMatMulErfModel();
  std::atomic<int> attempts{0};
  SessionOptions options;
  options.tier = TierPolicy::kAuto;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  options.intra_op_threads = 1;
  options.jit_hot_threshold = 1;
  options.jit_max_specializations = 2;
  options.jit_before_compile_hook = [&](int region) -> Status {
    ++attempts;
    return Internal("injected compile failure in region ", region);
  };
  auto session = MakeSession(model, options);
  const int64_t batches[] = {1, 2, 3, 4};
  RunWithWatchdog("failing compiles", [&] {
    for (int rep = 0; rep < 3; ++rep) {
      for (int64_t batch : batches) {
        const auto x = RandomFloats(batch * 64, static_cast<unsigned>(batch), -3.f, 3.f);
        auto y = RunBatch(*session, x, batch);
        ASSERT_TRUE(y.ok()) << y.status().ToString();
        EXPECT_TRUE(AllCloseScaled(*y, Reference(model, x, batch), 0.0));
      }
      session->WaitForCompiles();
    }
  });
  // Per elementwise region: two specializations and the generic version
  // were tried. The GEMM region (its batch is symbolic) tries the generic
  // version only.
  EXPECT_EQ(attempts.load(), 2 * 3 + 1);
  for (const RegionStats& r : session->stats().regions) {
    EXPECT_EQ(r.tier, "interp");
    EXPECT_EQ(r.specializations, 0);
    EXPECT_EQ(r.failed_compiles, r.kind == "gemm" ? 1 : 3) << r.kind;
    EXPECT_EQ(r.compiled_calls, 0);
    EXPECT_EQ(r.code_bytes, 0);
    EXPECT_EQ(r.interpreted_calls, 3 * 4);
  }
}

// (b) A failure confined to one region: the other still compiles and runs.
TEST(FaultInjection, CompileFailureInOneRegionDoesNotAffectTheOther) {
  auto model = SiluMatMulErfModel();
  SessionOptions options;
  options.tier = TierPolicy::kAuto;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  options.intra_op_threads = 1;
  options.jit_hot_threshold = 1;
  options.jit_before_compile_hook = [](int region) -> Status {
    return region == 0 ? Internal("injected compile failure") : Status::Ok();
  };
  auto session = MakeSession(model, options);
  const auto x = RandomFloats(3 * 64, 11, -3.f, 3.f);
  const auto expected = Reference(model, x, 3);
  RunWithWatchdog("one failing region", [&] {
    ASSERT_TRUE(RunBatch(*session, x, 3).ok());
    session->WaitForCompiles();
    // The first run after the compile verifies the code; the second runs it.
    ASSERT_TRUE(RunBatch(*session, x, 3).ok());
    auto y = RunBatch(*session, x, 3);
    ASSERT_TRUE(y.ok()) << y.status().ToString();
    EXPECT_TRUE(AllCloseScaled(*y, expected, kRelTol));
  });
  const auto stats = session->stats();
  ASSERT_EQ(stats.regions.size(), 3u);
  EXPECT_EQ(stats.regions[0].tier, "interp");
  EXPECT_EQ(stats.regions[0].failed_compiles, 1);
  for (size_t r = 1; r < stats.regions.size(); ++r) {
    EXPECT_EQ(stats.regions[r].tier, "jit") << stats.regions[r].kind;
    EXPECT_EQ(stats.regions[r].compiled_calls, 1) << stats.regions[r].kind;
  }
}

// A compile hook that blocks until the test releases it (bounded, so a
// broken test cannot hang the hook forever either).
class CompileGate {
 public:
  std::function<Status(int)> Hook() {
    return [this](int) -> Status {
      std::unique_lock<std::mutex> lock(mu_);
      ++entered_;
      cv_.notify_all();
      cv_.wait_for(lock, kHangTimeout, [this] { return released_; });
      ++finished_;
      return Status::Ok();
    };
  }
  // Waits until a compile is inside the hook.
  bool WaitEntered() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kHangTimeout, [this] { return entered_ > 0; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  int entered() {
    std::lock_guard<std::mutex> lock(mu_);
    return entered_;
  }
  int finished() {
    std::lock_guard<std::mutex> lock(mu_);
    return finished_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int entered_ = 0;
  int finished_ = 0;
  bool released_ = false;
};

SessionOptions BackgroundOptions(CompileGate& gate) {
  SessionOptions options;
  options.tier = TierPolicy::kAuto;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  options.intra_op_threads = 1;
  options.jit_hot_threshold = 1;
  options.jit_compile_threads = 1;
  options.jit_before_compile_hook = gate.Hook();
  return options;
}

// (c) While a compile is stuck, requests from several threads all complete
// (interpreted): the proof is ordering, not wall time — they finish while
// the compile has provably not returned.
TEST(FaultInjection, StuckCompileDoesNotBlockRuns) {
  auto model = SiluMatMulErfModel();
  CompileGate gate;
  auto session = MakeSession(model, BackgroundOptions(gate));
  const auto x = RandomFloats(5 * 64, 12, -3.f, 3.f);
  const auto expected = Reference(model, x, 5);
  ASSERT_TRUE(RunBatch(*session, x, 5).ok());  // queues both regions' compiles
  ASSERT_TRUE(gate.WaitEntered());
  std::atomic<int> bad{0};
  RunWithWatchdog("runs during a stuck compile", [&] {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int rep = 0; rep < 10; ++rep) {
          auto y = RunBatch(*session, x, 5);
          if (!y.ok() || !AllCloseScaled(*y, expected, kRelTol)) ++bad;
        }
      });
    }
    for (auto& th : threads) th.join();
  });
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(gate.finished(), 0) << "the compile returned before the runs finished";
  for (const RegionStats& r : session->stats().regions) EXPECT_EQ(r.compiled_calls, 0);

  gate.Release();
  RunWithWatchdog("compiles after release", [&] { session->WaitForCompiles(); });
  ASSERT_TRUE(RunBatch(*session, x, 5).ok());  // verifies the new code against the interpreter
  auto y = RunBatch(*session, x, 5);
  ASSERT_TRUE(y.ok());
  EXPECT_TRUE(AllCloseScaled(*y, expected, kRelTol));
  for (const RegionStats& r : session->stats().regions) EXPECT_EQ(r.compiled_calls, 1) << "region " << r.id;
}

// (c) Destroying a session while a compile is in flight waits for that one
// compile (it uses the session's JIT) and drops the compiles still queued:
// destruction is bounded by one compile, however many were queued.
TEST(FaultInjection, DestructionWaitsForTheRunningCompileAndDropsQueuedOnes) {
  auto model = SiluMatMulErfModel();
  CompileGate gate;
  auto session = MakeSession(model, BackgroundOptions(gate));
  // Three shapes x two regions = six compiles; one runs, five queue up.
  for (int64_t batch : {1, 2, 3}) ASSERT_TRUE(RunBatch(*session, RandomFloats(batch * 64, 1, -3.f, 3.f), batch).ok());
  ASSERT_TRUE(gate.WaitEntered());

  std::promise<void> destroyed;
  std::future<void> done = destroyed.get_future();
  std::thread destroyer([&] {
    session.reset();
    destroyed.set_value();
  });
  // Destruction cannot finish while the compile it must wait for is stuck.
  EXPECT_EQ(done.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  gate.Release();
  if (done.wait_for(kHangTimeout) != std::future_status::ready) {
    ADD_FAILURE() << "session destruction hung";
    std::_Exit(1);
  }
  destroyer.join();
  EXPECT_EQ(gate.entered(), 1) << "queued compiles ran during destruction";
  EXPECT_EQ(gate.finished(), 1);
}

// (c) The brief's variant with wall time: a compile that sleeps 300 ms.
// Destruction in the middle of it returns once that compile is done; runs
// meanwhile are not delayed by it (checked by ordering as above, never by
// a latency bound, which would flake on a loaded machine).
TEST(FaultInjection, DestructionDuringASlowCompileIsBounded) {
  auto model = SiluMatMulErfModel();
  std::atomic<int> started{0};
  std::atomic<int> returned{0};
  SessionOptions options;
  options.tier = TierPolicy::kAuto;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  options.intra_op_threads = 1;
  options.jit_hot_threshold = 1;
  options.jit_before_compile_hook = [&](int) -> Status {
    ++started;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ++returned;
    return Status::Ok();
  };
  for (int round = 0; round < 3; ++round) {
    auto session = MakeSession(model, options);
    const auto x = RandomFloats(2 * 64, 13, -3.f, 3.f);
    const int started_before = started.load();
    int runs_ok = 0;
    RunWithWatchdog("slow compile", [&] {
      ASSERT_TRUE(RunBatch(*session, x, 2).ok());  // queues both regions' compiles
      while (started.load() == started_before) std::this_thread::yield();
      // The first compile is sleeping (or just done); runs keep going.
      for (int rep = 0; rep < 5; ++rep) {
        if (RunBatch(*session, x, 2).ok()) ++runs_ok;
      }
      session.reset();
    });
    EXPECT_EQ(runs_ok, 5);
    EXPECT_EQ(started.load(), returned.load()) << "destruction returned while a compile was running";
  }
}

}  // namespace
}  // namespace kiln::reliability
