#include "runtime/output_buffer_pool.h"

#include <sys/mman.h>

#include <cstdlib>
#include <utility>

namespace kiln::runtime {
namespace {

constexpr size_t kAlignment = 64;
// As for Tensor::Allocate (graph/tensor.cc, which says why): large buffers
// on transparent huge pages.
constexpr size_t kHugePage = size_t{2} << 20;

void* AllocateBuffer(size_t capacity) {
  if (capacity < kHugePage) return std::aligned_alloc(kAlignment, capacity);
  const size_t padded = (capacity + kHugePage - 1) / kHugePage * kHugePage;
  void* data = std::aligned_alloc(kHugePage, padded);
  if (data != nullptr) ::madvise(data, padded, MADV_HUGEPAGE);  // advice only
  return data;
}

}  // namespace

std::shared_ptr<OutputBufferPool> OutputBufferPool::Create(size_t max_buffers) {
  return std::shared_ptr<OutputBufferPool>(new OutputBufferPool(max_buffers));
}

OutputBufferPool::~OutputBufferPool() {
  for (const Buffer& buffer : released_) Free(buffer);
}

StatusOr<std::shared_ptr<void>> OutputBufferPool::Acquire(size_t bytes, const std::function<Status(size_t)>& admit) {
  if (bytes == 0) return InvalidArgument("OutputBufferPool: a buffer of 0 bytes");
  // aligned_alloc wants a multiple of the alignment. Fit is judged on that
  // rounded size, or a buffer of a few bytes (a loop body's scalar) would
  // never be reused by a request of the same size.
  const size_t capacity = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  {
    MutexLock lock(mutex_);
    // Best fit among the buffers that are large enough but not wasteful.
    size_t best = released_.size();
    for (size_t i = 0; i < released_.size(); ++i) {
      const size_t held = released_[i].capacity;
      if (held < capacity || held / 2 > capacity) continue;
      if (best == released_.size() || held < released_[best].capacity) best = i;
    }
    if (best != released_.size()) {
      const Buffer buffer = released_[best];
      released_[best] = released_.back();
      released_.pop_back();
      return Own(buffer);
    }
  }
  if (admit) KILN_RETURN_IF_ERROR(admit(bytes));
  void* data = AllocateBuffer(capacity);
  if (data == nullptr) return ResourceExhausted("cannot allocate ", bytes, " bytes for a graph output");
  return Own(Buffer{data, capacity});
}

size_t OutputBufferPool::pooled_buffers() const {
  MutexLock lock(mutex_);
  return released_.size();
}

size_t OutputBufferPool::pooled_bytes() const {
  MutexLock lock(mutex_);
  size_t bytes = 0;
  for (const Buffer& buffer : released_) bytes += buffer.capacity;
  return bytes;
}

std::shared_ptr<void> OutputBufferPool::Own(Buffer buffer) {
  std::weak_ptr<OutputBufferPool> pool = weak_from_this();
  return std::shared_ptr<void>(buffer.data, [pool = std::move(pool), capacity = buffer.capacity](void* data) {
    const Buffer released{data, capacity};
    if (std::shared_ptr<OutputBufferPool> live = pool.lock()) {
      live->Release(released);
    } else {
      Free(released);
    }
  });
}

void OutputBufferPool::Release(Buffer buffer) {
  {
    MutexLock lock(mutex_);
    if (released_.size() < max_buffers_) {
      released_.push_back(buffer);
      return;
    }
  }
  Free(buffer);
}

void OutputBufferPool::Free(Buffer buffer) { std::free(buffer.data); }

}  // namespace kiln::runtime
