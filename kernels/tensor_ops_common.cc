#include "kernels/tensor_ops_common.h"

#include <algorithm>
#include <cstring>
#include <set>

namespace kiln::kernels {
namespace {

// dst[r * inner + i] = src[offset(r) + i * stride] for rows [begin, end).
template <typename T>
void StridedRows(T* dst, const T* src, const Dims& outer, const std::vector<int64_t>& outer_strides, int64_t inner,
                 int64_t stride, int64_t begin, int64_t end) {
  Odometer odo(outer, outer_strides, begin);
  for (int64_t r = begin; r < end; ++r, odo.Next()) {
    const T* s = src + odo.offset();
    T* d = dst + r * inner;
    if (stride == 0) {
      const T v = *s;
      for (int64_t i = 0; i < inner; ++i) d[i] = v;
    } else {
      for (int64_t i = 0; i < inner; ++i) d[i] = s[i * stride];
    }
  }
}

}  // namespace

StatusOr<std::vector<int64_t>> NormalizeAxes(const char* op, const std::vector<int64_t>& axes, int64_t rank) {
  std::vector<int64_t> out;
  out.reserve(axes.size());
  std::set<int64_t> seen;
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(int64_t n, NormalizeAxis(op, a, rank));
    if (!seen.insert(n).second) return InvalidArgument(op, ": axis ", a, " is repeated");
    out.push_back(n);
  }
  return out;
}

StatusOr<std::vector<int64_t>> ReadIndexVector(const char* op, const char* what, const Tensor& t) {
  if (t.rank() > 1) {
    return InvalidArgument(op, ": ", what, " must be a 1-D tensor, got shape ", DimsToString(t.dims()));
  }
  const int64_t n = t.num_elements();
  std::vector<int64_t> out(static_cast<size_t>(n));
  if (t.dtype() == DType::kInt64) {
    std::copy(t.data<int64_t>(), t.data<int64_t>() + n, out.begin());
  } else if (t.dtype() == DType::kInt32) {
    std::copy(t.data<int32_t>(), t.data<int32_t>() + n, out.begin());
  } else {
    return InvalidArgument(op, ": ", what, " must be int32 or int64, got ", DTypeName(t.dtype()));
  }
  return out;
}

StatusOr<int64_t> ReadIndexScalar(const char* op, const char* what, const Tensor& t) {
  if (t.num_elements() != 1) {
    return InvalidArgument(op, ": ", what, " must have exactly one element, got shape ", DimsToString(t.dims()));
  }
  switch (t.dtype()) {
    case DType::kInt64: return t.data<int64_t>()[0];
    case DType::kInt32: return static_cast<int64_t>(t.data<int32_t>()[0]);
    default: return InvalidArgument(op, ": ", what, " must be int32 or int64, got ", DTypeName(t.dtype()));
  }
}

void ParallelCopy(const ParallelRunner& parallel, void* dst, const void* src, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  const int64_t blocks = static_cast<int64_t>((bytes + kCopyGrainBytes - 1) / kCopyGrainBytes);
  if (blocks <= 1 || parallel.num_threads() <= 1) {
    std::memcpy(dst, src, bytes);
    return;
  }
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  parallel.For(blocks, 1, [&](int64_t begin, int64_t end) {
    const size_t lo = static_cast<size_t>(begin) * kCopyGrainBytes;
    const size_t hi = std::min(bytes, static_cast<size_t>(end) * kCopyGrainBytes);
    std::memcpy(d + lo, s + lo, hi - lo);
  });
}

std::vector<int64_t> ContiguousStrides(const Dims& dims) {
  std::vector<int64_t> strides(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
  return strides;
}

int64_t DimProduct(const Dims& dims, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end && i < dims.size(); ++i) p *= dims[i];
  return p;
}

void StridedCopy(const ParallelRunner& parallel, size_t elem_size, void* dst, const void* src, Dims out_dims,
                 std::vector<int64_t> src_strides) {
  int64_t total = 1;
  for (int64_t d : out_dims) total *= d;
  if (total == 0) return;

  // Drop unit axes, then merge each axis into its inner neighbour when the
  // source steps over it exactly as a contiguous layout would. Built
  // innermost first.
  Dims dims;
  std::vector<int64_t> strides;
  for (size_t i = out_dims.size(); i-- > 0;) {
    if (out_dims[i] == 1) continue;
    if (!dims.empty() && src_strides[i] == strides.back() * dims.back()) {
      dims.back() *= out_dims[i];
    } else {
      dims.push_back(out_dims[i]);
      strides.push_back(src_strides[i]);
    }
  }
  std::reverse(dims.begin(), dims.end());
  std::reverse(strides.begin(), strides.end());
  if (dims.empty()) {  // a single element
    std::memcpy(dst, src, elem_size);
    return;
  }

  const int64_t inner = dims.back();
  const int64_t inner_stride = strides.back();
  const Dims outer(dims.begin(), dims.end() - 1);
  const std::vector<int64_t> outer_strides(strides.begin(), strides.end() - 1);
  const int64_t rows = total / inner;
  const int64_t row_bytes = inner * static_cast<int64_t>(elem_size);
  const int64_t grain = std::max<int64_t>(1, kCopyGrainBytes / row_bytes);
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);

  if (inner_stride == 1) {
    if (rows == 1) {
      ParallelCopy(parallel, dst, src, static_cast<size_t>(row_bytes));
      return;
    }
    parallel.For(rows, grain, [&](int64_t begin, int64_t end) {
      Odometer odo(outer, outer_strides, begin);
      for (int64_t r = begin; r < end; ++r, odo.Next()) {
        std::memcpy(d + r * row_bytes, s + odo.offset() * static_cast<int64_t>(elem_size),
                    static_cast<size_t>(row_bytes));
      }
    });
    return;
  }

  parallel.For(rows, grain, [&](int64_t begin, int64_t end) {
    switch (elem_size) {
      case 1:
        StridedRows(reinterpret_cast<uint8_t*>(d), reinterpret_cast<const uint8_t*>(s), outer, outer_strides, inner,
                    inner_stride, begin, end);
        break;
      case 2:
        StridedRows(reinterpret_cast<uint16_t*>(d), reinterpret_cast<const uint16_t*>(s), outer, outer_strides, inner,
                    inner_stride, begin, end);
        break;
      case 4:
        StridedRows(reinterpret_cast<uint32_t*>(d), reinterpret_cast<const uint32_t*>(s), outer, outer_strides, inner,
                    inner_stride, begin, end);
        break;
      default:  // 8: every kiln dtype is 1, 2, 4 or 8 bytes
        StridedRows(reinterpret_cast<uint64_t*>(d), reinterpret_cast<const uint64_t*>(s), outer, outer_strides, inner,
                    inner_stride, begin, end);
        break;
    }
  });
}

}  // namespace kiln::kernels
