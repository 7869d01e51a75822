// The break-even gate's projection (runtime/payback_projection.h), fed by
// hand: defaults before any measurement, then this session's trials and
// compiles per region kind.
#include "runtime/payback_projection.h"

#include <gtest/gtest.h>

#include <cmath>

namespace kiln::runtime {
namespace {

using graph::RegionKind;

TEST(PaybackProjection, DefaultsBeforeAnyMeasurement) {
  PaybackProjection projection;
  const PaybackProjection::Projection p = projection.Project(RegionKind::kElementwise, 4, 1.5);
  EXPECT_FALSE(p.speedup_measured);
  EXPECT_FALSE(p.compile_measured);
  EXPECT_DOUBLE_EQ(p.speedup, PaybackProjection::DefaultSpeedup(RegionKind::kElementwise));
  EXPECT_DOUBLE_EQ(p.compile_ms, 4 * PaybackProjection::kDefaultCompileMsPerNode);
  EXPECT_NEAR(p.saving_ms_per_call, 1.5 * (1 - 1 / p.speedup), 1e-12);
  EXPECT_EQ(p.payback_calls, static_cast<int64_t>(std::ceil(p.compile_ms / p.saving_ms_per_call)));
}

TEST(PaybackProjection, LearnsSpeedupAndCompileCostPerKind) {
  PaybackProjection projection;
  projection.RecordTrial(RegionKind::kRowReduction, 1.0, 0.5);   // 2x
  projection.RecordTrial(RegionKind::kRowReduction, 3.0, 0.75);  // 4x
  projection.RecordCompile(RegionKind::kRowReduction, 4, 20.0);
  projection.RecordCompile(RegionKind::kRowReduction, 6, 10.0);  // 3 ms per node overall
  const PaybackProjection::Projection p = projection.Project(RegionKind::kRowReduction, 5, 2.0);
  EXPECT_TRUE(p.speedup_measured);
  EXPECT_TRUE(p.compile_measured);
  EXPECT_DOUBLE_EQ(p.speedup, 3.0);
  EXPECT_DOUBLE_EQ(p.compile_ms, 15.0);
  EXPECT_NEAR(p.saving_ms_per_call, 2.0 * (1 - 1.0 / 3), 1e-12);
  EXPECT_EQ(p.payback_calls, 12);  // ceil(15 / 1.333)
  // Another kind is still on the defaults.
  EXPECT_FALSE(projection.Project(RegionKind::kGemm, 5, 2.0).speedup_measured);
}

TEST(PaybackProjection, AKindThatLosesItsTrialsNeverPaysBack) {
  PaybackProjection projection;
  projection.RecordTrial(RegionKind::kElementwise, 1.0, 2.0);
  const PaybackProjection::Projection p = projection.Project(RegionKind::kElementwise, 2, 1.0);
  EXPECT_DOUBLE_EQ(p.saving_ms_per_call, 0);
  EXPECT_EQ(p.payback_calls, -1);
}

TEST(PaybackProjection, UntimedTrialsAreIgnored) {
  PaybackProjection projection;
  projection.RecordTrial(RegionKind::kElementwise, 1.0, 0.0);
  EXPECT_FALSE(projection.Project(RegionKind::kElementwise, 2, 1.0).speedup_measured);
}

}  // namespace
}  // namespace kiln::runtime
