// Compiled code on disk, shared by processes: a region's object file, keyed
// by what decides its machine code, so that a new process (another replica,
// a restart) links code compiled before instead of running LLVM's optimiser
// and code generator again.
//
// Entries. One file per key: `<dir>/<hash>.kobj`, where the hash covers the
// key (the module's canonical bitcode, which holds the ops, shapes, baked
// constants and target attributes; see CodeCache) and the fingerprint (the
// target CPU name and features, kiln's version and LLVM's version). The file
// holds a text header (format, fingerprint, key hash, entry symbol, object
// size, checksum) and the object. An entry is used only when every header
// field matches and the checksum of the object is right: a truncated,
// corrupted, foreign-CPU or foreign-version entry is never linked. It is
// counted as rejected, logged (the first time at warn), and replaced by the
// code compiled instead.
//
// Sharing. Entries are written to a temporary file in the same folder and
// renamed into place, so readers see a whole entry or none, and several
// processes may write one folder at once (the last rename of a key wins; both
// wrote the same code).
//
// Size. After each write, the oldest entries (by modification time, which a
// hit refreshes) are deleted until the folder is within its byte cap.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "kiln/status.h"

namespace kiln::jit {

class PersistentCodeCache {
 public:
  struct Counters {
    int64_t hits = 0;
    int64_t misses = 0;
    int64_t rejected = 0;  // entries found but unusable (and replaced)
    int64_t writes = 0;
  };
  struct Entry {
    std::string symbol;  // the entry function in `object`
    std::string object;  // an ELF relocatable object
  };

  // Uses `dir` (created if missing) for entries of code built for
  // `fingerprint`. Fails when the folder cannot be created.
  static StatusOr<std::unique_ptr<PersistentCodeCache>> Open(const std::string& dir, std::string fingerprint,
                                                             int64_t max_bytes);

  // The entry for `key`, or nothing (a miss, or a rejected entry).
  std::optional<Entry> Find(const std::string& key);
  // Writes the entry for `key`. Failures (a full disk, a read-only folder)
  // are logged and otherwise ignored: the cache is an optimisation.
  void Store(const std::string& key, const Entry& entry);

  Counters counters() const;
  const std::string& dir() const { return dir_; }

  // The name of `key`'s file below dir(), for tests that damage entries.
  std::string PathFor(const std::string& key) const;

 private:
  PersistentCodeCache(std::string dir, std::string fingerprint, int64_t max_bytes)
      : dir_(std::move(dir)), fingerprint_(std::move(fingerprint)), max_bytes_(max_bytes) {}
  void Reject(const std::string& path, const std::string& why);
  void EvictToCap();

  const std::string dir_;
  const std::string fingerprint_;
  const int64_t max_bytes_;
  std::atomic<int64_t> hits_{0}, misses_{0}, rejected_{0}, writes_{0};
  std::atomic<bool> warned_{false};
};

// A 128-bit content hash as 32 hex digits (two independent 64-bit
// multiply-xorshift lanes over the bytes): names files and checks objects.
// Not cryptographic; whoever can write the cache folder can write code.
std::string ContentHash(const std::string& bytes);

}  // namespace kiln::jit
