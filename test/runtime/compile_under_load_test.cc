// Latency-aware compiles in a session (SessionOptions::jit_compile_cpu_share):
// under continuous load on every core the paced compile thread still tiers
// up every region, and a session destroyed while a compile waits for its
// share does not wait for it. Run counts are bounded generously; nothing
// here asserts a time.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "kiln/session.h"
#include "runtime/thread_budget.h"
#include "test/model_builder.h"

namespace kiln {
namespace {

using testing::OnnxModelBuilder;

constexpr int64_t kCols = 256;

// x [batch, 256] -> Tanh, Mul, Add, Softmax -> MatMul by a constant ->
// Sigmoid, Mul, Add: a row-reduction region and a GEMM region for the
// compile thread.
std::shared_ptr<const Model> ChainModel() {
  OnnxModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1, kCols}, {"batch"}).Output("y");
  b.FloatInit("half", {}, {0.5f}).FloatInit("one", {}, {1.0f}).FloatInit("three", {}, {3.0f});
  std::vector<float> weight(static_cast<size_t>(kCols * kCols));
  for (size_t i = 0; i < weight.size(); ++i) weight[i] = std::cos(0.01f * static_cast<float>(i)) / kCols;
  b.FloatInit("w", {kCols, kCols}, weight);
  b.Node("Tanh", {"x"}, {"t"});
  b.Node("Mul", {"t", "half"}, {"m"});
  b.Node("Add", {"m", "one"}, {"a"});
  OnnxModelBuilder::IntAttr(b.Node("Softmax", {"a"}, {"s"}), "axis", -1);
  b.Node("MatMul", {"s", "w"}, {"p"});
  b.Node("Sigmoid", {"p"}, {"g"});
  b.Node("Mul", {"g", "three"}, {"h"});
  b.Node("Add", {"h", "x"}, {"y"});
  const std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

Tensor Input(int64_t batch) {
  Tensor x = *Tensor::Allocate(DType::kFloat32, {batch, kCols});
  for (int64_t i = 0; i < x.num_elements(); ++i) x.data<float>()[i] = std::sin(0.37f * static_cast<float>(i));
  return x;
}

bool AllRegionsCompiled(const Session& session) {
  const std::vector<RegionStats> regions = session.stats().regions;
  return std::all_of(regions.begin(), regions.end(), [](const RegionStats& r) { return r.specializations > 0; });
}

int Cores() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

// One request thread per core, each sending requests back to back, so every
// core serves for the whole test; they stop once every region is compiled or
// after `max_runs` each. Returns the most runs any thread sent.
int64_t LoadUntilTieredUp(const Session& session, const Tensor& x, int64_t max_runs) {
  std::atomic<bool> done{false};
  std::atomic<int64_t> most_runs{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < Cores(); ++t) {
    threads.emplace_back([&] {
      int64_t runs = 0;
      while (!done.load() && runs < max_runs) {
        if (!session.Run({{"x", x}}).ok()) ++failures;
        ++runs;
        if (AllRegionsCompiled(session)) done = true;
      }
      int64_t seen = most_runs.load();
      while (runs > seen && !most_runs.compare_exchange_weak(seen, runs)) {
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  return most_runs.load();
}

void ExpectSameAsInterpreter(const Session& session, const Tensor& x) {
  SessionOptions interp_options;
  interp_options.tier = TierPolicy::kInterpreter;
  auto interp = Session::Create(ChainModel(), interp_options);
  ASSERT_TRUE(interp.ok()) << interp.status().ToString();
  auto want = (*interp)->Run({{"x", x}});
  auto got = session.Run({{"x", x}});
  ASSERT_TRUE(want.ok() && got.ok());
  const Tensor& w = (*want)[0].tensor;
  const Tensor& g = (*got)[0].tensor;
  ASSERT_EQ(w.num_elements(), g.num_elements());
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    ASSERT_NEAR(g.data<float>()[i], w.data<float>()[i], 1e-4f + 1e-4f * std::abs(w.data<float>()[i])) << i;
  }
}

class CompileUnderLoadTest : public ::testing::TestWithParam<double> {};

TEST_P(CompileUnderLoadTest, EveryRegionTiersUpWhileEveryCoreServes) {
  SessionOptions options;
  options.intra_op_threads = 1;
  options.jit_compile_cpu_share = GetParam();
  options.jit_keep_faster_tier = false;  // kept or dropped must not depend on timing
  auto session = Session::Create(ChainModel(), options);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  const Session& s = **session;
  ASSERT_GE(s.stats().regions.size(), 2u);
  const Tensor x = Input(64);
  // Generous: at a share of 1%, a compile of ~50 ms of CPU needs ~5 s of
  // busy cores, tens of thousands of these sub-millisecond runs at most.
  constexpr int64_t kMaxRuns = 200'000;
  const int64_t runs = LoadUntilTieredUp(s, x, kMaxRuns);
  ASSERT_TRUE(AllRegionsCompiled(s)) << "after " << runs << " runs per thread";
  for (const RegionStats& r : s.stats().regions) EXPECT_EQ(r.failed_compiles, 0) << r.description;
  ExpectSameAsInterpreter(s, x);
}

// 0: the unpaced nice-10 thread, for comparison; 0.01: the smallest share
// (progress must still be guaranteed); 0.25: the default; 1: never paced.
INSTANTIATE_TEST_SUITE_P(Shares, CompileUnderLoadTest, ::testing::Values(0.0, 0.01, 0.25, 1.0));

TEST(CompileUnderLoad, DestroyingTheSessionDoesNotWaitForAPacedCompile) {
  // The budget is the session's only view of the cores: a compile hook
  // takes every thread of it, so the cores read busy from then on and the
  // compile is paced at 1% of a core, with nothing to end the load.
  std::shared_ptr<ThreadBudget> budget = ThreadBudget::Create(Cores());
  std::promise<void> compile_started;
  std::once_flag take_budget;
  int taken = 0;
  SessionOptions options;
  options.intra_op_threads = 1;
  options.thread_budget = budget;
  options.jit_compile_cpu_share = 0.01;
  options.jit_before_compile_hook = [&](int) {
    std::call_once(take_budget, [&] {
      while (taken < budget->threads()) {
        taken += *budget->impl().Acquire(budget->threads(), std::chrono::steady_clock::time_point::max(), nullptr);
      }
      compile_started.set_value();
    });
    return Status::Ok();
  };
  auto session = Session::Create(ChainModel(), options);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  const Tensor x = Input(64);
  for (int i = 0; i < options.jit_hot_threshold; ++i) ASSERT_TRUE((*session)->Run({{"x", x}}).ok());
  compile_started.get_future().wait();
  EXPECT_EQ(budget->in_use(), budget->threads());
  session->reset();  // returns without the compile's ~100x-stretched time
  budget->impl().Release(taken);
  EXPECT_EQ(budget->in_use(), 0);
}

}  // namespace
}  // namespace kiln
