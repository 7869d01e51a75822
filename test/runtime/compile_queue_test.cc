// CompileQueue: no worker thread until the first job (a session creates its
// queue before any region is hot); jobs then run and WaitIdle sees them
// done; destruction drops queued jobs, and a queue that never got a job
// is destroyed without ever having started a thread.
#include "runtime/compile_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

namespace kiln::runtime {
namespace {

// Threads of this process (Linux: one entry per thread in /proc/self/task).
int ThreadCount() {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    (void)entry;
    ++count;
  }
  return count;
}

TEST(CompileQueue, StartsNoThreadUntilTheFirstJob) {
  const int before = ThreadCount();
  CompileQueue queue(2);
  EXPECT_EQ(ThreadCount(), before);
  queue.WaitIdle();  // nothing queued: returns at once
  std::atomic<int> ran{0};
  queue.Enqueue([&ran] { ++ran; });
  queue.Enqueue([&ran] { ++ran; });
  queue.WaitIdle();
  EXPECT_EQ(ran.load(), 2);
  // At least: a sanitizer's runtime may start a thread of its own by now.
  EXPECT_GE(ThreadCount(), before + 2);
}

TEST(CompileQueue, AQueueThatNeverRanAJobIsDestroyedQuietly) {
  const int before = ThreadCount();
  { CompileQueue queue(3, /*low_priority=*/false); }
  EXPECT_EQ(ThreadCount(), before);
}

TEST(CompileQueue, LaterJobsRunOnTheSameWorkers) {
  CompileQueue queue(1);
  std::thread::id first, second;
  queue.Enqueue([&first] { first = std::this_thread::get_id(); });
  queue.WaitIdle();
  const int threads = ThreadCount();
  queue.Enqueue([&second] { second = std::this_thread::get_id(); });
  queue.WaitIdle();
  EXPECT_EQ(first, second);
  EXPECT_EQ(ThreadCount(), threads);
}

}  // namespace
}  // namespace kiln::runtime
