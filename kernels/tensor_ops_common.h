// Shared plumbing of the shape and data-movement kernel family: axis and
// index-tensor parsing, and the byte-copy engines (a parallel memcpy and a
// strided gather copy) that Reshape, Slice, Expand, Tile and Transpose are
// built on. Data movement never looks at values, only at element sizes, so
// every helper here works on any kiln dtype.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/axis.h"
#include "kernels/kernel.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::kernels {

// Bytes per parallel task for copies. A copy is bound by memory bandwidth;
// below this size handing work to another thread costs more than it saves.
inline constexpr int64_t kCopyGrainBytes = 64 * 1024;

// Normalises every axis of `axes` against `rank` and rejects duplicates.
StatusOr<std::vector<int64_t>> NormalizeAxes(const char* op, const std::vector<int64_t>& axes, int64_t rank);

// The values of an int32 or int64 tensor of rank 0 or 1 (`what` names it in
// errors, e.g. "shape").
StatusOr<std::vector<int64_t>> ReadIndexVector(const char* op, const char* what, const Tensor& t);

// The single value of an int32/int64 (or, when `allow_float`, float/double)
// scalar or one-element tensor, converted to int64.
StatusOr<int64_t> ReadIndexScalar(const char* op, const char* what, const Tensor& t);

// Copies `bytes` bytes from `src` to `dst` (non-overlapping), split across
// threads when large.
void ParallelCopy(const ParallelRunner& parallel, void* dst, const void* src, size_t bytes);

// Writes a dense row-major tensor of `out_dims` into `dst`, reading element
// (i0, ..., ik) from src + sum(ij * src_strides[j]). Strides are in elements
// and may be zero (broadcast axes) or negative (reversed slices). Axes over
// which the source is contiguous are merged, and contiguous inner runs are
// copied with memcpy.
void StridedCopy(const ParallelRunner& parallel, size_t elem_size, void* dst, const void* src, Dims out_dims,
                 std::vector<int64_t> src_strides);

// Walks the row-major index space of `dims` from a starting linear index,
// keeping the matching offset (sum of coordinate * stride) up to date
// without a division per step. Holds references: `dims` and `strides` must
// outlive it.
class Odometer {
 public:
  Odometer(const Dims& dims, const std::vector<int64_t>& strides, int64_t start)
      : dims_(dims), strides_(strides), coords_(dims.size(), 0) {
    for (size_t i = dims.size(); i-- > 0;) {
      coords_[i] = start % dims[i];
      start /= dims[i];
      offset_ += coords_[i] * strides[i];
    }
  }
  int64_t offset() const { return offset_; }
  void Next() {
    for (size_t i = dims_.size(); i-- > 0;) {
      offset_ += strides_[i];
      if (++coords_[i] < dims_[i]) return;
      offset_ -= coords_[i] * strides_[i];
      coords_[i] = 0;
    }
  }

 private:
  const Dims& dims_;
  const std::vector<int64_t>& strides_;
  std::vector<int64_t> coords_;
  int64_t offset_ = 0;
};

// Calls fn(U{}) with the unsigned integer type U as wide as one element;
// data movement copies elements through U. Every kiln dtype is 1, 2, 4 or 8
// bytes wide.
template <typename Fn>
void DispatchElementSize(size_t elem_size, Fn&& fn) {
  switch (elem_size) {
    case 1: fn(uint8_t{}); break;
    case 2: fn(uint16_t{}); break;
    case 4: fn(uint32_t{}); break;
    default: fn(uint64_t{}); break;
  }
}

// Row-major strides (in elements) of `dims`.
std::vector<int64_t> ContiguousStrides(const Dims& dims);

// Product of dims[begin, end).
int64_t DimProduct(const Dims& dims, size_t begin, size_t end);

// Per-file registration entry points; tensor_ops_family.cc calls them all.
void RegisterReshapeOps(KernelRegistry& registry);      // reshape.cc
void RegisterTransposeOp(KernelRegistry& registry);     // transpose.cc
void RegisterConcatSplitOps(KernelRegistry& registry);  // concat_split.cc
void RegisterSliceOp(KernelRegistry& registry);         // slice.cc
void RegisterGatherOps(KernelRegistry& registry);       // gather.cc
void RegisterShapeOps(KernelRegistry& registry);        // shape_ops.cc
void RegisterExpandTileOps(KernelRegistry& registry);   // expand_tile.cc
void RegisterIndexingOps(KernelRegistry& registry);     // indexing_ops.cc

}  // namespace kiln::kernels
