// The two intra-op runners, ThreadPool (tsan builds) and OpenMpRunner (the
// default, see openmp_runner.h), checked against the same contract: every
// index exactly once, small loops inline, nested and concurrent calls
// complete.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runtime/openmp_runner.h"
#include "runtime/thread_pool.h"

namespace kiln::runtime {
namespace {

using Factory = std::function<std::unique_ptr<kernels::ParallelRunner>(int)>;

struct RunnerKind {
  std::string name;
  Factory make;
};

class IntraOpRunnerTest : public ::testing::TestWithParam<RunnerKind> {
 protected:
  std::unique_ptr<kernels::ParallelRunner> Make(int threads) const { return GetParam().make(threads); }
};

TEST_P(IntraOpRunnerTest, CoversRangeExactlyOnce) {
  auto runner = Make(4);
  for (int64_t n : {1, 7, 64, 1000, 100003}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    runner->For(n, 10, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n=" << n << " i=" << i;
  }
}

TEST_P(IntraOpRunnerTest, SmallWorkRunsInline) {
  auto runner = Make(4);
  const auto caller = std::this_thread::get_id();
  bool inline_run = false;
  runner->For(5, 100, [&](int64_t, int64_t) { inline_run = std::this_thread::get_id() == caller; });
  EXPECT_TRUE(inline_run);
}

TEST_P(IntraOpRunnerTest, LargeWorkUsesSeveralThreads) {
  auto runner = Make(2);
  std::mutex mu;
  std::set<std::thread::id> seen;
  runner->For(2, 1, [&](int64_t, int64_t) {
    // Long enough that one thread cannot take both chunks before the other
    // starts.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::lock_guard<std::mutex> lock(mu);
    seen.insert(std::this_thread::get_id());
  });
  EXPECT_EQ(seen.size(), 2u);
}

TEST_P(IntraOpRunnerTest, NestedAndConcurrentCallsComplete) {
  auto runner = Make(3);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 20; ++rep) {
        runner->For(8, 1, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            runner->For(100, 10, [&](int64_t b2, int64_t e2) { total += e2 - b2; });
          }
        });
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(total.load(), 4 * 20 * 8 * 100);
}

TEST_P(IntraOpRunnerTest, SingleThread) {
  auto runner = Make(1);
  EXPECT_EQ(runner->num_threads(), 1);
  int64_t sum = 0;
  runner->For(1000, 1, [&](int64_t b, int64_t e) { sum += e - b; });
  EXPECT_EQ(sum, 1000);
}

INSTANTIATE_TEST_SUITE_P(
    Runners, IntraOpRunnerTest,
    ::testing::Values(RunnerKind{"ThreadPool", [](int n) { return std::make_unique<ThreadPool>(n); }},
                      RunnerKind{"OpenMpRunner", [](int n) { return std::make_unique<OpenMpRunner>(n); }}),
    [](const ::testing::TestParamInfo<RunnerKind>& info) { return info.param.name; });

}  // namespace
}  // namespace kiln::runtime
