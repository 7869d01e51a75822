// The JIT tier's compiler, built when the first compile needs it.
//
// Building an LLJIT (target machine description, host CPU detection, the
// execution session and its layers) costs about as much as a small model's
// whole Session::Create. Most sessions compile nothing before their first
// run ends, and many never compile at all, so the tier builds the compiler
// on the thread of its first compile (the background compile thread under
// the default policy) instead of on the thread creating the session.
#pragma once

#include <atomic>
#include <memory>

#include "graph/mutex.h"
#include "jit/jit_compiler.h"
#include "kiln/status.h"

namespace kiln::runtime {

class LazyJitCompiler {
 public:
  explicit LazyJitCompiler(jit::JitOptions options);
  ~LazyJitCompiler();
  LazyJitCompiler(const LazyJitCompiler&) = delete;
  LazyJitCompiler& operator=(const LazyJitCompiler&) = delete;

  // The compiler, built by the first call (concurrent callers wait for it).
  // When it cannot be built, every call returns the same error without
  // trying again; the first one logs it.
  StatusOr<jit::JitCompiler*> Get();

  // The compiler if a call to Get() has built it, else null. Never blocks
  // and never builds it: for counters that are zero before any compile.
  jit::JitCompiler* IfBuilt() const { return built_.load(std::memory_order_acquire); }

 private:
  const jit::JitOptions options_;
  Mutex mu_;
  bool attempted_ KILN_GUARDED_BY(mu_) = false;
  Status error_ KILN_GUARDED_BY(mu_);
  std::unique_ptr<jit::JitCompiler> compiler_ KILN_GUARDED_BY(mu_);
  // compiler_.get() once it is built: read without the lock.
  std::atomic<jit::JitCompiler*> built_{nullptr};
};

}  // namespace kiln::runtime
