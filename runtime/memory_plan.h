// The interpreter's memory planner. Intermediate values whose lifetimes do
// not overlap share a buffer ("slot"): values are assigned greedily in
// execution order, each taking the free slot whose size fits best. Sizes are
// estimates from static shapes (0 when unknown); at run time each slot grows
// to the largest value it ever holds, so the plan stays valid for every input
// shape and stops allocating after the first run of a given shape.
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::runtime {

// One planned value: produced at step `def_step`, last read at `last_use_step`
// (== def_step when nothing reads it).
struct PlannedValue {
  int def_step = 0;
  int last_use_step = 0;
  int64_t size_bytes = 0;  // static estimate; 0 = unknown
};

struct MemoryPlan {
  std::vector<int> slot_of_value;   // parallel to the planner's input
  std::vector<int64_t> slot_bytes;  // estimated size of each slot
  int num_slots() const { return static_cast<int>(slot_bytes.size()); }
  // Sum of slot estimates: the planned peak for the estimated shapes.
  int64_t PlannedBytes() const;
};

// Plans `values`; two values get the same slot only if their
// [def_step, last_use_step] ranges are disjoint.
MemoryPlan PlanMemory(const std::vector<PlannedValue>& values);

}  // namespace kiln::runtime
