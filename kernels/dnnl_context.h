// Shared plumbing for the oneDNN-backed kernels (Conv, ConvTranspose, MatMul,
// Gemm, pooling): the one CPU engine, memory descriptors for kiln's dense
// row-major tensors, execution with a per-call scratchpad, a per-shape
// primitive cache, and the conversion of oneDNN's exceptions to Status.
//
// oneDNN reports failure by throwing dnnl::error. kiln does not let
// exceptions cross a module boundary, so every kernel runs its oneDNN calls
// inside GuardDnnl, which turns any exception into a Status.
#pragma once

#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "graph/bounded_map.h"
#include "graph/mutex.h"
#include "kernels/dnnl_threads.h"
#include "kernels/kernel.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::kernels {

// The CPU engine shared by every kernel. Created on first use; oneDNN engines
// are safe to use from many threads.
const dnnl::engine& DnnlEngine();

// Converts kiln dims to oneDNN dims (both are int64_t).
inline dnnl::memory::dims ToDnnlDims(const Dims& dims) { return dnnl::memory::dims(dims.begin(), dims.end()); }

// A float32 descriptor for a dense row-major tensor of `dims`.
dnnl::memory::desc PlainF32Desc(const Dims& dims);
// A descriptor of `type` for a dense row-major tensor of `dims`.
dnnl::memory::desc PlainDesc(const Dims& dims, dnnl::memory::data_type type);
// A float32 descriptor with explicit strides (in elements).
dnnl::memory::desc StridedF32Desc(const Dims& dims, const Dims& strides);
// Row-major strides of `dims`.
Dims RowMajorStrides(const Dims& dims);

// Converts a oneDNN failure to a Status naming `op`: "unimplemented" (no
// implementation for this problem) becomes kUnsupported, the rest kInternal.
Status DnnlErrorToStatus(const char* op, const dnnl::error& e);

// Runs `fn` (returning Status) and converts any exception it throws.
template <typename Fn>
Status GuardDnnl(const char* op, Fn&& fn) noexcept {
  try {
    return fn();
  } catch (const dnnl::error& e) {
    return DnnlErrorToStatus(op, e);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted(op, ": out of memory in oneDNN");
  } catch (const std::exception& e) {
    return Internal(op, ": oneDNN failed: ", e.what());
  } catch (...) {
    return Internal(op, ": oneDNN failed with an unknown exception");
  }
}

// A primitive attribute with a user-managed scratchpad, so one primitive can
// run concurrently from several threads, each with its own scratchpad.
dnnl::primitive_attr UserScratchpadAttr();

// Executes `primitive` on the calling thread with DnnlThreadsFor threads
// for OpenMP (the bytes of `pd`'s source, weights and destination plus
// `flops`), at most `built_threads` when that is positive (a primitive
// must not run with more threads than it was built for), a fresh
// scratchpad of `pd`'s size and a fresh stream. `args` need not contain
// DNNL_ARG_SCRATCHPAD. May throw dnnl::error: call inside GuardDnnl.
void ExecuteDnnl(const KernelContext& ctx, const dnnl::primitive& primitive, const dnnl::primitive_desc_base& pd,
                 std::unordered_map<int, dnnl::memory> args, int built_threads = 0, double flops = 0);

// Wraps a tensor's memory (not copied, not owned) in a oneDNN memory object.
dnnl::memory WrapMemory(const dnnl::memory::desc& desc, const void* data);

// A reorder between two memory layouts, built once per plan.
struct DnnlReorder {
  dnnl::reorder::primitive_desc pd;
  dnnl::reorder primitive;
  int built_threads = 1;  // the OpenMP thread count it was built with
};
// May throw dnnl::error.
DnnlReorder MakeReorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to);
// Copies `from` into `to` in `to`'s layout. May throw dnnl::error.
void ExecuteReorder(const KernelContext& ctx, const DnnlReorder& reorder, const dnnl::memory& from,
                    const dnnl::memory& to);

// A weight tensor reordered once into the blocked layout a primitive prefers
// and reused on later calls while the same tensor comes back. The kernel
// cannot see whether its weights are a graph constant, so "the same tensor"
// means: the same address (initializers keep theirs for the session's life)
// and the same values at a fixed sample of positions. Weights that change at
// the same address are caught by the sample in practice and then reordered
// again. Thread-safe; the reorder runs under the lock, so concurrent first
// calls pack once.
class PackedWeightsCache {
 public:
  // Returns `weights` in the reorder's destination layout. Constant weights
  // (KernelContext::input_is_constant) are packed once and reused; weights
  // that arrive as a run-time input are packed on every call, since their
  // contents may change at the same address. May throw dnnl::error.
  dnnl::memory Get(const KernelContext& ctx, const DnnlReorder& reorder, const Tensor& weights,
                   bool weights_constant) const;

 private:
  mutable Mutex mu_;
  mutable const void* source_ KILN_GUARDED_BY(mu_) = nullptr;
  mutable dnnl::memory packed_ KILN_GUARDED_BY(mu_);
};

