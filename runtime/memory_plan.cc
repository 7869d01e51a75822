#include "runtime/memory_plan.h"

#include <algorithm>
#include <numeric>

namespace kiln::runtime {

int64_t MemoryPlan::PlannedBytes() const { return std::accumulate(slot_bytes.begin(), slot_bytes.end(), int64_t{0}); }

MemoryPlan PlanMemory(const std::vector<PlannedValue>& values) {
  MemoryPlan plan;
  plan.slot_of_value.assign(values.size(), -1);

  // Visit values in definition order (stable: ties keep input order, which
  // keeps the plan deterministic).
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return values[a].def_step < values[b].def_step; });

  // Slots in use, with the step after which each becomes free.
  std::vector<int> slot_free_after;  // per slot: last_use_step of its current value
  for (size_t idx : order) {
    const PlannedValue& v = values[idx];
    // A slot is free for `v` when its current value's last use is strictly
    // before v's definition: a node's outputs never alias its inputs.
    int best = -1;
    for (int s = 0; s < plan.num_slots(); ++s) {
      if (slot_free_after[static_cast<size_t>(s)] >= v.def_step) continue;
      if (best < 0) {
        best = s;
        continue;
      }
      const int64_t cur = plan.slot_bytes[static_cast<size_t>(best)];
      const int64_t cand = plan.slot_bytes[static_cast<size_t>(s)];
      const bool cur_fits = cur >= v.size_bytes;
      const bool cand_fits = cand >= v.size_bytes;
      // Prefer the smallest slot that fits; if none fits, the largest one
      // (it has the least to grow).
      if (cand_fits && (!cur_fits || cand < cur)) best = s;
      if (!cand_fits && !cur_fits && cand > cur) best = s;
    }
    if (best < 0) {
      best = plan.num_slots();
      plan.slot_bytes.push_back(0);
      slot_free_after.push_back(0);
    }
    plan.slot_of_value[idx] = best;
    plan.slot_bytes[static_cast<size_t>(best)] = std::max(plan.slot_bytes[static_cast<size_t>(best)], v.size_bytes);
    slot_free_after[static_cast<size_t>(best)] = v.last_use_step;
  }
  return plan;
}

}  // namespace kiln::runtime
