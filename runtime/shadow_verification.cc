#include "runtime/shadow_verification.h"

namespace kiln::runtime {

void ShadowVerification::Start(int calls) {
  required_ = calls;
  state_.store(calls > 0 ? kPending : kPassed, std::memory_order_relaxed);
}

ShadowVerification::Turn ShadowVerification::Claim() const {
  // Acquire: a call that sees kPassed must also see that the verifying
  // calls' comparisons are complete (they ran before Pass released it).
  const int state = state_.load(std::memory_order_acquire);
  if (state == kPassed) return Turn::kServe;
  if (state == kFailed) return Turn::kInterpret;
  int claimed = claimed_.load(std::memory_order_relaxed);
  while (claimed < required_) {
    if (claimed_.compare_exchange_weak(claimed, claimed + 1, std::memory_order_relaxed)) return Turn::kVerify;
  }
  // Every verification call is taken and not all have passed yet: until
  // they have, the interpreter serves.
  return Turn::kInterpret;
}

void ShadowVerification::Pass() const {
  if (passed_.fetch_add(1, std::memory_order_acq_rel) + 1 < required_) return;
  int pending = kPending;
  state_.compare_exchange_strong(pending, kPassed, std::memory_order_release, std::memory_order_relaxed);
}

bool ShadowVerification::Fail() const { return state_.exchange(kFailed, std::memory_order_acq_rel) != kFailed; }

void ShadowVerification::Abandon() const { claimed_.fetch_sub(1, std::memory_order_relaxed); }

}  // namespace kiln::runtime
