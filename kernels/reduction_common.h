// Shared plumbing of the reduction family (reductions, ArgMax/ArgMin,
// softmax-like ops, LayerNormalization, Resize, Pad): axis normalisation,
// the [outer, axis, inner] view of a tensor around one axis, a vectorisable
// contiguous row reduction, and the per-file registration entry points that
// reduction_family.cc calls.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/axis.h"
#include "kernels/elementwise_common.h"
#include "kernels/kernel.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::kernels {

// Work (in elements touched) below which a parallel task is not worth
// scheduling; reductions read each element once, like elementwise ops.
inline constexpr int64_t kReductionGrainElements = 32 * 1024;

// A tensor seen as [outer, axis, inner] around one axis (or a block of axes).
struct AxisView {
  int64_t outer = 1;
  int64_t axis = 1;
  int64_t inner = 1;
};

// Splits `dims` as [dims[0:begin], dims[begin:end], dims[end:]].
inline AxisView MakeAxisView(const Dims& dims, int64_t begin, int64_t end) {
  AxisView v;
  for (int64_t i = 0; i < static_cast<int64_t>(dims.size()); ++i) {
    const int64_t d = dims[static_cast<size_t>(i)];
    if (i < begin) {
      v.outer *= d;
    } else if (i < end) {
      v.axis *= d;
    } else {
      v.inner *= d;
    }
  }
  return v;
}

// Parallel tasks covering `n` items of `work_per_item` elements each: one
// grain keeps a task near kReductionGrainElements.
inline int64_t GrainFor(int64_t work_per_item) {
  const int64_t w = work_per_item > 0 ? work_per_item : 1;
  const int64_t g = kReductionGrainElements / w;
  return g > 0 ? g : 1;
}

// Runs body(begin, end) over [0, n) items, inline when the total work is
// small or there is one thread.
template <typename Body>
void ParallelItems(const ParallelRunner& parallel, int64_t n, int64_t work_per_item, const Body& body) {
  if (n <= 0) return;
  const int64_t grain = GrainFor(work_per_item);
  if (n <= grain || parallel.num_threads() <= 1) {
    body(int64_t{0}, n);
    return;
  }
  parallel.For(n, grain, [&body](int64_t begin, int64_t end) { body(begin, end); });
}

// Folds n contiguous elements with R::Update into kLanes independent
// accumulators, then R::Combine; the independent lanes let the compiler
// vectorise a float reduction without reassociating it (-ffast-math is off).
// Returns the unfinalised accumulator. `shift` is passed through to
// R::Update (LogSumExp subtracts the row maximum).
template <typename R, typename T>
inline T ReduceRow(const T* x, int64_t n, T shift) {
  constexpr int kLanes = 16;
  T acc[kLanes];
  for (int k = 0; k < kLanes; ++k) acc[k] = R::Init();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) acc[k] = R::Update(acc[k], x[i + k], shift);
  }
  T total = acc[0];
  for (int k = 1; k < kLanes; ++k) total = R::Combine(total, acc[k]);
  for (; i < n; ++i) total = R::Update(total, x[i], shift);
  return total;
}

// max and min that the compiler turns into vector max/min instructions.
template <typename T>
inline T MaxOf(T a, T b) {
  return a > b ? a : b;
}
template <typename T>
inline T MinOf(T a, T b) {
  return a < b ? a : b;
}

// The accumulator of a plain maximum, for ReduceRow.
template <typename T>
struct MaxReducer {
  static T Init() {
    return std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                : std::numeric_limits<T>::lowest();
  }
  static T Update(T acc, T x, T) { return MaxOf(acc, x); }
  static T Combine(T a, T b) { return MaxOf(a, b); }
};

// The accumulator of a plain (floating-point) sum, for ReduceRow.
template <typename T>
struct PlainSumReducer {
  static T Init() { return T(0); }
  static T Update(T acc, T x, T) { return acc + x; }
  static T Combine(T a, T b) { return a + b; }
};

// Reads a 1-D (or scalar) int64/int32 tensor of indices, axes or sizes.
inline StatusOr<std::vector<int64_t>> ReadInt64List(const char* op, const char* what, const Tensor& t) {
  if (t.rank() > 1) {
    return InvalidArgument(op, ": ", what, " must be 1-D, got shape ", DimsToString(t.dims()));
  }
  std::vector<int64_t> out(static_cast<size_t>(t.num_elements()));
  if (t.dtype() == DType::kInt64) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = t.data<int64_t>()[i];
  } else if (t.dtype() == DType::kInt32) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = t.data<int32_t>()[i];
  } else {
    return InvalidArgument(op, ": ", what, " must be int64, got ", DTypeName(t.dtype()));
  }
  return out;
}

// Registration of each file of the family; see reduction_family.cc.
void RegisterReduceOps(KernelRegistry& registry);
void RegisterArgMinMaxOps(KernelRegistry& registry);
void RegisterSoftmaxOps(KernelRegistry& registry);
void RegisterLayerNormOp(KernelRegistry& registry);
void RegisterResizeOps(KernelRegistry& registry);
void RegisterPadOp(KernelRegistry& registry);

}  // namespace kiln::kernels
