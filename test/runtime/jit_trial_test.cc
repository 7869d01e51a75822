// The JIT tier's trial of new specialisations (keep_faster_tier): calls
// alternate between the compiled code and the interpreter until each tier has
// its samples, and the slower tier loses the signature. The tier is driven
// directly with chosen call times, so the decision is deterministic.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "graph/onnx_loader.h"
#include "graph/partitioner.h"
#include "runtime/jit_tier.h"
#include "test/model_builder.h"

namespace kiln::runtime {
namespace {

using kiln::testing::OnnxModelBuilder;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

// A JIT tier over the single region of a small model, with every
// signature hot at its first call and compiled on the calling thread.
std::unique_ptr<JitTier> MakeTier(const OnnxModelBuilder& b, std::unique_ptr<graph::Graph>& graph,
                                  int max_specializations) {
  const std::string bytes = b.Serialize();
  StatusOr<graph::Graph> loaded = graph::LoadOnnxModel(bytes.data(), bytes.size(), {});
  EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
  if (!loaded.ok()) return nullptr;
  graph = std::make_unique<graph::Graph>(std::move(loaded).value());
  StatusOr<std::vector<graph::Region>> regions = graph::PartitionGraph(*graph, {});
  EXPECT_TRUE(regions.ok() && regions->size() == 1u);
  if (!regions.ok()) return nullptr;
  JitTierOptions options;
  options.hot_threshold = 1;
  options.max_specializations = max_specializations;
  options.blocking = true;
  options.keep_faster_tier = true;
  StatusOr<std::unique_ptr<JitTier>> tier = JitTier::Create(*graph, std::move(regions).value(), options);
  EXPECT_TRUE(tier.ok()) << tier.status().ToString();
  return tier.ok() ? std::move(tier).value() : nullptr;
}

class JitTrial : public ::testing::Test {
 protected:
  void SetUp() override {
    // One elementwise region: SiLU on [4, 16].
    OnnxModelBuilder b(17);
    b.Input("x", kFloat, {4, 16}).Output("y");
    b.Node("Sigmoid", {"x"}, {"s"});
    b.Node("Mul", {"x", "s"}, {"y"});
    tier_ = MakeTier(b, graph_, 4);
    ASSERT_NE(tier_, nullptr);
    signature_.dims = {{4, 16}};
  }

  // Compiles the signature (one interpreted call), then makes `calls` calls
  // as the interpreter's dispatch would, each tier taking the given time.
  // Returns how many of them ran compiled.
  int Run(int calls, int64_t compiled_ns, int64_t interpreted_ns) {
    int compiled = 0;
    for (int i = 0; i < calls; ++i) {
      std::shared_ptr<const Specialization> spec = tier_->Lookup(0, signature_);
      if (spec == nullptr) {
        tier_->RecordInterpretedCall(0, signature_, interpreted_ns);
      } else if (spec->trial.TakeInterpretedTurn()) {
        tier_->RecordTrialInterpretedCall(0, *spec, nullptr, interpreted_ns);
      } else {
        tier_->RecordCompiledCall(0, *spec, nullptr, compiled_ns);
        ++compiled;
      }
    }
    return compiled;
  }

  std::unique_ptr<graph::Graph> graph_;
  std::unique_ptr<JitTier> tier_;
  ShapeSignature signature_;
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
    std::shared_ptr<const Specialization> spec = tier_->Lookup(0, signature_);
    ASSERT_NE(spec, nullptr);
    if (spec->trial.TakeInterpretedTurn()) {
      tier_->RecordTrialInterpretedCall(0, *spec, nullptr, 900 + outlier);
    } else {
      tier_->RecordCompiledCall(0, *spec, nullptr, 500 + outlier);
    }
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
  // A row region compiled shape-generic at once (no specialisations): each
  // signature's RowCall runs its own trial, and losing one leaves the code
  // serving the others.
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {-1, 16}, {"rows"}).FloatInit("scale", {}, {2.f}).Output("y");
  b.Node("Mul", {"x", "scale"}, {"scaled"});
  b.Node("Softmax", {"scaled"}, {"y"});
  std::unique_ptr<graph::Graph> graph;
  std::unique_ptr<JitTier> tier = MakeTier(b, graph, 0);
  ASSERT_NE(tier, nullptr);
  ASSERT_EQ(tier->regions()[0].kind, graph::RegionKind::kRowReduction);
  ShapeSignature slow, fast;
  // The region's inputs: x and the scalar scale.
  slow.dims = {{4, 16}, {}};
  fast.dims = {{8, 16}, {}};
  tier->RecordInterpretedCall(0, slow, 1000);  // compiles the generic version
  std::shared_ptr<const Specialization> spec = tier->Lookup(0, slow);
  ASSERT_NE(spec, nullptr) << tier->Stats()[0].failed_compiles << " failed compiles";
  ASSERT_TRUE(spec->generic);
  // Calls as the interpreter's dispatch makes them: `compiled_ns` for the
  // generic code on `signature`, 1000 interpreted.
  auto run = [&](const ShapeSignature& signature, int calls, int64_t compiled_ns) {
    for (int i = 0; i < calls; ++i) {
      auto call = spec->PlanRowCall(*graph, tier->regions()[0], signature);
      ASSERT_TRUE(call.ok()) << call.status().ToString();
      ASSERT_TRUE((*call)->served);
      if ((*call)->declined.load()) {
        tier->RecordInterpretedCall(0, signature, 1000);
      } else if ((*call)->trial.TakeInterpretedTurn()) {
        tier->RecordTrialInterpretedCall(0, *spec, call->get(), 1000);
      } else {
        tier->RecordCompiledCall(0, *spec, call->get(), compiled_ns);
      }
    }
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

}  // namespace
}  // namespace kiln::runtime
