// ThreadTicker: ticks arrive on the thread that started them, as often as
// the tick function asks, never after the ticker is gone, and never take
// over a signal the process handles itself.
#include "runtime/thread_ticker.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace kiln::runtime {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

pid_t ThisTid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

struct TickLog {
  std::atomic<int> ticks{0};
  std::atomic<pid_t> last_tid{0};
  // What each tick returns: the delay to the next one (<= 0 stops).
  int64_t next_ns = 200'000;
};

int64_t LogTick(void* context) {
  auto& log = *static_cast<TickLog*>(context);
  log.last_tid.store(ThisTid());
  log.ticks.fetch_add(1);
  return log.next_ns;
}

// Keeps the thread busy (ticks come on the wall clock, whatever it does)
// until `done` or the deadline.
template <typename Done>
void SpinUntil(Done done, milliseconds limit) {
  const auto deadline = steady_clock::now() + limit;
  while (!done() && steady_clock::now() < deadline) {
  }
}

TEST(ThreadTickerTest, TicksArriveOnTheThreadThatStartedThem) {
  TickLog log;
  std::atomic<pid_t> ticked_thread{0};
  std::thread worker([&] {
    ticked_thread = ThisTid();
    StatusOr<std::unique_ptr<ThreadTicker>> ticker = ThreadTicker::Start(milliseconds(1), LogTick, &log);
    ASSERT_TRUE(ticker.ok()) << ticker.status().ToString();
    SpinUntil([&] { return log.ticks.load() >= 5; }, milliseconds(5000));
  });
  worker.join();
  EXPECT_GE(log.ticks.load(), 5);
  EXPECT_EQ(log.last_tid.load(), ticked_thread.load());
  EXPECT_NE(log.last_tid.load(), ThisTid());
}

TEST(ThreadTickerTest, ATickThatAsksForNoMoreIsTheLast) {
  TickLog log;
  log.next_ns = 0;
  {
    StatusOr<std::unique_ptr<ThreadTicker>> ticker = ThreadTicker::Start(milliseconds(1), LogTick, &log);
    ASSERT_TRUE(ticker.ok()) << ticker.status().ToString();
    SpinUntil([&] { return log.ticks.load() >= 1; }, milliseconds(5000));
    ASSERT_EQ(log.ticks.load(), 1);
    SpinUntil([] { return false; }, milliseconds(20));
    EXPECT_EQ(log.ticks.load(), 1);
  }
}

TEST(ThreadTickerTest, NoTickAfterTheTickerIsDestroyed) {
  TickLog log;
  log.next_ns = 50'000;
  {
    StatusOr<std::unique_ptr<ThreadTicker>> ticker = ThreadTicker::Start(std::chrono::microseconds(50), LogTick, &log);
    ASSERT_TRUE(ticker.ok()) << ticker.status().ToString();
    SpinUntil([&] { return log.ticks.load() >= 3; }, milliseconds(5000));
  }
  const int ticks = log.ticks.load();
  SpinUntil([] { return false; }, milliseconds(20));
  EXPECT_EQ(log.ticks.load(), ticks);
}

void ForeignHandler(int) {}

TEST(ThreadTickerTest, RefusesASignalTheProcessHandlesItself) {
  const int signal = ThreadTicker::TickSignal();
  struct sigaction saved {};
  ASSERT_EQ(sigaction(signal, nullptr, &saved), 0);
  struct sigaction foreign {};
  foreign.sa_handler = ForeignHandler;
  sigemptyset(&foreign.sa_mask);
  ASSERT_EQ(sigaction(signal, &foreign, nullptr), 0);
  TickLog log;
  StatusOr<std::unique_ptr<ThreadTicker>> ticker = ThreadTicker::Start(milliseconds(1), LogTick, &log);
  ASSERT_FALSE(ticker.ok());
  EXPECT_EQ(ticker.status().code(), StatusCode::kUnsupported);
  // Still the process's handler.
  struct sigaction now {};
  ASSERT_EQ(sigaction(signal, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, &ForeignHandler);
  ASSERT_EQ(sigaction(signal, &saved, nullptr), 0);
}

TEST(ThreadTickerTest, RefusesAFirstTickNotInTheFuture) {
  TickLog log;
  EXPECT_EQ(ThreadTicker::Start(std::chrono::nanoseconds(0), LogTick, &log).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::runtime
