// Shadow verification (SessionOptions::jit_verify_calls): compiled code
// serves no request before it has computed what the interpreter computes on
// its first calls. SessionOptions::jit_test_perturb_ir turns the first fadd
// of every compiled module into an fsub, so the code is wrong: it must never
// serve, and each wrong version counts as a verify failure.
#include "runtime/shadow_verification.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>
#include <vector>

#include "kiln/session.h"
#include "runtime/output_comparison.h"
#include "test/model_builder.h"
#include "test/tensors.h"

namespace kiln {
namespace {

using testing::OnnxModelBuilder;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

// (x + bias) * x on [rows, 32]: one elementwise region whose only fadd is
// the Add.
OnnxModelBuilder AddMul() {
  OnnxModelBuilder b;
  std::vector<float> bias(32);
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.5f + 0.1f * static_cast<float>(i);
  b.Input("x", kFloat, {-1, 32}, {"rows"}).FloatInit("bias", {32}, bias).Output("y");
  b.Node("Add", {"x", "bias"}, {"a"});
  b.Node("Mul", {"a", "x"}, {"y"});
  return b;
}

// Softmax(2 x) on [rows, 16]: a row region; its sum of exponentials adds.
OnnxModelBuilder ScaledSoftmax() {
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {-1, 16}, {"rows"}).FloatInit("scale", {}, {2.f}).Output("y");
  b.Node("Mul", {"x", "scale"}, {"scaled"});
  b.Node("Softmax", {"scaled"}, {"y"});
  return b;
}

std::shared_ptr<const Model> Load(const OnnxModelBuilder& b) {
  const std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

std::unique_ptr<Session> MakeSession(std::shared_ptr<const Model> model, TierPolicy tier, bool perturb,
                                     int verify_calls = 1, int max_specializations = 4) {
  SessionOptions options;
  options.tier = tier;
  options.intra_op_threads = 1;
  options.jit_keep_faster_tier = false;  // every call that may run compiled does
  options.jit_verify_calls = verify_calls;
  options.jit_test_perturb_ir = perturb;
  options.jit_max_specializations = max_specializations;
  options.enable_tracing = true;
  auto session = Session::Create(std::move(model), options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  return session.ok() ? std::move(session).value() : nullptr;
}

std::vector<float> RunOnce(const Session& session, std::vector<float>& x, int64_t rows, int64_t cols) {
  auto out = session.Run({{"x", Tensor::View(DType::kFloat32, {rows, cols}, x.data())}});
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return {};
  const Tensor& y = (*out)[0].tensor;
  return std::vector<float>(y.data<float>(), y.data<float>() + y.num_elements());
}

bool BitwiseEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::string Trace(const Session& session) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/shadow_verification_trace.json";
  EXPECT_TRUE(session.WriteTrace(path).ok());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every output equals the interpreter's bit for bit (the interpreter served
// it), for TierPolicy::kJit (compile and verify on the first call) and
// kAuto (compiled in the background, verified on the next call).
TEST(ShadowVerification, PerturbedCodeNeverServes) {
  std::shared_ptr<const Model> model = Load(AddMul());
  ASSERT_NE(model, nullptr);
  auto reference = MakeSession(model, TierPolicy::kInterpreter, false);
  for (TierPolicy tier : {TierPolicy::kJit, TierPolicy::kAuto}) {
    SCOPED_TRACE(tier == TierPolicy::kJit ? "kJit" : "kAuto");
    auto session = MakeSession(model, tier, /*perturb=*/true);
    ASSERT_NE(session, nullptr);
    std::vector<float> x = testing::RandomFloats(4 * 32, 7, -2.f, 2.f);
    const std::vector<float> want = RunOnce(*reference, x, 4, 32);
    for (int run = 0; run < 8; ++run) {
      EXPECT_TRUE(BitwiseEqual(RunOnce(*session, x, 4, 32), want)) << "run " << run;
      session->WaitForCompiles();
    }
    const RegionStats stats = session->stats().regions.at(0);
    EXPECT_EQ(stats.verify_failures, 1);
    EXPECT_EQ(stats.compiled_calls, 0);
    EXPECT_EQ(stats.specializations, 0);
    EXPECT_EQ(stats.tier, "interp");
    EXPECT_EQ(stats.failed_compiles, 0);
    EXPECT_EQ(stats.deopts, 0);  // interpreted by choice
    const std::string trace = Trace(*session);
    EXPECT_NE(trace.find("verify region 0 "), std::string::npos);
    EXPECT_NE(trace.find("(FAILED: largest difference"), std::string::npos);
  }
}

// The check above means something only if the hook really breaks the code:
// with verification off, the perturbed code serves, and is wrong.
TEST(ShadowVerification, WithoutVerificationThePerturbedCodeServesWrongResults) {
  std::shared_ptr<const Model> model = Load(AddMul());
  ASSERT_NE(model, nullptr);
  auto reference = MakeSession(model, TierPolicy::kInterpreter, false);
  auto session = MakeSession(model, TierPolicy::kJit, /*perturb=*/true, /*verify_calls=*/0);
  ASSERT_NE(session, nullptr);
  std::vector<float> x = testing::RandomFloats(4 * 32, 7, -2.f, 2.f);
  const std::vector<float> want = RunOnce(*reference, x, 4, 32);
  RunOnce(*session, x, 4, 32);  // compiles
  EXPECT_FALSE(BitwiseEqual(RunOnce(*session, x, 4, 32), want));
  EXPECT_EQ(session->stats().regions.at(0).compiled_calls, 1);
  EXPECT_EQ(session->stats().regions.at(0).verify_failures, 0);
}

// Correct code passes and then serves; the cost is the verification calls.
TEST(ShadowVerification, CorrectCodeServesAfterItsVerificationCalls) {
  std::shared_ptr<const Model> model = Load(AddMul());
  ASSERT_NE(model, nullptr);
  std::vector<float> x = testing::RandomFloats(4 * 32, 7, -2.f, 2.f);
  {
    // kJit: the compiling call verifies, so the next call runs compiled.
    auto session = MakeSession(model, TierPolicy::kJit, false);
    ASSERT_NE(session, nullptr);
    for (int run = 0; run < 3; ++run) RunOnce(*session, x, 4, 32);
    const RegionStats stats = session->stats().regions.at(0);
    EXPECT_EQ(stats.verify_failures, 0);
    EXPECT_EQ(stats.interpreted_calls, 1);
    EXPECT_EQ(stats.compiled_calls, 2);
    EXPECT_NE(Trace(*session).find("(passed)"), std::string::npos);
  }
  {
    // kAuto, three verification calls: hot after two calls, compiled in
    // the background, then three calls served by the interpreter while
    // checking, then compiled code.
    auto session = MakeSession(model, TierPolicy::kAuto, false, /*verify_calls=*/3);
    ASSERT_NE(session, nullptr);
    for (int run = 0; run < 2; ++run) RunOnce(*session, x, 4, 32);
    session->WaitForCompiles();
    for (int run = 0; run < 5; ++run) RunOnce(*session, x, 4, 32);
    const RegionStats stats = session->stats().regions.at(0);
    EXPECT_EQ(stats.verify_failures, 0);
    EXPECT_EQ(stats.interpreted_calls, 2 + 3);
    EXPECT_EQ(stats.compiled_calls, 2);
  }
}

// Shape-generic row code is verified per signature it plans; wrong code
// is dropped at its first signature and serves none.
TEST(ShadowVerification, GenericRowCodeIsVerifiedPerSignature) {
  std::shared_ptr<const Model> model = Load(ScaledSoftmax());
  ASSERT_NE(model, nullptr);
  auto reference = MakeSession(model, TierPolicy::kInterpreter, false);
  for (bool perturb : {false, true}) {
    SCOPED_TRACE(perturb ? "perturbed" : "correct");
    // No specializations: the first hot signature compiles generic code.
    auto session = MakeSession(model, TierPolicy::kJit, perturb, 1, /*max_specializations=*/0);
    ASSERT_NE(session, nullptr);
    for (int64_t rows : {3, 5, 3, 5, 7}) {
      std::vector<float> x = testing::RandomFloats(rows * 16, 11, -3.f, 3.f);
      const std::vector<float> want = RunOnce(*reference, x, rows, 16);
      const std::vector<float> got = RunOnce(*session, x, rows, 16);
      if (perturb) EXPECT_TRUE(BitwiseEqual(got, want)) << rows << " rows";
    }
    const RegionStats stats = session->stats().regions.at(0);
    if (perturb) {
      EXPECT_EQ(stats.verify_failures, 1);
      EXPECT_EQ(stats.compiled_calls, 0);
      EXPECT_EQ(stats.tier, "interp");
    } else {
      // Verified on the first call of 3 rows (the compiling call), of 5
      // rows and of 7 rows; the second calls of 3 and 5 rows run compiled.
      EXPECT_EQ(stats.verify_failures, 0);
      EXPECT_EQ(stats.compiled_calls, 2);
      EXPECT_EQ(stats.interpreted_calls, 3);
    }
  }
}

// Concurrent first calls: however many threads arrive while the code is
// unverified, the outputs are the interpreter's.
TEST(ShadowVerification, ConcurrentCallsNeverSeeUnverifiedCode) {
  std::shared_ptr<const Model> model = Load(AddMul());
  ASSERT_NE(model, nullptr);
  auto reference = MakeSession(model, TierPolicy::kInterpreter, false);
  auto session = MakeSession(model, TierPolicy::kAuto, /*perturb=*/true);
  ASSERT_NE(session, nullptr);
  std::vector<float> x = testing::RandomFloats(8 * 32, 3, -2.f, 2.f);
  const std::vector<float> want = RunOnce(*reference, x, 8, 32);
  // Hot after two calls; the code is published unverified.
  for (int run = 0; run < 2; ++run) RunOnce(*session, x, 8, 32);
  session->WaitForCompiles();
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      std::vector<float> mine = x;
      for (int run = 0; run < 20; ++run) {
        if (!BitwiseEqual(RunOnce(*session, mine, 8, 32), want)) ++wrong;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(session->stats().regions.at(0).verify_failures, 1);
  EXPECT_EQ(session->stats().regions.at(0).compiled_calls, 0);
}

}  // namespace

namespace runtime {
namespace {

TEST(ShadowVerificationGate, ServesOnlyAfterEveryRequiredCallPassed) {
  ShadowVerification gate;
  gate.Start(2);
  EXPECT_EQ(gate.Claim(), ShadowVerification::Turn::kVerify);
  EXPECT_EQ(gate.Claim(), ShadowVerification::Turn::kVerify);
  EXPECT_EQ(gate.Claim(), ShadowVerification::Turn::kInterpret);  // both taken, none answered
  gate.Pass();
  EXPECT_EQ(gate.Claim(), ShadowVerification::Turn::kInterpret);
  gate.Abandon();  // the second call failed on its own: another verifies
  EXPECT_EQ(gate.Claim(), ShadowVerification::Turn::kVerify);
  gate.Pass();
  EXPECT_EQ(gate.Claim(), ShadowVerification::Turn::kServe);
}

TEST(ShadowVerificationGate, AFailureIsReportedOnceAndNeverServes) {
  ShadowVerification gate;
  gate.Start(2);
  EXPECT_EQ(gate.Claim(), ShadowVerification::Turn::kVerify);
  EXPECT_EQ(gate.Claim(), ShadowVerification::Turn::kVerify);
  EXPECT_TRUE(gate.Fail());
  gate.Pass();  // the other call passing does not undo it
  EXPECT_FALSE(gate.Fail());
  EXPECT_EQ(gate.Claim(), ShadowVerification::Turn::kInterpret);
}

TEST(ShadowVerificationGate, OffServesAtOnce) {
  ShadowVerification unstarted;
  EXPECT_EQ(unstarted.Claim(), ShadowVerification::Turn::kServe);
  ShadowVerification zero;
  zero.Start(0);
  EXPECT_EQ(zero.Claim(), ShadowVerification::Turn::kServe);
}

Tensor Floats(const std::vector<float>& values) {
  StatusOr<Tensor> t = Tensor::Allocate(DType::kFloat32, {static_cast<int64_t>(values.size())});
  EXPECT_TRUE(t.ok());
  std::copy(values.begin(), values.end(), t->data<float>());
  return std::move(t).value();
}

TEST(OutputComparison, ScalesAboveOneAndFindsTheWorstElement) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  OutputComparison within;
  CompareOutput(0, Floats({1000.05f, 0.00005f, nan}), Floats({1000.f, 0.f, nan}), 1e-4, within);
  EXPECT_TRUE(within.equal) << within.ToString(1e-4);
  OutputComparison wrong;
  CompareOutput(0, Floats({1.f, -2.f, 3.f}), Floats({1.f, 2.f, 3.f}), 1e-4, wrong);
  EXPECT_FALSE(wrong.equal);
  EXPECT_EQ(wrong.element, 1);
  EXPECT_DOUBLE_EQ(wrong.largest_difference, 4.0);
  OutputComparison nan_against_number;
  CompareOutput(0, Floats({nan}), Floats({1.f}), 1e-4, nan_against_number);
  EXPECT_FALSE(nan_against_number.equal);
  OutputComparison shapes;
  CompareOutput(0, Floats({1.f}), Floats({1.f, 2.f}), 1e-4, shapes);
  EXPECT_FALSE(shapes.equal);
  EXPECT_NE(shapes.problem.find("[1]"), std::string::npos) << shapes.problem;
}

TEST(OutputComparison, ElementsNoWorseThanTheWorstSoFarChangeNothing) {
  // Once a worst element is known, the comparison skips elements that are no
  // worse without dividing; what it skips must never hide a later, worse one
  // or a non-finite mismatch.
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> interpreted(1000, 2.f);
  std::vector<float> compiled(1000, 2.f);
  compiled[3] = 2.00001f;  // the first worst: small, within tolerance
  compiled[500] = 2.5f;    // a later, worse element: past it
  compiled[700] = 2.2f;    // worse than the first, better than the second
  OutputComparison later_worse;
  CompareOutput(0, Floats(compiled), Floats(interpreted), 1e-4, later_worse);
  EXPECT_FALSE(later_worse.equal);
  EXPECT_EQ(later_worse.element, 500);
  EXPECT_NEAR(later_worse.largest_difference, 0.5, 1e-6);
  // An infinite interpreted value against a finite one, after a finite
  // worst: infinitely far, not "small relative to infinity".
  compiled = std::vector<float>(1000, 2.f);
  compiled[3] = 2.00001f;
  interpreted[900] = inf;
  OutputComparison infinite;
  CompareOutput(0, Floats(compiled), Floats(interpreted), 1e-4, infinite);
  EXPECT_FALSE(infinite.equal);
  EXPECT_EQ(infinite.element, 900);
  // Matching infinities and NaNs are equal; each against a number is not.
  compiled[900] = inf;
  compiled[901] = nan;
  interpreted[901] = nan;
  OutputComparison matching;
  CompareOutput(0, Floats(compiled), Floats(interpreted), 1e-4, matching);
  EXPECT_TRUE(matching.equal) << matching.ToString(1e-4);
  compiled[902] = nan;
  OutputComparison nan_later;
  CompareOutput(0, Floats(compiled), Floats(interpreted), 1e-4, nan_later);
  EXPECT_FALSE(nan_later.equal);
  EXPECT_EQ(nan_later.element, 902);
}

}  // namespace
}  // namespace runtime
}  // namespace kiln
