// The JIT tier's trial of new specializations (jit_keep_faster_tier): calls
// alternate between the compiled code and the interpreter until each tier has
// its samples, and the slower tier loses the signature. The tier is driven
// through its one entry point (JitTier::Run) with a clock the test advances
// by chosen call times, so the decision is deterministic.
#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>

#include <functional>
#include <memory>
#include <sstream>
#include <string>

#include "graph/log.h"
#include "graph/onnx_loader.h"
#include "graph/partitioner.h"
#include "kernels/kernel.h"
#include "runtime/jit_tier.h"
#include "runtime/trace_recorder.h"
#include "test/model_builder.h"

namespace kiln::runtime {
namespace {

using kiln::testing::OnnxModelBuilder;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

// A clock that moves only when a fake call says how long it took.
struct FakeClock {
  int64_t now = 0;
};

// One region call whose interpreted run takes `interpreted_ns` and whose
// compiled run (the real code, on real buffers) is charged `compiled_ns`
// when it allocates its outputs. Interpreted runs compute nothing: the trial
// only looks at the time.
class TimedCall final : public RegionCall {
 public:
  TimedCall(FakeClock& clock, const ShapeSignature& signature, int64_t compiled_ns, int64_t interpreted_ns)
      : clock_(clock), compiled_ns_(compiled_ns), interpreted_ns_(interpreted_ns) {
    for (const Dims& dims : signature.dims) {
      StatusOr<Tensor> t = Tensor::Allocate(DType::kFloat32, dims);
      EXPECT_TRUE(t.ok());
      std::fill_n(t->data<float>(), t->num_elements(), 0.5f);
      inputs_.push_back(std::move(t).value());
    }
  }

  const Tensor& input(size_t i) const override { return inputs_[i]; }
  StatusOr<void*> AllocateOutput(size_t o, const Dims& dims) override {
    clock_.now += compiled_ns_;
    KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, dims));
    outputs_.push_back(std::move(out));
    return outputs_.back().raw_data();
  }
  const Tensor& output(size_t o) const override { return outputs_[o]; }
  Status RunInterpreted() override {
    clock_.now += interpreted_ns_;
    return Status::Ok();
  }
  const kernels::ParallelRunner& parallel() const override { return serial_; }
  std::unique_ptr<RegionScratch>& scratch() override { return scratch_; }

 private:
  FakeClock& clock_;
  int64_t compiled_ns_;
  int64_t interpreted_ns_;
  std::vector<Tensor> inputs_;
  std::vector<Tensor> outputs_;
  kernels::SerialRunner serial_;
  std::unique_ptr<RegionScratch> scratch_;
};

// A JIT tier over the single region of a small model, with every
// signature hot at its first call and compiled on the calling thread.
// `configure` may change the options and hooks before the tier is built.
std::unique_ptr<JitTier> MakeTier(const OnnxModelBuilder& b, std::unique_ptr<graph::Graph>& graph,
                                  int max_specializations, FakeClock& clock,
                                  const std::function<void(SessionOptions&, JitTierHooks&)>& configure = {}) {
  const std::string bytes = b.Serialize();
  StatusOr<graph::Graph> loaded = graph::LoadOnnxModel(bytes.data(), bytes.size(), {});
  EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
  if (!loaded.ok()) return nullptr;
  graph = std::make_unique<graph::Graph>(std::move(loaded).value());
  StatusOr<std::vector<graph::Region>> regions = graph::PartitionGraph(*graph, {});
  EXPECT_TRUE(regions.ok() && regions->size() == 1u);
  if (!regions.ok()) return nullptr;
  SessionOptions options;
  options.tier = TierPolicy::kJit;
  options.jit_max_specializations = max_specializations;
  options.jit_keep_faster_tier = true;
  // These calls only advance a clock: their outputs are not computed, so
  // there is nothing for shadow verification to compare.
  options.jit_verify_calls = 0;
  JitTierHooks hooks;
  hooks.now_ns = [&clock] { return clock.now; };
  if (configure) configure(options, hooks);
  StatusOr<std::unique_ptr<JitTier>> tier = JitTier::Create(*graph, std::move(regions).value(), options, hooks);
  EXPECT_TRUE(tier.ok()) << tier.status().ToString();
  return tier.ok() ? std::move(tier).value() : nullptr;
}

// Makes `calls` calls of region 0 on `signature`, each tier taking the given
// time. Returns how many of them ran compiled.
int RunCalls(const JitTier& tier, FakeClock& clock, const ShapeSignature& signature, int calls, int64_t compiled_ns,
             int64_t interpreted_ns) {
  int compiled = 0;
  for (int i = 0; i < calls; ++i) {
    TimedCall call(clock, signature, compiled_ns, interpreted_ns);
    StatusOr<ServedBy> served = tier.Run(0, call);
    EXPECT_TRUE(served.ok()) << served.status().ToString();
    if (served.ok() && *served == ServedBy::kCompiledCode) ++compiled;
  }
  return compiled;
}

