// A map that forgets everything when it reaches its capacity. kiln keeps
// several per-shape tables (profiles, call plans, oneDNN primitives) that a
// stream of ever-new shapes would grow without bound; starting over is the
// simplest policy that bounds them, and an entry still in use is rebuilt
// once. Not thread-safe: owners guard it with their own lock.
#pragma once

#include <cstddef>
#include <map>
#include <utility>

namespace kiln {

template <typename Key, typename Value>
class BoundedMap {
 public:
  explicit BoundedMap(size_t capacity) : capacity_(capacity) {}

  // The entry for `key`, or null.
  Value* Find(const Key& key) {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
  }
  // The entry for `key`, value-initialised if absent (clearing the map
  // first when it is full).
  Value& operator[](const Key& key) {
    if (Value* found = Find(key)) return *found;
    MakeRoom();
    return entries_[key];
  }
  // Inserts or replaces the entry for `key`.
  void Put(const Key& key, Value value) {
    if (Value* found = Find(key)) {
      *found = std::move(value);
      return;
    }
    MakeRoom();
    entries_.emplace(key, std::move(value));
  }
  void Erase(const Key& key) { entries_.erase(key); }
  void Clear() { entries_.clear(); }
  size_t size() const { return entries_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  void MakeRoom() {
    if (entries_.size() >= capacity_) entries_.clear();
  }

  size_t capacity_;
  std::map<Key, Value> entries_;
};

}  // namespace kiln
