#include "kiln/tensor.h"

#include "kiln/sequence.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace kiln {
namespace {

// Tensors of at least this size start on a 2 MiB boundary, span whole 2 MiB
// pages and ask for transparent huge pages (Linux's THP "madvise" mode
// grants them only on request): touching a fresh buffer then costs one page
// fault per 2 MiB instead of 512, and on virtual machines, where a fault is
// expensive, first-touch faults were most of a first run over large
// activations.
constexpr size_t kHugePage = size_t{2} << 20;

void* AllocateBytes(size_t bytes, size_t alignment) {
  if (bytes < kHugePage) return std::aligned_alloc(alignment, bytes);
  const size_t padded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* data = std::aligned_alloc(kHugePage, padded);
  // Advice only: where it is refused, the memory is the same, in 4 KiB pages.
  if (data != nullptr) ::madvise(data, padded, MADV_HUGEPAGE);
  return data;
}

}  // namespace

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat64:
    case DType::kInt64: return 8;
    case DType::kFloat32:
    case DType::kInt32: return 4;
    case DType::kInt16: return 2;
    case DType::kInt8:
    case DType::kUint8:
    case DType::kBool: return 1;
    case DType::kUndefined:
    case DType::kSequence: return 0;
  }
  return 0;
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kInt64: return "int64";
    case DType::kInt32: return "int32";
    case DType::kInt16: return "int16";
    case DType::kInt8: return "int8";
    case DType::kUint8: return "uint8";
    case DType::kBool: return "bool";
    case DType::kUndefined: return "undefined";
    case DType::kSequence: return "sequence";
  }
  return "undefined";
}

StatusOr<int64_t> CheckedNumElements(const Dims& dims, DType dtype) {
  int64_t nonzero = 1;  // product of the non-zero dims, kept <= kMaxDimsProduct
  bool empty = false;
  for (int64_t d : dims) {
    if (d < 0) return InvalidArgument("negative dimension ", d, " in shape ", DimsToString(dims));
    if (d == 0) {
      empty = true;
      continue;
    }
    if (nonzero > kMaxDimsProduct / d) {
      return ResourceExhausted("shape ", DimsToString(dims),
                               " is too large: its non-zero dims multiply to more than 2^48, kiln's bound so that no "
                               "index arithmetic on a shape overflows",
                               empty ? " (even an empty tensor's)" : "");
    }
    nonzero *= d;
  }
  // kMaxDimsProduct times any element size fits int64, so no byte overflow.
  static_assert(kMaxDimsProduct <= std::numeric_limits<int64_t>::max() / 16);
  return empty ? 0 : nonzero;
}

std::string DimsToString(const Dims& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

Tensor::Tensor(DType dtype, Dims dims, std::shared_ptr<void> owner, void* data)
    : dtype_(dtype), dims_(std::move(dims)), owner_(std::move(owner)), data_(data) {
  // Views take any dims a caller passes; an overflowing product saturates
  // instead of being undefined, and CheckedNumElements (which Session::Run
  // applies to every input) reports it.
  num_elements_ = 1;
  for (int64_t d : dims_) {
    if (__builtin_mul_overflow(num_elements_, d, &num_elements_)) num_elements_ = INT64_MAX;
  }
}

StatusOr<Tensor> Tensor::Allocate(DType dtype, Dims dims) {
  if (dtype == DType::kUndefined) return InvalidArgument("cannot allocate a tensor of undefined dtype");
  if (dtype == DType::kSequence) return InvalidArgument("a sequence is made by MakeSequence, not allocated");
  KILN_ASSIGN_OR_RETURN(int64_t count, CheckedNumElements(dims, dtype));
  size_t bytes = static_cast<size_t>(count) * DTypeSize(dtype);
  // aligned_alloc needs a size that is a multiple of the alignment; a
  // zero-sized tensor still gets a unique non-null pointer.
  constexpr size_t kAlign = 64;
  size_t padded = (bytes + kAlign - 1) / kAlign * kAlign;
  if (padded == 0) padded = kAlign;
  void* data = AllocateBytes(padded, kAlign);
  if (data == nullptr) {
    return ResourceExhausted("cannot allocate ", bytes, " bytes for a ", DTypeName(dtype), " tensor of shape ",
                             DimsToString(dims));
  }
  std::shared_ptr<void> owner(data, [](void* p) { std::free(p); });
  return Tensor(dtype, std::move(dims), std::move(owner), data);
}

Tensor Tensor::View(DType dtype, Dims dims, void* data) { return Tensor(dtype, std::move(dims), nullptr, data); }

Tensor Tensor::Shared(DType dtype, Dims dims, std::shared_ptr<void> owner, void* data) {
  return Tensor(dtype, std::move(dims), std::move(owner), data);
}

Tensor Tensor::Reshaped(Dims dims) const { return Tensor(dtype_, std::move(dims), owner_, data_); }

StatusOr<Tensor> Tensor::Clone() const {
  // Sequences are immutable: a copy shares the elements.
  if (dtype_ == DType::kSequence) return CopySequence(*this);
  KILN_ASSIGN_OR_RETURN(Tensor copy, Allocate(dtype_, dims_));
  if (byte_size() > 0) std::memcpy(copy.raw_data(), data_, byte_size());
  return copy;
}

}  // namespace kiln
