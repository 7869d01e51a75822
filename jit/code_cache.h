// Compiled code keyed by the IR it was compiled from, so that regions that
// generate the same module share one copy of machine code instead of
// compiling it again. A transformer's layers are the common case: every
// layer's Softmax and LayerNorm regions have the same ops, shapes and baked
// constants, and only their value names differ, which never reach the IR.
//
// The key is the module's bitcode with its own names (module and entry
// symbol) replaced by fixed ones (internal::ModuleCacheKey), compared in
// full: two keys are equal exactly when the optimiser and code generator
// would see the same input. The cache holds
// weak references: code lives as long as some CompiledRegion uses it, and
// the cache never keeps code alive on its own.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>

#include "graph/mutex.h"

namespace kiln::jit {

class JitCode;

class CodeCache {
 public:
  // The live code compiled from `key`, or null.
  std::shared_ptr<const JitCode> Find(const std::string& key);

  // Records `code` as compiled from `key` and returns the code callers
  // should use: `code`, or the live code another thread recorded under the
  // same key first (then `code` is dropped when the caller lets it go).
  std::shared_ptr<const JitCode> Insert(const std::string& key, std::shared_ptr<const JitCode> code);

  // Keys whose code is still alive.
  size_t live_entries();

 private:
  // Drops keys whose code has been freed. Called when the map reaches
  // prune_at_ entries, which then doubles the live count, so pruning costs
  // O(1) per insert amortised and the map stays within twice the live code.
  void PruneLocked() KILN_REQUIRES(mutex_);

  // The first pruning threshold, and the floor it never drops below: keys
  // are whole modules' bitcode, so dead ones should not pile up, but a
  // model's first few dozen regions should not trigger a prune each.
  static constexpr size_t kMinPruneAt = 64;

  Mutex mutex_;
  std::unordered_map<std::string, std::weak_ptr<const JitCode>> entries_ KILN_GUARDED_BY(mutex_);
  size_t prune_at_ KILN_GUARDED_BY(mutex_) = kMinPruneAt;
};

}  // namespace kiln::jit
