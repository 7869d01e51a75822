#include "runtime/memory_plan.h"

#include <gtest/gtest.h>

namespace kiln::runtime {
namespace {

bool Overlap(const PlannedValue& a, const PlannedValue& b) {
  return !(a.last_use_step < b.def_step || b.last_use_step < a.def_step);
}

TEST(MemoryPlan, ChainReusesTwoBuffers) {
  // a -> b -> c -> d: each value dies when the next is made, so two slots
  // ping-pong.
  std::vector<PlannedValue> values = {{0, 1, 100}, {1, 2, 100}, {2, 3, 100}, {3, 4, 100}};
  MemoryPlan plan = PlanMemory(values);
  EXPECT_EQ(plan.num_slots(), 2);
  EXPECT_EQ(plan.PlannedBytes(), 200);
  EXPECT_NE(plan.slot_of_value[0], plan.slot_of_value[1]);
  EXPECT_EQ(plan.slot_of_value[0], plan.slot_of_value[2]);
}

TEST(MemoryPlan, OverlappingValuesNeverShare) {
  std::vector<PlannedValue> values = {{0, 5, 10}, {1, 2, 20}, {2, 6, 30}, {3, 4, 40}, {5, 6, 50}, {6, 6, 60}};
  MemoryPlan plan = PlanMemory(values);
  for (size_t i = 0; i < values.size(); ++i) {
    for (size_t j = i + 1; j < values.size(); ++j) {
      if (Overlap(values[i], values[j])) {
        EXPECT_NE(plan.slot_of_value[i], plan.slot_of_value[j]) << i << " and " << j;
      }
    }
  }
  // Every slot is at least as large as the values it holds.
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_GE(plan.slot_bytes[static_cast<size_t>(plan.slot_of_value[i])], values[i].size_bytes);
  }
}

TEST(MemoryPlan, InputOfAStepIsNotReusedByItsOutput) {
  // Value 0 is last read at step 1, where value 1 is produced: they must not
  // share, or the kernel would overwrite its own input.
  std::vector<PlannedValue> values = {{0, 1, 64}, {1, 2, 64}};
  MemoryPlan plan = PlanMemory(values);
  EXPECT_NE(plan.slot_of_value[0], plan.slot_of_value[1]);
}

TEST(MemoryPlan, PrefersBestFittingFreeSlot) {
  // Two slots become free (1000 and 10 bytes); a 10-byte value takes the
  // small one, leaving the large one for the 900-byte value.
  std::vector<PlannedValue> values = {{0, 2, 1000}, {1, 2, 10}, {3, 4, 10}, {3, 4, 900}};
  MemoryPlan plan = PlanMemory(values);
  EXPECT_EQ(plan.num_slots(), 2);
  EXPECT_EQ(plan.slot_of_value[2], plan.slot_of_value[1]);
  EXPECT_EQ(plan.slot_of_value[3], plan.slot_of_value[0]);
  EXPECT_EQ(plan.PlannedBytes(), 1010);
}

TEST(MemoryPlan, EmptyInput) {
  MemoryPlan plan = PlanMemory({});
  EXPECT_EQ(plan.num_slots(), 0);
  EXPECT_EQ(plan.PlannedBytes(), 0);
}

}  // namespace
}  // namespace kiln::runtime
