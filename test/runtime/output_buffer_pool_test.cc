#include "runtime/output_buffer_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace kiln::runtime {
namespace {

Status AdmitAll(size_t) { return Status::Ok(); }

TEST(OutputBufferPool, ReusesAReleasedBufferOfAFittingSize) {
  auto pool = OutputBufferPool::Create(4);
  void* first = nullptr;
  {
    auto buffer = pool->Acquire(1000, AdmitAll);
    ASSERT_TRUE(buffer.ok()) << buffer.status().ToString();
    first = buffer->get();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
    std::memset(first, 0x5a, 1000);  // the whole requested size is usable
    EXPECT_EQ(pool->pooled_buffers(), 0u);
    EXPECT_EQ(pool->pooled_bytes(), 0u);
  }
  EXPECT_EQ(pool->pooled_buffers(), 1u);
  EXPECT_EQ(pool->pooled_bytes(), 1024u);  // 1000 rounded up to the 64-byte alignment
  // Same size, and a somewhat smaller one: the released buffer serves both.
  for (size_t bytes : {size_t{1000}, size_t{600}}) {
    auto again = pool->Acquire(bytes, AdmitAll);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->get(), first) << bytes;
  }
}

TEST(OutputBufferPool, NeverHandsOutABufferStillHeld) {
  auto pool = OutputBufferPool::Create(4);
  auto held = pool->Acquire(256, AdmitAll);
  ASSERT_TRUE(held.ok());
  auto other = pool->Acquire(256, AdmitAll);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(held->get(), other->get());
}

TEST(OutputBufferPool, SmallRequestsDoNotPinLargeBuffers) {
  auto pool = OutputBufferPool::Create(4);
  void* large = nullptr;
  {
    auto buffer = pool->Acquire(1 << 20, AdmitAll);
    ASSERT_TRUE(buffer.ok());
    large = buffer->get();
  }
  auto small = pool->Acquire(1000, AdmitAll);
  ASSERT_TRUE(small.ok());
  EXPECT_NE(small->get(), large);
  EXPECT_EQ(pool->pooled_buffers(), 1u);  // the large one waits for a large request
}

TEST(OutputBufferPool, KeepsAtMostItsLimitAndFreesTheRest) {
  auto pool = OutputBufferPool::Create(2);
  {
    std::vector<std::shared_ptr<void>> buffers;
    for (int i = 0; i < 5; ++i) buffers.push_back(*pool->Acquire(128, AdmitAll));
  }
  EXPECT_EQ(pool->pooled_buffers(), 2u);  // the other three were freed (ASan checks they were)
}

TEST(OutputBufferPool, AskedBeforeEachNewAllocationOnly) {
  auto pool = OutputBufferPool::Create(4);
  int asked = 0;
  auto count = [&](size_t bytes) {
    ++asked;
    EXPECT_EQ(bytes, 512u);
    return Status::Ok();
  };
  { auto b = pool->Acquire(512, count); }
  { auto b = pool->Acquire(512, count); }  // reused: nothing new to admit
  EXPECT_EQ(asked, 1);
  auto refuse = [](size_t) { return ResourceExhausted("over the limit"); };
  auto held = pool->Acquire(512, refuse);  // the released buffer needs no admission
  ASSERT_TRUE(held.ok());
  auto refused = pool->Acquire(512, refuse);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(pool->Acquire(0, AdmitAll).ok());
}

TEST(OutputBufferPool, BuffersMayOutliveThePool) {
  std::shared_ptr<void> survivor;
  {
    auto pool = OutputBufferPool::Create(4);
    survivor = *pool->Acquire(4096, AdmitAll);
    { auto released = pool->Acquire(4096, AdmitAll); }  // pooled when the pool dies: freed by it
  }
  std::memset(survivor.get(), 1, 4096);  // still valid; freed on reset (ASan checks)
  survivor.reset();
}

TEST(OutputBufferPool, ReleasesFromOtherThreadsWhileAcquiring) {
  auto pool = OutputBufferPool::Create(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&pool, t] {
      for (int i = 0; i < 2000; ++i) {
        auto buffer = pool->Acquire(64 * static_cast<size_t>(1 + (i + t) % 3), AdmitAll);
        ASSERT_TRUE(buffer.ok());
        // Filled while held, then checked after a yield: had another
        // thread been handed the same buffer it would have overwritten it.
        unsigned char* bytes = static_cast<unsigned char*>(buffer->get());
        const unsigned char mark = static_cast<unsigned char>(t * 64 + i % 64);
        std::memset(bytes, mark, 64);
        std::this_thread::yield();
        for (int k = 0; k < 64; ++k) ASSERT_EQ(bytes[k], mark);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_LE(pool->pooled_buffers(), 8u);
}

}  // namespace
}  // namespace kiln::runtime
