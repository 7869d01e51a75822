// Memory for graph outputs, recycled across runs.
//
// Graph outputs outlive the run that produced them (the caller owns them),
// so they cannot live in the memory plan's slots. Allocated fresh each run,
// they cost page faults whenever the C allocator hands out memory it has
// just taken from the OS: on the VMs kiln is measured on, a 4 MiB output
// faulted in cost ~4 ms per run for a fresh session's first ~9 runs, longer
// than the kernel that filled it. The pool keeps the buffers callers have
// released and gives them to later runs.
//
// Thread safety: Acquire and the release of a buffer (the last reference to
// it going away, on whatever thread) may run concurrently. A buffer may
// outlive its pool; it is then simply freed.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "graph/mutex.h"
#include "kiln/status.h"

namespace kiln::runtime {

class OutputBufferPool : public std::enable_shared_from_this<OutputBufferPool> {
 public:
  // Keeps at most `max_buffers` released buffers; more are freed at once.
  static std::shared_ptr<OutputBufferPool> Create(size_t max_buffers);
  ~OutputBufferPool();

  OutputBufferPool(const OutputBufferPool&) = delete;
  OutputBufferPool& operator=(const OutputBufferPool&) = delete;

  // A 64-byte aligned buffer of at least `bytes` (> 0). A released buffer
  // is reused when it holds `bytes` and is at most twice that (so a small
  // output does not pin a large buffer); otherwise `admit(bytes)` decides
  // whether a new one may be allocated. When the returned owner's last
  // reference goes, the buffer comes back to the pool.
  StatusOr<std::shared_ptr<void>> Acquire(size_t bytes, const std::function<Status(size_t)>& admit);

  // Released buffers held for reuse, and their total capacity in bytes.
  size_t pooled_buffers() const;
  size_t pooled_bytes() const;

 private:
  explicit OutputBufferPool(size_t max_buffers) : max_buffers_(max_buffers) {}

  struct Buffer {
    void* data = nullptr;
    size_t capacity = 0;
  };
  // Returns the buffer's owner: a shared_ptr whose deleter calls Release
  // while the pool lives.
  std::shared_ptr<void> Own(Buffer buffer);
  void Release(Buffer buffer);
  static void Free(Buffer buffer);

  const size_t max_buffers_;
  mutable Mutex mutex_;
  std::vector<Buffer> released_ KILN_GUARDED_BY(mutex_);
};

}  // namespace kiln::runtime
