// PreparationQueue: jobs run in order on one thread; WaitIdle returns once
// all ran; destruction waits for the running job, drops the rest, and
// destroys every job's captures; jobs see the runs' OpenMP thread count.
#include "runtime/preparation_queue.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace kiln::runtime {
namespace {

TEST(PreparationQueue, RunsJobsInOrderAndWaitIdleSeesThemAll) {
  std::vector<int> order;
  std::vector<std::function<void()>> jobs;
  for (int i = 0; i < 5; ++i) jobs.push_back([&order, i] { order.push_back(i); });
  PreparationQueue queue(std::move(jobs), 1);
  queue.WaitIdle();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  queue.WaitIdle();  // idle stays idle
}

// oneDNN primitives built by a job run with the thread count they were
// built for, so the job must build them for the session's runs.
TEST(PreparationQueue, JobsSeeTheRunsOpenMpThreadCount) {
  for (int threads : {1, 3}) {
    int seen = 0;
    std::vector<std::function<void()>> jobs;
    jobs.push_back([&seen] { seen = omp_get_max_threads(); });
    PreparationQueue queue(std::move(jobs), threads);
    queue.WaitIdle();
    EXPECT_EQ(seen, threads);
  }
}

TEST(PreparationQueue, NoJobsIsIdleAtOnce) {
  PreparationQueue queue({}, 1);
  queue.WaitIdle();
}

TEST(PreparationQueue, DestructionWaitsForTheRunningJobAndDropsTheRest) {
  std::atomic<bool> started{false}, finished{false};
  std::atomic<int> later_ran{0};
  auto capture = std::make_shared<int>(7);
  std::weak_ptr<int> watch = capture;
  {
    std::vector<std::function<void()>> jobs;
    jobs.push_back([&] {
      started = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      finished = true;
    });
    for (int i = 0; i < 3; ++i) jobs.push_back([&later_ran, capture] { later_ran += *capture > 0 ? 1 : 0; });
    capture.reset();
    PreparationQueue queue(std::move(jobs), 1);
    while (!started) std::this_thread::yield();
  }
  EXPECT_TRUE(finished) << "the running job finished before the queue went";
  EXPECT_EQ(later_ran, 0) << "jobs queued behind it were dropped";
  EXPECT_TRUE(watch.expired()) << "dropped jobs' captures were destroyed";
}

}  // namespace
}  // namespace kiln::runtime
