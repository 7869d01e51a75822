#include "runtime/break_even_ledger.h"

#include <cmath>

namespace kiln::runtime {

int64_t PaybackCalls(double compile_ms, double saving_ms_per_call) {
  if (!(saving_ms_per_call > 0)) return -1;
  return static_cast<int64_t>(std::ceil(compile_ms / saving_ms_per_call));
}

void BreakEvenLedger::RecordTrial(double interpreted_ms_per_call, double compiled_ms_per_call) const {
  interpreted_ms_per_call_.store(interpreted_ms_per_call, std::memory_order_relaxed);
  compiled_ms_per_call_.store(compiled_ms_per_call, std::memory_order_relaxed);
  measured_.store(true, std::memory_order_release);
}

BreakEven BreakEvenLedger::Snapshot() const {
  BreakEven b;
  b.signature = signature_;
  b.compile_ms = compile_ms_;
  b.compiled_calls = compiled_calls_.load(std::memory_order_relaxed);
  b.measured = measured_.load(std::memory_order_acquire);
  if (!b.measured) {
    // Without a measured saving, only the cost is known.
    b.net_saved_ms = -compile_ms_;
    return b;
  }
  b.interpreted_ms_per_call = interpreted_ms_per_call_.load(std::memory_order_relaxed);
  b.compiled_ms_per_call = compiled_ms_per_call_.load(std::memory_order_relaxed);
  b.saving_ms_per_call = b.interpreted_ms_per_call - b.compiled_ms_per_call;
  b.payback_calls = PaybackCalls(compile_ms_, b.saving_ms_per_call);
  b.net_saved_ms = static_cast<double>(b.compiled_calls) * b.saving_ms_per_call - compile_ms_;
  return b;
}

}  // namespace kiln::runtime
