#include "jit/code_cache.h"

#include <algorithm>

namespace kiln::jit {

std::shared_ptr<const JitCode> CodeCache::Find(const std::string& key) {
  MutexLock lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  return it->second.lock();
}

std::shared_ptr<const JitCode> CodeCache::Insert(const std::string& key, std::shared_ptr<const JitCode> code) {
  MutexLock lock(mutex_);
  std::weak_ptr<const JitCode>& slot = entries_[key];
  if (std::shared_ptr<const JitCode> existing = slot.lock()) return existing;
  slot = code;
  if (entries_.size() >= prune_at_) PruneLocked();
  return code;
}

size_t CodeCache::live_entries() {
  MutexLock lock(mutex_);
  size_t live = 0;
  for (const auto& [key, code] : entries_) live += code.expired() ? 0 : 1;
  return live;
}

void CodeCache::PruneLocked() {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = it->second.expired() ? entries_.erase(it) : std::next(it);
  }
  prune_at_ = std::max<size_t>(kMinPruneAt, 2 * entries_.size());
}

}  // namespace kiln::jit