// A tier over one elementwise region, SiLU on [4, 16], driven by a fake
// clock; the fixtures below build it with their own options.
class SiluTierTest : public ::testing::Test {
 protected:
  void MakeSiluTier(const std::function<void(SessionOptions&, JitTierHooks&)>& configure = {}) {
    OnnxModelBuilder b(17);
    b.Input("x", kFloat, {4, 16}).Output("y");
    b.Node("Sigmoid", {"x"}, {"s"});
    b.Node("Mul", {"x", "s"}, {"y"});
    tier_ = MakeTier(b, graph_, 4, clock_, configure);
    signature_.dims = {{4, 16}};
  }

  // Makes `calls` calls, each tier taking the given time; the first call
  // of the signature compiles it. Returns how many ran compiled.
  int Run(int calls, int64_t compiled_ns, int64_t interpreted_ns) {
    return RunCalls(*tier_, clock_, signature_, calls, compiled_ns, interpreted_ns);
  }

  FakeClock clock_;
  std::unique_ptr<graph::Graph> graph_;
  std::unique_ptr<JitTier> tier_;
  ShapeSignature signature_;
};

class JitTrial : public SiluTierTest {
 protected:
  void SetUp() override {
    MakeSiluTier();
    ASSERT_NE(tier_, nullptr);
  }
};

TEST_F(JitTrial, SlowerCodeIsDroppedAndNotCompiledAgain) {
  Run(1, 0, 1000);  // hot at once: compiled on this call (blocking)
  ASSERT_NE(tier_->Lookup(0, signature_), nullptr);
  // Four samples per tier, alternating from the compiled code.
  EXPECT_EQ(Run(2 * TierTrial::kSamples, 2000, 1000), TierTrial::kSamples);
  EXPECT_EQ(tier_->Lookup(0, signature_), nullptr);
  EXPECT_EQ(Run(10, 2000, 1000), 0);
  const RegionStats stats = tier_->Stats()[0];
  EXPECT_EQ(stats.declined, 1);
  EXPECT_EQ(stats.tier, "interp");
  EXPECT_EQ(stats.specializations, 0);
  EXPECT_EQ(stats.failed_compiles, 0);
  // Interpreted by choice: no deopts.
  EXPECT_EQ(stats.deopts, 0);
  EXPECT_EQ(stats.interpreted_calls, 1 + TierTrial::kSamples + 10);
}

TEST_F(JitTrial, FasterCodeStaysAndTheTrialEnds) {
  Run(1, 0, 1000);
  EXPECT_EQ(Run(2 * TierTrial::kSamples, 400, 1000), TierTrial::kSamples);
  EXPECT_EQ(Run(20, 400, 1000), 20);  // decided: every call compiled
  const RegionStats stats = tier_->Stats()[0];
  EXPECT_EQ(stats.declined, 0);
  EXPECT_EQ(stats.tier, "jit");
  EXPECT_EQ(stats.compiled_calls, TierTrial::kSamples + 20);
}

TEST_F(JitTrial, TheBestSampleOfEachTierDecides) {
  // One slow outlier per tier (a preempted call) does not decide: the best
  // compiled call (500) beats the best interpreted one (900).
  Run(1, 0, 1000);
  for (int i = 0; i < 2 * TierTrial::kSamples; ++i) {
    const int64_t outlier = i < 2 ? 50000 : 0;
    ASSERT_NE(tier_->Lookup(0, signature_), nullptr);
    Run(1, 500 + outlier, 900 + outlier);
  }
  EXPECT_NE(tier_->Lookup(0, signature_), nullptr);
  EXPECT_EQ(tier_->Stats()[0].declined, 0);
}

TEST_F(JitTrial, WithinNoiseKeepsTheCompiledCode) {
  Run(1, 0, 1000);
  Run(2 * TierTrial::kSamples, 1020, 1000);  // 2% slower: a tie
  EXPECT_NE(tier_->Lookup(0, signature_), nullptr);
}

