#include "runtime/lazy_jit_compiler.h"

#include <utility>

#include "graph/log.h"

namespace kiln::runtime {

LazyJitCompiler::LazyJitCompiler(jit::JitOptions options) : options_(std::move(options)) {}

LazyJitCompiler::~LazyJitCompiler() = default;

StatusOr<jit::JitCompiler*> LazyJitCompiler::Get() {
  if (jit::JitCompiler* built = built_.load(std::memory_order_acquire)) return built;
  MutexLock lock(mu_);
  if (!attempted_) {
    attempted_ = true;
    StatusOr<std::unique_ptr<jit::JitCompiler>> compiler = jit::JitCompiler::CreateOrStatus(options_);
    if (compiler.ok()) {
      compiler_ = std::move(compiler).value();
      built_.store(compiler_.get(), std::memory_order_release);
    } else {
      error_ = compiler.status();
      // No JIT on this host: every region stays interpreted, which is correct.
      Log().warn("jit: the compiler cannot be built, regions stay interpreted: {}", error_.ToString());
    }
  }
  if (compiler_) return compiler_.get();
  return error_;
}

}  // namespace kiln::runtime
