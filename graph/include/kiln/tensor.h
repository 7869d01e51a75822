// kiln's tensor: a dtype, a dense row-major shape and a pointer to the data,
// which the tensor either owns (shared, reference counted) or borrows from
// the caller (a zero-copy view).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/status.h"

namespace kiln {

// Element types kiln knows. Kernels state which of these they accept;
// float16, bfloat16, complex and string tensors are rejected at load.
enum class DType : uint8_t {
  kUndefined = 0,
  kFloat32,
  kFloat64,
  kInt64,
  kInt32,
  kInt16,
  kInt8,
  kUint8,
  kBool,
  // Not an element type: a tensor of this dtype carries an ONNX sequence of
  // tensors, or the absent value of an ONNX optional (kiln/sequence.h makes
  // and reads them). Its data is no array of elements, and allocating one
  // fails.
  kSequence,
};

// Bytes per element (bool is one byte); 0 for kUndefined.
KILN_API size_t DTypeSize(DType dtype);
// "float32", "int64", ...
KILN_API const char* DTypeName(DType dtype);

template <typename T>
constexpr DType DTypeOf();
template <>
constexpr DType DTypeOf<float>() {
  return DType::kFloat32;
}
template <>
constexpr DType DTypeOf<double>() {
  return DType::kFloat64;
}
template <>
constexpr DType DTypeOf<int64_t>() {
  return DType::kInt64;
}
template <>
constexpr DType DTypeOf<int32_t>() {
  return DType::kInt32;
}
template <>
constexpr DType DTypeOf<int16_t>() {
  return DType::kInt16;
}
template <>
constexpr DType DTypeOf<int8_t>() {
  return DType::kInt8;
}
template <>
constexpr DType DTypeOf<uint8_t>() {
  return DType::kUint8;
}
template <>
constexpr DType DTypeOf<bool>() {
  return DType::kBool;
}

using Dims = std::vector<int64_t>;

// No shape kiln accepts has non-zero dims multiplying to more than this
// (2^48 elements, far beyond any memory), empty tensors included: a
// [0, 2^62] tensor holds nothing, but kernels do index arithmetic on its
// dims (strides, row lengths, work estimates), which must not overflow.
constexpr int64_t kMaxDimsProduct = int64_t{1} << 48;

// Product of dims, or an error if any dim is negative or the non-zero dims
// multiply to more than kMaxDimsProduct (kResourceExhausted).
KILN_API StatusOr<int64_t> CheckedNumElements(const Dims& dims, DType dtype = DType::kUint8);
// "[2, 3, 4]"
KILN_API std::string DimsToString(const Dims& dims);

class KILN_API Tensor {
 public:
  // An empty, undefined tensor (dtype kUndefined, no data).
  Tensor() = default;

  // Allocates an owned, 64-byte aligned, uninitialised tensor. Fails on a
  // negative dim, an overflowing size, or when memory runs out.
  static StatusOr<Tensor> Allocate(DType dtype, Dims dims);

  // Borrows `data`, which must hold num_elements * DTypeSize bytes and
  // outlive every use of the view. No copy is made.
  static Tensor View(DType dtype, Dims dims, void* data);

  // Shares ownership of `owner`, whose memory contains `data`.
  static Tensor Shared(DType dtype, Dims dims, std::shared_ptr<void> owner, void* data);

  DType dtype() const { return dtype_; }
  const Dims& dims() const { return dims_; }
  int64_t rank() const { return static_cast<int64_t>(dims_.size()); }
  int64_t dim(int64_t i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t num_elements() const { return num_elements_; }
  size_t byte_size() const { return static_cast<size_t>(num_elements_) * DTypeSize(dtype_); }
  bool defined() const { return dtype_ != DType::kUndefined; }
  // True when the tensor borrows memory it does not own.
  bool is_view() const { return owner_ == nullptr && data_ != nullptr; }

  void* raw_data() { return data_; }
  const void* raw_data() const { return data_; }
  template <typename T>
  T* data() {
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    return static_cast<const T*>(data_);
  }

  // Same data, new dims with the same element count (checked by caller).
  Tensor Reshaped(Dims dims) const;

  // A deep copy that owns its memory.
  StatusOr<Tensor> Clone() const;

 private:
  Tensor(DType dtype, Dims dims, std::shared_ptr<void> owner, void* data);

  DType dtype_ = DType::kUndefined;
  Dims dims_;
  int64_t num_elements_ = 0;
  std::shared_ptr<void> owner_;
  void* data_ = nullptr;
};

}  // namespace kiln
