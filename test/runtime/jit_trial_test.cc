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

class JitTrial : public ::testing::Test {
 protected:
  void SetUp() override {
    // One elementwise region: SiLU on [4, 16].
    OnnxModelBuilder b(17);
    b.Input("x", kFloat, {4, 16}).Output("y");
    b.Node("Sigmoid", {"x"}, {"s"});
    b.Node("Mul", {"x", "s"}, {"y"});
    const std::string bytes = b.Serialize();
    StatusOr<graph::Graph> loaded = graph::LoadOnnxModel(bytes.data(), bytes.size(), {});
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    graph_ = std::make_unique<graph::Graph>(std::move(loaded).value());
    StatusOr<std::vector<graph::Region>> regions = graph::PartitionGraph(*graph_, {});
    ASSERT_TRUE(regions.ok()) << regions.status().ToString();
    ASSERT_EQ(regions->size(), 1u);
    JitTierOptions options;
    options.hot_threshold = 1;
    options.blocking = true;
    options.keep_faster_tier = true;
    StatusOr<std::unique_ptr<JitTier>> tier = JitTier::Create(*graph_, std::move(regions).value(), options);
    ASSERT_TRUE(tier.ok()) << tier.status().ToString();
    tier_ = std::move(tier).value();
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
      } else if (spec->TakeInterpretedTrialTurn()) {
        tier_->RecordTrialInterpretedCall(0, *spec, interpreted_ns);
      } else {
        tier_->RecordCompiledCall(0, *spec, compiled_ns);
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
  EXPECT_EQ(Run(2 * Specialization::kTrialSamples, 2000, 1000), Specialization::kTrialSamples);
  EXPECT_EQ(tier_->Lookup(0, signature_), nullptr);
  EXPECT_EQ(Run(10, 2000, 1000), 0);
  const RegionStats stats = tier_->Stats()[0];
  EXPECT_EQ(stats.declined, 1);
  EXPECT_EQ(stats.tier, "interp");
  EXPECT_EQ(stats.specializations, 0);
  EXPECT_EQ(stats.failed_compiles, 0);
  // Interpreted by choice: no deopts.
  EXPECT_EQ(stats.deopts, 0);
  EXPECT_EQ(stats.interpreted_calls, 1 + Specialization::kTrialSamples + 10);
}

TEST_F(JitTrial, FasterCodeStaysAndTheTrialEnds) {
  Run(1, 0, 1000);
  EXPECT_EQ(Run(2 * Specialization::kTrialSamples, 400, 1000), Specialization::kTrialSamples);
  EXPECT_EQ(Run(20, 400, 1000), 20);  // decided: every call compiled
  const RegionStats stats = tier_->Stats()[0];
  EXPECT_EQ(stats.declined, 0);
  EXPECT_EQ(stats.tier, "jit");
  EXPECT_EQ(stats.compiled_calls, Specialization::kTrialSamples + 20);
}

TEST_F(JitTrial, TheBestSampleOfEachTierDecides) {
  // One slow outlier per tier (a preempted call) does not decide: the best
  // compiled call (500) beats the best interpreted one (900).
  Run(1, 0, 1000);
  for (int i = 0; i < 2 * Specialization::kTrialSamples; ++i) {
    const int64_t outlier = i < 2 ? 50000 : 0;
    std::shared_ptr<const Specialization> spec = tier_->Lookup(0, signature_);
    ASSERT_NE(spec, nullptr);
    if (spec->TakeInterpretedTrialTurn()) {
      tier_->RecordTrialInterpretedCall(0, *spec, 900 + outlier);
    } else {
      tier_->RecordCompiledCall(0, *spec, 500 + outlier);
    }
  }
  EXPECT_NE(tier_->Lookup(0, signature_), nullptr);
  EXPECT_EQ(tier_->Stats()[0].declined, 0);
}

TEST_F(JitTrial, WithinNoiseKeepsTheCompiledCode) {
  Run(1, 0, 1000);
  Run(2 * Specialization::kTrialSamples, 1020, 1000);  // 2% slower: a tie
  EXPECT_NE(tier_->Lookup(0, signature_), nullptr);
}

}  // namespace
}  // namespace kiln::runtime