TEST(JitTrialGeneric, GenericRowCodeIsTriedPerSignature) {
  // A row region compiled shape-generic at once (no specializations): each
  // signature's RowCall runs its own trial, and losing one leaves the code
  // serving the others.
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {-1, 16}, {"rows"}).FloatInit("scale", {}, {2.f}).Output("y");
  b.Node("Mul", {"x", "scale"}, {"scaled"});
  b.Node("Softmax", {"scaled"}, {"y"});
  std::unique_ptr<graph::Graph> graph;
  FakeClock clock;
  std::unique_ptr<JitTier> tier = MakeTier(b, graph, 0, clock);
  ASSERT_NE(tier, nullptr);
  ASSERT_EQ(tier->regions()[0].kind, graph::RegionKind::kRowReduction);
  ShapeSignature slow, fast;
  // The region's inputs: x and the scalar scale.
  slow.dims = {{4, 16}, {}};
  fast.dims = {{8, 16}, {}};
  RunCalls(*tier, clock, slow, 1, 0, 1000);  // compiles the generic version
  std::shared_ptr<const Specialization> spec = tier->Lookup(0, slow);
  ASSERT_NE(spec, nullptr) << tier->Stats()[0].failed_compiles << " failed compiles";
  ASSERT_TRUE(spec->generic);
  // `compiled_ns` for the generic code on `signature`, 1000 interpreted.
  auto run = [&](const ShapeSignature& signature, int calls, int64_t compiled_ns) {
    RunCalls(*tier, clock, signature, calls, compiled_ns, 1000);
  };
  run(slow, 2 * TierTrial::kSamples + 6, 2000);
  run(fast, 2 * TierTrial::kSamples + 6, 400);
  EXPECT_TRUE((*spec->PlanRowCall(*graph, tier->regions()[0], slow))->declined.load());
  EXPECT_FALSE((*spec->PlanRowCall(*graph, tier->regions()[0], fast))->declined.load());
  const RegionStats stats = tier->Stats()[0];
  EXPECT_EQ(stats.declined, 1);
  EXPECT_EQ(stats.tier, "jit");  // the generic code still serves [8, 16]
  EXPECT_EQ(stats.deopts, 0);    // interpreting [4, 16] is a choice
  EXPECT_EQ(stats.compiled_calls, TierTrial::kSamples + (TierTrial::kSamples + 6));
}

// Break-even accounting (RegionStats::break_even) and its gate
// (SessionOptions::jit_payback_horizon_calls), on the SiLU region. The
// compile hook advances the fake clock, so compiles take chosen times too.
class BreakEvenTest : public SiluTierTest {
 protected:
  static constexpr int64_t kMs = 1000000;  // ns

  void MakeSiluTier(int64_t compile_ns, int64_t horizon_calls, TraceRecorder* trace = nullptr) {
    SiluTierTest::MakeSiluTier([&](SessionOptions& options, JitTierHooks& hooks) {
      options.jit_payback_horizon_calls = horizon_calls;
      FakeClock* clock = &clock_;
      options.jit_before_compile_hook = [clock, compile_ns](int) {
        clock->now += compile_ns;
        return Status::Ok();
      };
      hooks.trace = trace;
    });
    ASSERT_NE(tier_, nullptr);
  }
};

