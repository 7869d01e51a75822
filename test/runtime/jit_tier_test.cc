// Tier tests: the same graph through the interpreter and the JIT tier, guard
// misses and specialization limits, compile failures, and concurrent runs
// while regions tier up.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <thread>
#include <vector>

#include "kiln/session.h"
#include "test/model_builder.h"
#include "test/tensors.h"
#include "test/tolerance.h"

namespace kiln {
namespace {

using testing::ExpectNearScaled;
using testing::OnnxModelBuilder;
using testing::RandomFloats;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

// SiLU, then a GELU-like chain, on [batch, 64]: two regions split by the
// MatMul in between, the first [batch, 64] -> [batch, 64]. The chain
// divides by 1.5, not sqrt(2), so the GELU fusion (then the MatMul epilogue
// fusion) leaves it for the JIT.
OnnxModelBuilder SiluMatMulGelu() {
  OnnxModelBuilder b;
  std::vector<float> w(64 * 64);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.37f * static_cast<float>(i)) * 0.1f;
  b.Input("x", kFloat, {-1, 64}, {"batch"})
      .FloatInit("w", {64, 64}, w)
      .FloatInit("sqrt2", {}, {1.5f})
      .FloatInit("one", {}, {1.f})
      .FloatInit("half", {}, {0.5f})
      .Output("y");
  b.Node("Sigmoid", {"x"}, {"s"});
  b.Node("Mul", {"x", "s"}, {"silu"});
  b.Node("MatMul", {"silu", "w"}, {"m"});
  b.Node("Div", {"m", "sqrt2"}, {"d"});
  b.Node("Erf", {"d"}, {"e"});
  b.Node("Add", {"e", "one"}, {"a"});
  b.Node("Mul", {"m", "a"}, {"g"});
  b.Node("Mul", {"g", "half"}, {"y"});
  return b;
}

std::shared_ptr<const Model> Load(const OnnxModelBuilder& b) {
  std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return *model;
}

std::vector<float> RunOnce(const Session& session, std::vector<float>& x, int64_t batch) {
  auto out = session.Run({{"x", Tensor::View(DType::kFloat32, {batch, 64}, x.data())}});
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return {};
  const Tensor& y = (*out)[0].tensor;
  return std::vector<float>(y.data<float>(), y.data<float>() + y.num_elements());
}

std::unique_ptr<Session> MakeSession(TierPolicy tier, SessionOptions options = {}) {
  options.tier = tier;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  options.intra_op_threads = 2;
  // The elementwise regions around the MatMul are what these tests count;
  // GEMM regions have their own tests (gemm_region_test.cc).
  options.jit_compile_gemm = false;
  auto session = Session::Create(Load(SiluMatMulGelu()), options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  return std::move(session).value();
}

TEST(JitTier, CompiledOutputsMatchInterpreter) {
  auto interp = MakeSession(TierPolicy::kInterpreter);
  auto jit = MakeSession(TierPolicy::kJit);
  for (int64_t batch : {1, 7, 128}) {
    auto x = RandomFloats(batch * 64, static_cast<unsigned>(batch), -3.f, 3.f);
    auto expected = RunOnce(*interp, x, batch);
    RunOnce(*jit, x, batch);  // interpreted, compiles (blocking policy)
    auto compiled = RunOnce(*jit, x, batch);
    ExpectNearScaled(compiled, expected, 1e-5);
  }
  SessionStats stats = jit->stats();
  ASSERT_EQ(stats.regions.size(), 2u);
  for (const RegionStats& r : stats.regions) {
    EXPECT_EQ(r.tier, "jit");
    EXPECT_EQ(r.specializations, 3);  // one per batch size
    EXPECT_EQ(r.compiled_calls, 3);
    EXPECT_GT(r.code_bytes, 0);
    EXPECT_GT(r.compile_ms, 0);
    // Each tier's calls are timed: three interpreted (the compiling call of
    // each batch size) and three compiled.
    EXPECT_GT(r.interpreted_ms, 0);
    EXPECT_GT(r.compiled_ms, 0);
  }
  EXPECT_TRUE(interp->stats().regions.empty());
}

TEST(JitTier, GuardMissDeoptsThenSpecializesThenGoesGeneric) {
  SessionOptions options;
  options.jit_max_specializations = 2;
  auto jit = MakeSession(TierPolicy::kJit, options);
  auto interp = MakeSession(TierPolicy::kInterpreter);
  // batch 4 compiles; batch 5 misses the guard (a deopt) and compiles a
  // second specialization; batch 6 is past the limit and compiles the
  // shape-generic version, which then also serves batches 9 and 1.
  const int64_t batches[] = {4, 4, 5, 5, 4, 6, 6, 6, 5, 9, 1};
  for (int64_t batch : batches) {
    auto x = RandomFloats(batch * 64, static_cast<unsigned>(batch), -3.f, 3.f);
    ExpectNearScaled(RunOnce(*jit, x, batch), RunOnce(*interp, x, batch), 1e-5);
  }
  for (const RegionStats& r : jit->stats().regions) {
    EXPECT_EQ(r.specializations, 3);  // two specialized, one generic
    // Interpreted: the first 4, 5 and 6; the 5 and 6 ran while code for
    // other signatures existed.
    EXPECT_EQ(r.interpreted_calls, 3);
    EXPECT_EQ(r.deopts, 2);
    EXPECT_EQ(r.compiled_calls, 8);
    EXPECT_EQ(r.failed_compiles, 0);
  }
}

TEST(JitTier, CompileFailureLeavesRegionInterpretedAndCorrect) {
  SessionOptions options;
  std::atomic<int> attempts{0};
  options.jit_before_compile_hook = [&](int) {
    ++attempts;
    return Internal("injected compile failure");
  };
  auto jit = MakeSession(TierPolicy::kJit, options);
  auto interp = MakeSession(TierPolicy::kInterpreter);
  for (int rep = 0; rep < 3; ++rep) {
    auto x = RandomFloats(8 * 64, 3, -3.f, 3.f);
    ExpectNearScaled(RunOnce(*jit, x, 8), RunOnce(*interp, x, 8), 0.0);
  }
  // Each region tried once and never again for the same signature.
  EXPECT_EQ(attempts.load(), 2);
  for (const RegionStats& r : jit->stats().regions) {
    EXPECT_EQ(r.tier, "interp");
    EXPECT_EQ(r.failed_compiles, 1);
    EXPECT_EQ(r.compiled_calls, 0);
    EXPECT_EQ(r.interpreted_calls, 3);
  }
}

TEST(JitTier, ConcurrentRunsStayCorrectWhileRegionsTierUp) {
  SessionOptions options;
  options.jit_hot_threshold = 2;
  options.jit_compile_threads = 1;
  auto session = MakeSession(TierPolicy::kAuto, options);
  auto interp = MakeSession(TierPolicy::kInterpreter);
  constexpr int kThreads = 8;
  std::vector<std::vector<float>> inputs, expected;
  for (int t = 0; t < kThreads; ++t) {
    const int64_t batch = 1 + t % 3;
    inputs.push_back(RandomFloats(batch * 64, static_cast<unsigned>(100 + t), -3.f, 3.f));
    expected.push_back(RunOnce(*interp, inputs.back(), batch));
  }
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const int64_t batch = 1 + t % 3;
      std::vector<float> x = inputs[static_cast<size_t>(t)];
      for (int rep = 0; rep < 60; ++rep) {
        if (!testing::AllCloseScaled(RunOnce(*session, x, batch), expected[static_cast<size_t>(t)], 1e-5)) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  session->WaitForCompiles();
  auto x = inputs[0];
  // The first call after a version is published verifies it (interpreted);
  // the second runs it.
  ExpectNearScaled(RunOnce(*session, x, 1), expected[0], 1e-5);
  ExpectNearScaled(RunOnce(*session, x, 1), expected[0], 1e-5);
  int64_t compiled_calls = 0;
  for (const RegionStats& r : session->stats().regions) {
    EXPECT_EQ(r.specializations, 3);  // batches 1, 2, 3
    compiled_calls += r.compiled_calls;
  }
  EXPECT_GT(compiled_calls, 0);
}

TEST(JitTier, TraceShowsTiersAndCompiles) {
  SessionOptions options;
  options.enable_tracing = true;
  auto session = MakeSession(TierPolicy::kJit, options);
  auto x = RandomFloats(2 * 64, 5, -3.f, 3.f);
  RunOnce(*session, x, 2);
  RunOnce(*session, x, 2);
  const std::string path = ::testing::TempDir() + "/kiln_trace.json";
  ASSERT_TRUE(session->WriteTrace(path).ok());
  std::ifstream in(path);
  std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"traceEvents\""), std::string::npos);
  EXPECT_NE(json.find("region 0 [interp]"), std::string::npos);  // first run
  EXPECT_NE(json.find("region 0 [jit]"), std::string::npos);     // second run
  EXPECT_NE(json.find("compile region 1 [2,64]"), std::string::npos) << json.substr(0, 2000);
  EXPECT_NE(json.find("\"MatMul"), std::string::npos);

  auto untraced = MakeSession(TierPolicy::kJit);
  EXPECT_EQ(untraced->WriteTrace(path).code(), StatusCode::kInvalidArgument);
}

// LayerNormalization then an exact GELU on [batch, 64]: one row-reduction
// region (rows of 64).
OnnxModelBuilder LayerNormGelu() {
  OnnxModelBuilder b(17);
  std::vector<float> gamma(64), beta(64);
  for (size_t i = 0; i < 64; ++i) {
    gamma[i] = 0.5f + 0.01f * static_cast<float>(i);
    beta[i] = std::cos(0.3f * static_cast<float>(i));
  }
  b.Input("x", kFloat, {-1, 64}, {"batch"})
      .FloatInit("gamma", {64}, gamma)
      .FloatInit("beta", {64}, beta)
      .FloatInit("sqrt2", {}, {1.41421356f})
      .FloatInit("one", {}, {1.f})
      .FloatInit("half", {}, {0.5f})
      .Output("y");
  b.Node("LayerNormalization", {"x", "gamma", "beta"}, {"ln"});
  b.Node("Div", {"ln", "sqrt2"}, {"d"});
  b.Node("Erf", {"d"}, {"e"});
  b.Node("Add", {"e", "one"}, {"a"});
  b.Node("Mul", {"ln", "a"}, {"m"});
  b.Node("Mul", {"m", "half"}, {"y"});
  return b;
}

TEST(JitTier, RowReductionRegionSpecializesThenGoesGeneric) {
  SessionOptions options;
  options.tier = TierPolicy::kJit;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  options.intra_op_threads = 2;
  options.jit_max_specializations = 2;
  auto jit = Session::Create(Load(LayerNormGelu()), options);
  ASSERT_TRUE(jit.ok()) << jit.status().ToString();
  options.tier = TierPolicy::kInterpreter;
  auto interp = Session::Create(Load(LayerNormGelu()), options);
  ASSERT_TRUE(interp.ok()) << interp.status().ToString();
  // 3 and 300 compile (300 rows are split across the two threads); 7 is
  // past the limit and compiles the shape-generic version (rows a runtime
  // parameter), which then serves 7, 9, 1 (one row: x and gamma read alike)
  // and 1000; 3 keeps its specialization.
  const int64_t batches[] = {3, 3, 300, 300, 7, 7, 9, 1, 1000, 3};
  for (int64_t batch : batches) {
    auto x = RandomFloats(batch * 64, static_cast<unsigned>(batch), -3.f, 3.f);
    ExpectNearScaled(RunOnce(**jit, x, batch), RunOnce(**interp, x, batch), 1e-5);
  }
  const SessionStats stats = (*jit)->stats();
  ASSERT_EQ(stats.regions.size(), 1u);
  const RegionStats& r = stats.regions[0];
  EXPECT_EQ(r.kind, "row_reduction");
  EXPECT_EQ(r.tier, "jit");
  EXPECT_EQ(r.specializations, 3);  // two specialized, one generic
  EXPECT_EQ(r.failed_compiles, 0);
  // The compiling calls (3, 300, 7) verify their code; the generic row code
  // is verified again on the first call of each other signature it plans
  // (9, 1, 1000), which the interpreter serves.
  EXPECT_EQ(r.compiled_calls, 4);
  EXPECT_EQ(r.interpreted_calls, 6);
  EXPECT_EQ(r.deopts, 2);
}

TEST(JitTier, InterpreterPolicyBuildsNoRegions) {
  auto session = MakeSession(TierPolicy::kInterpreter);
  auto x = RandomFloats(64, 1, -3.f, 3.f);
  RunOnce(*session, x, 1);
  EXPECT_TRUE(session->stats().regions.empty());
}

}  // namespace
}  // namespace kiln
