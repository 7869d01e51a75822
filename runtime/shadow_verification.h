// Shadow verification (SessionOptions::jit_verify_calls): a new compiled
// version serves no request before its first calls have run it and the
// interpreter on the same inputs, served the interpreter's outputs and found
// the two equal within tolerance. This is the gate each version (or, for
// shape-generic row code, each signature it plans) passes through; the
// comparison itself is in output_comparison.h, the calls in JitTier::Run.
#pragma once

#include <atomic>

namespace kiln::runtime {

// Thread-safe. Once passed, a call costs one atomic load.
class ShadowVerification {
 public:
  enum class Turn {
    kServe,      // verified (or verification off): compiled code may serve
    kVerify,     // this call runs both tiers and reports Pass or Fail
    kInterpret,  // not verified yet by other calls in flight, or failed
  };

  // Requires `calls` passing verification calls before the code serves;
  // before the code is published. Without it (or with 0) the code serves
  // at once.
  void Start(int calls);
  // What this call does. Each kVerify must be answered by exactly one of
  // Pass, Fail or Abandon.
  Turn Claim() const;
  // The compiled outputs matched. The last of the required passes lets the
  // code serve.
  void Pass() const;
  // They did not: the code never serves. True for the first failure only,
  // so that the caller unpublishes, logs and counts once.
  bool Fail() const;
  // The call failed before anything was compared (the interpreter's own
  // error): another call verifies instead.
  void Abandon() const;

 private:
  enum State : int { kPending, kPassed, kFailed };
  int required_ = 0;
  mutable std::atomic<int> state_{kPassed};
  mutable std::atomic<int> claimed_{0};
  mutable std::atomic<int> passed_{0};
};

}  // namespace kiln::runtime