// The layout plumbing of a primitive created with format_tag::any for src,
// weights and dst: kiln's tensors are row-major ("user" layouts), the
// primitive may prefer blocked ones. src and dst are reordered on every call
// (cheap next to a convolution), weights once through PackedWeightsCache.
struct BlockedIo {
  dnnl::memory::desc src_user, weights_user, dst_user;
  bool reorder_src = false, reorder_weights = false, reorder_dst = false;
  DnnlReorder src_reorder, weights_reorder, dst_reorder;
  PackedWeightsCache weights_cache;
  int built_threads = 0;  // the OpenMP thread count when Prepare ran: the primitive's
  double flops = 0;       // the primitive's arithmetic per run (DnnlWork), set before Prepare

  // Builds the reorders needed between the user descriptors (set before)
  // and the primitive's chosen ones. May throw dnnl::error.
  void Prepare(const dnnl::memory::desc& src, const dnnl::memory::desc& weights, const dnnl::memory::desc& dst);

  // Runs `primitive` on row-major `src`, `weights` and `dst` memory plus
  // `extra` arguments (bias). May throw dnnl::error.
  void Execute(const KernelContext& ctx, const dnnl::primitive& primitive, const dnnl::primitive_desc_base& pd,
               const void* src, const Tensor& weights, bool weights_constant, void* dst,
               std::unordered_map<int, dnnl::memory> extra) const;
};

// A float32 descriptor of `dims` whose layout oneDNN chooses.
inline dnnl::memory::desc AnyF32Desc(const Dims& dims) {
  return dnnl::memory::desc(ToDnnlDims(dims), dnnl::memory::data_type::f32, dnnl::memory::format_tag::any);
}

// Sets the calling thread's OpenMP thread count to `threads` while it lives,
// restoring it after. oneDNN sizes a primitive's work split and per-thread
// scratchpad from that count when the primitive is created, and its
// blocked implementations then run with exactly that many threads, whatever
// the count when they execute: a primitive built for more threads than its
// run was granted takes cores the session was not given. So a primitive is
// built for the thread count of the runs that execute it.
class DnnlCreationThreads {
 public:
  explicit DnnlCreationThreads(int threads);
  ~DnnlCreationThreads();
  DnnlCreationThreads(const DnnlCreationThreads&) = delete;
  DnnlCreationThreads& operator=(const DnnlCreationThreads&) = delete;

 private:
  int saved_;
};

// Per-shape cache of whatever a kernel builds once per input signature
// (primitive descriptors, primitives, reorders). Lookups and inserts are
// guarded by a mutex, since Compute may run concurrently; entries are
// immutable once built and shared by pointer, so executing one needs no lock.
// The cache is bounded: a model whose shapes change on every call rebuilds
// instead of growing without limit.
template <typename Entry>
class ShapeCache {
 public:
  // Returns the entry for `key` and runs of `threads` threads, building it
  // with `make()` (returning StatusOr<std::shared_ptr<const Entry>>) on
  // first use, for that many threads (DnnlCreationThreads). `make` may throw
  // oneDNN errors: call inside GuardDnnl.
  template <typename Make>
  StatusOr<std::shared_ptr<const Entry>> GetOrCreate(std::vector<int64_t> key, int threads, Make&& make) const {
    key.push_back(threads);
    MutexLock lock(mu_);
    if (const std::shared_ptr<const Entry>* found = entries_.Find(key)) return *found;
    DnnlCreationThreads creation_threads(threads);
    StatusOr<std::shared_ptr<const Entry>> made = make();
    if (!made.ok()) return made.status();
    entries_.Put(key, *made);
    return made;
  }

  // Publishes an entry built outside the cache for runs of `threads` threads
  // (by background preparation, without holding the lock while building).
  void Insert(std::vector<int64_t> key, int threads, std::shared_ptr<const Entry> entry) const {
    key.push_back(threads);
    MutexLock lock(mu_);
    entries_.Put(key, std::move(entry));
  }

  // Drops every entry; callers still holding one keep it alive.
  void Clear() const {
    MutexLock lock(mu_);
    entries_.Clear();
  }

 private:
  // Room for the shapes a model with dynamic dimensions usually cycles
  // through (a few batch sizes times a few sequence lengths); a stream of
  // ever-new shapes starts over instead of growing.
  static constexpr size_t kMaxEntries = 64;
  mutable Mutex mu_;
  mutable BoundedMap<std::vector<int64_t>, std::shared_ptr<const Entry>> entries_ KILN_GUARDED_BY(mu_){kMaxEntries};
};

inline bool HasZeroDim(const Dims& dims) {
  for (int64_t d : dims) {
    if (d == 0) return true;
  }
  return false;
}

// Appends `dims` to a cache key, prefixed by their count so keys built from
// several dims lists cannot collide.
inline void AppendKey(std::vector<int64_t>& key, const Dims& dims) {
  key.push_back(static_cast<int64_t>(dims.size()));
  key.insert(key.end(), dims.begin(), dims.end());
}

}  // namespace kiln::kernels
