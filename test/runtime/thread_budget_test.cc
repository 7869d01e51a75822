// ThreadBudget: the grant policy, waiting with a deadline or cancellation,
// and a cap that holds across sessions and calling threads.
#include "runtime/thread_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "kiln/session.h"
#include "test/model_builder.h"

namespace kiln {
namespace {

using testing::OnnxModelBuilder;
using Clock = std::chrono::steady_clock;
constexpr auto kNoDeadline = Clock::time_point::max();

TEST(ThreadBudget, IdleBudgetGrantsTheWholeTeamAndTakesItBack) {
  auto budget = ThreadBudget::Create(4);
  ThreadBudget::Impl& impl = budget->impl();
  auto first = impl.Acquire(3, kNoDeadline, nullptr);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 3);
  auto second = impl.Acquire(3, kNoDeadline, nullptr);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, 1);  // another run computes: one thread
  EXPECT_EQ(budget->in_use(), 4);
  impl.Release(*first);
  impl.Release(*second);
  EXPECT_EQ(budget->in_use(), 0);
  EXPECT_EQ(budget->peak_in_use(), 4);
  // Asking for more than the budget holds gets the budget.
  auto all = impl.Acquire(16, kNoDeadline, nullptr);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, 4);
  impl.Release(*all);
}

TEST(ThreadBudget, BesideAnotherRunATeamOfOneEvenWithThreadsFree) {
  auto budget = ThreadBudget::Create(8);
  ThreadBudget::Impl& impl = budget->impl();
  auto first = impl.Acquire(2, kNoDeadline, nullptr);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 2);
  auto second = impl.Acquire(2, kNoDeadline, nullptr);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, 1);
  impl.Release(*first);
  impl.Release(*second);
}

TEST(ThreadBudget, WaitingEndsAtTheDeadline) {
  auto budget = ThreadBudget::Create(1);
  auto held = budget->impl().Acquire(1, kNoDeadline, nullptr);
  ASSERT_TRUE(held.ok());
  auto waited = budget->impl().Acquire(1, Clock::now() + std::chrono::milliseconds(5), nullptr);
  ASSERT_FALSE(waited.ok());
  EXPECT_EQ(waited.status().code(), StatusCode::kDeadlineExceeded);
  budget->impl().Release(*held);
}

TEST(ThreadBudget, WaitingEndsWhenCancelled) {
  auto budget = ThreadBudget::Create(1);
  auto held = budget->impl().Acquire(1, kNoDeadline, nullptr);
  ASSERT_TRUE(held.ok());
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    cancel.store(true);
  });
  auto waited = budget->impl().Acquire(1, kNoDeadline, &cancel);
  canceller.join();
  ASSERT_FALSE(waited.ok());
  EXPECT_EQ(waited.status().code(), StatusCode::kCancelled);
  budget->impl().Release(*held);
}

TEST(ThreadBudget, AWaiterGetsTheThreadsAReleaseFrees) {
  auto budget = ThreadBudget::Create(2);
  auto held = budget->impl().Acquire(2, kNoDeadline, nullptr);
  ASSERT_TRUE(held.ok());
  std::atomic<int> granted{0};
  std::thread waiter([&] {
    auto got = budget->impl().Acquire(2, kNoDeadline, nullptr);
    granted = got.ok() ? *got : -1;
    if (got.ok()) budget->impl().Release(*got);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  budget->impl().Release(*held);
  waiter.join();
  EXPECT_EQ(granted.load(), 2);
}

// y = Tanh(x @ w): enough work per run for runs to overlap.
std::shared_ptr<const Model> SmallMatMul() {
  OnnxModelBuilder b;
  std::vector<float> w(128 * 128, 0.01f);
  b.Input("x", onnx::TensorProto::FLOAT, {32, 128}).FloatInit("w", {128, 128}, w).Output("y");
  b.Node("MatMul", {"x", "w"}, {"t"});
  b.Node("Tanh", {"t"}, {"y"});
  const std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

// 8 request threads over two sessions that share a budget of 2: never more
// than 2 threads compute at once, and every result is right.
TEST(ThreadBudget, CapHoldsAcrossSessionsAndCallingThreads) {
  auto model = SmallMatMul();
  ASSERT_NE(model, nullptr);
  auto budget = ThreadBudget::Create(2);
  SessionOptions options;
  options.intra_op_threads = 2;
  options.thread_budget = budget;
  auto a = Session::Create(model, options);
  auto b = Session::Create(model, options);
  ASSERT_TRUE(a.ok() && b.ok());
  Tensor x = *Tensor::Allocate(DType::kFloat32, {32, 128});
  for (int64_t i = 0; i < x.num_elements(); ++i) x.data<float>()[i] = 1.0f;
  const float expected = std::tanh(128 * 0.01f);
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 8; ++t) {
    callers.emplace_back([&, t] {
      const Session& s = t % 2 == 0 ? **a : **b;
      for (int r = 0; r < 25; ++r) {
        auto out = s.Run({{"x", x}});
        if (!out.ok() || std::abs((*out)[0].tensor.data<float>()[7] - expected) > 1e-5f) ++wrong;
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_LE(budget->peak_in_use(), 2);
  EXPECT_GE(budget->peak_in_use(), 1);
  EXPECT_EQ(budget->in_use(), 0);
}

}  // namespace
}  // namespace kiln