TEST_F(BreakEvenTest, NumbersComeFromTheTrialsMediansAndTheCompileTime) {
  TraceRecorder trace;
  MakeSiluTier(2 * kMs, /*horizon_calls=*/0, &trace);
  Run(1, 0, 1000);  // compiles, taking 2 ms
  ASSERT_NE(tier_->Lookup(0, signature_), nullptr);
  // The trial alternates from the compiled code. Medians: compiled
  // (400 + 500) / 2 = 450 ns, interpreted (1000 + 1100) / 2 = 1050 ns; the
  // best of each (300, 900) only decides the verdict.
  const int64_t compiled[] = {300, 400, 500, 600};
  const int64_t interpreted[] = {900, 1000, 1100, 1200};
  for (int k = 0; k < TierTrial::kSamples; ++k) {
    EXPECT_EQ(Run(1, compiled[k], interpreted[k]), 1);
    EXPECT_EQ(Run(1, compiled[k], interpreted[k]), 0);
  }
  EXPECT_EQ(Run(20, 450, 1050), 20);

  const RegionStats stats = tier_->Stats()[0];
  ASSERT_EQ(stats.break_even.size(), 1u);
  const BreakEven& b = stats.break_even[0];
  EXPECT_EQ(b.signature, signature_.ToString());
  EXPECT_TRUE(b.measured);
  EXPECT_DOUBLE_EQ(b.compile_ms, 2.0);
  EXPECT_NEAR(b.interpreted_ms_per_call, 1050e-6, 1e-12);
  EXPECT_NEAR(b.compiled_ms_per_call, 450e-6, 1e-12);
  EXPECT_NEAR(b.saving_ms_per_call, 600e-6, 1e-12);
  EXPECT_EQ(b.payback_calls, 3334);  // ceil(2 / 0.0006)
  EXPECT_EQ(b.compiled_calls, TierTrial::kSamples + 20);
  EXPECT_NEAR(b.net_saved_ms, 24 * 600e-6 - 2.0, 1e-9);
  EXPECT_EQ(stats.skipped_for_payback, 0);
  // The verdict put the account on the trace as counters.
  const std::string json = trace.ToChromeJson();
  EXPECT_NE(json.find(R"("name": "break-even region 0 )" + signature_.ToString()), std::string::npos) << json;
  EXPECT_NE(json.find(R"("ph": "C")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("payback_calls": 3334)"), std::string::npos) << json;
}

TEST_F(BreakEvenTest, ADroppedVersionKeepsItsLoss) {
  MakeSiluTier(3 * kMs, 0);
  Run(1, 0, 1000);
  Run(2 * TierTrial::kSamples, 2000, 1000);  // slower: dropped
  ASSERT_EQ(tier_->Lookup(0, signature_), nullptr);
  const RegionStats stats = tier_->Stats()[0];
  ASSERT_EQ(stats.break_even.size(), 1u);
  const BreakEven& b = stats.break_even[0];
  EXPECT_TRUE(b.measured);
  EXPECT_NEAR(b.saving_ms_per_call, -1000e-6, 1e-12);
  EXPECT_EQ(b.payback_calls, -1);  // never
  EXPECT_EQ(b.compiled_calls, TierTrial::kSamples);
  EXPECT_NEAR(b.net_saved_ms, -3.0 - TierTrial::kSamples * 1000e-6, 1e-9);
}

TEST_F(BreakEvenTest, WithoutATrialOnlyTheCostIsKnown) {
  MakeSiluTier(kMs, 0);
  Run(1, 0, 1000);
  Run(1, 400, 1000);  // the trial's first, compiled turn: not decided yet
  const BreakEven b = tier_->Stats()[0].break_even.at(0);
  EXPECT_FALSE(b.measured);
  EXPECT_EQ(b.payback_calls, -1);
  EXPECT_EQ(b.compiled_calls, 1);
  EXPECT_DOUBLE_EQ(b.net_saved_ms, -1.0);
}

TEST_F(BreakEvenTest, AShortHorizonKeepsTheRegionInterpretedAndSaysWhy) {
  std::ostringstream log_text;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text);
  const spdlog::level::level_enum level = Log().level();
  Log().set_level(spdlog::level::info);
  Log().sinks().push_back(sink);
  // Projected before any trial or compile: 2 nodes x 5 ms = 10 ms to
  // compile, 1 us x (1 - 1 / 1.5) saved per call: 30000 calls > 100.
  MakeSiluTier(kMs, /*horizon_calls=*/100);
  EXPECT_EQ(Run(1, 0, 1000), 0);
  EXPECT_EQ(Run(10, 0, 1000), 0);
  Log().sinks().pop_back();
  Log().set_level(level);

  EXPECT_EQ(tier_->Lookup(0, signature_), nullptr);
  const RegionStats stats = tier_->Stats()[0];
  EXPECT_EQ(stats.skipped_for_payback, 1);
  EXPECT_EQ(stats.specializations, 0);
  EXPECT_TRUE(stats.break_even.empty());
  EXPECT_DOUBLE_EQ(stats.compile_ms, 0);
  EXPECT_EQ(stats.deopts, 0);  // interpreted by choice
  EXPECT_EQ(stats.interpreted_calls, 11);
  const std::string log = log_text.str();
  EXPECT_NE(log.find("region 0"), std::string::npos) << log;
  EXPECT_NE(log.find("for " + signature_.ToString() +
                     " stays interpreted: projected payback 30000 calls exceeds "
                     "the horizon of 100"),
            std::string::npos)
      << log;
}

TEST_F(BreakEvenTest, AHorizonThatAllowsThePaybackCompiles) {
  // 1 ms interpreted: 0.333 ms saved per call, 10 ms to compile: 30 calls.
  MakeSiluTier(kMs, /*horizon_calls=*/30);
  Run(1, 0, kMs);
  EXPECT_NE(tier_->Lookup(0, signature_), nullptr);
  EXPECT_EQ(tier_->Stats()[0].skipped_for_payback, 0);
}

TEST_F(BreakEvenTest, TheDefaultHorizonChangesNothing) {
  // An interpreted call that takes no time can never be paid back, yet
  // without a horizon it compiles as before.
  MakeSiluTier(kMs, /*horizon_calls=*/0);
  Run(1, 0, 0);
  EXPECT_NE(tier_->Lookup(0, signature_), nullptr);
  const RegionStats stats = tier_->Stats()[0];
  EXPECT_EQ(stats.skipped_for_payback, 0);
  EXPECT_EQ(stats.specializations, 1);
  EXPECT_EQ(stats.break_even.size(), 1u);
}

}  // namespace
}  // namespace kiln::runtime
