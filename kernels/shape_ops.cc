// Ops that make tensors from shapes or attributes rather than from input
// data: Shape, Size, Constant, ConstantOfShape, Range, EyeLike.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>

#include "graph/onnx_dtype.h"
#include "kernels/tensor_ops_common.h"

namespace kiln::kernels {
namespace {

// ------------------------------------------------------------ Shape, Size

class ShapeKernel final : public OpKernel {
 public:
  ShapeKernel(int64_t start, std::optional<int64_t> end) : start_(start), end_(end) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    if (in == nullptr) return InvalidArgument("Shape: input is missing");
    // Opset 15's start/end clamp to [0, rank] after adding rank to negatives.
    const int64_t rank = in->rank();
    const auto clamp = [rank](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
    const int64_t begin = clamp(start_);
    const int64_t end = end_ ? clamp(*end_) : rank;
    const int64_t n = std::max<int64_t>(0, end - begin);
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kInt64, {n}));
    for (int64_t i = 0; i < n; ++i) out->data<int64_t>()[i] = in->dim(begin + i);
    return Status::Ok();
  }

 private:
  int64_t start_;
  std::optional<int64_t> end_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateShape(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t start, node.GetInt("start", 0));
  std::optional<int64_t> end;
  if (node.FindAttribute("end") != nullptr) {
    KILN_ASSIGN_OR_RETURN(end, node.GetInt("end", 0));
  }
  return std::unique_ptr<OpKernel>(new ShapeKernel(start, end));
}

class SizeKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    if (in == nullptr) return InvalidArgument("Size: input is missing");
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kInt64, {}));
    out->data<int64_t>()[0] = in->num_elements();
    return Status::Ok();
  }
};

// --------------------------------------------------------------- Constant

class ConstantKernel final : public OpKernel {
 public:
  explicit ConstantKernel(Tensor value) : value_(std::move(value)) {}

  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, value_.dtype(), value_.dims()));
    ParallelCopy(ctx.parallel(), out->raw_data(), value_.raw_data(), value_.byte_size());
    return Status::Ok();
  }

 private:
  Tensor value_;  // owned copy, immutable after creation
};

template <typename T>
StatusOr<Tensor> TensorFromValues(const std::vector<T>& values, bool scalar) {
  Dims dims;
  if (!scalar) dims.push_back(static_cast<int64_t>(values.size()));
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Allocate(DTypeOf<T>(), dims));
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

StatusOr<std::unique_ptr<OpKernel>> CreateConstant(const graph::Node& node) {
  if (node.attributes.size() != 1) {
    return InvalidArgument("Constant: exactly one value attribute is required, got ", node.attributes.size());
  }
  const auto& [name, attr] = *node.attributes.begin();
  std::optional<Tensor> value;
  if (name == "value") {
    if (attr.kind != graph::Attribute::Kind::kTensor) return InvalidArgument("Constant: 'value' must be a tensor");
    KILN_ASSIGN_OR_RETURN(value, attr.t.Clone());
  } else if (name == "value_float") {
    KILN_ASSIGN_OR_RETURN(float v, node.GetFloat(name, 0.0f));
    KILN_ASSIGN_OR_RETURN(value, TensorFromValues(std::vector<float>{v}, true));
  } else if (name == "value_floats") {
    KILN_ASSIGN_OR_RETURN(std::vector<float> v, node.GetFloats(name));
    KILN_ASSIGN_OR_RETURN(value, TensorFromValues(v, false));
  } else if (name == "value_int") {
    KILN_ASSIGN_OR_RETURN(int64_t v, node.GetInt(name, 0));
    KILN_ASSIGN_OR_RETURN(value, TensorFromValues(std::vector<int64_t>{v}, true));
  } else if (name == "value_ints") {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, node.GetInts(name));
    KILN_ASSIGN_OR_RETURN(value, TensorFromValues(v, false));
  } else if (name == "sparse_value" || name == "value_string" || name == "value_strings") {
    return Unsupported("Constant: attribute '", name, "' is not supported");
  } else {
    return InvalidArgument("Constant: unknown attribute '", name, "'");
  }
  return std::unique_ptr<OpKernel>(new ConstantKernel(std::move(*value)));
}

// -------------------------------------------------------- ConstantOfShape

class ConstantOfShapeKernel final : public OpKernel {
 public:
  explicit ConstantOfShapeKernel(Tensor value) : value_(std::move(value)) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* shape = ctx.input(0);
    if (shape == nullptr) return InvalidArgument("ConstantOfShape: input is missing");
    KILN_ASSIGN_OR_RETURN(const std::vector<int64_t> dims, ReadIndexVector("ConstantOfShape", "shape", *shape));
    for (int64_t d : dims) {
      if (d < 0) return InvalidArgument("ConstantOfShape: negative dimension in shape ", DimsToString(dims));
    }
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, value_.dtype(), dims));
    DispatchElementSize(DTypeSize(value_.dtype()), [&](auto tag) {
      using U = decltype(tag);
      U v;
      std::memcpy(&v, value_.raw_data(), sizeof(U));
      std::fill_n(out->data<U>(), out->num_elements(), v);
    });
    return Status::Ok();
  }

 private:
  Tensor value_;  // one element
};

StatusOr<std::unique_ptr<OpKernel>> CreateConstantOfShape(const graph::Node& node) {
  const graph::Attribute* attr = node.FindAttribute("value");
  Tensor value;
  if (attr == nullptr) {
    KILN_ASSIGN_OR_RETURN(value, TensorFromValues(std::vector<float>{0.0f}, false));
  } else {
    if (attr->kind != graph::Attribute::Kind::kTensor || attr->t.num_elements() != 1) {
      return InvalidArgument("ConstantOfShape: 'value' must be a one-element tensor");
    }
    KILN_ASSIGN_OR_RETURN(value, attr->t.Clone());
  }
  return std::unique_ptr<OpKernel>(new ConstantOfShapeKernel(std::move(value)));
}

// ------------------------------------------------------------------ Range

template <typename T>
Status RangeTyped(KernelContext& ctx, const Tensor& start_t, const Tensor& limit_t, const Tensor& delta_t) {
  const T start = start_t.data<T>()[0];
  const T limit = limit_t.data<T>()[0];
  const T delta = delta_t.data<T>()[0];
  if (delta == T(0)) return InvalidArgument("Range: delta is 0");
  // n = max(ceil((limit - start) / delta), 0), computed in double as ONNX's
  // reference does; exact for the integer ranges that fit in memory.
  const double count =
      std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / static_cast<double>(delta));
  // Just under 2^53: past it a double no longer counts every integer, so
  // the element count itself would be inexact.
  constexpr double kMaxExactCount = 9.0e15;
  if (!(count < kMaxExactCount)) return InvalidArgument("Range: too many elements (", count, ")");
  const int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DTypeOf<T>(), {n}));
  T* o = out->data<T>();
  for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(start + static_cast<T>(i) * delta);
  return Status::Ok();
}

class RangeKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    const Tensor* start = ctx.input(0);
    const Tensor* limit = ctx.input(1);
    const Tensor* delta = ctx.input(2);
    if (start == nullptr || limit == nullptr || delta == nullptr) {
      return InvalidArgument("Range: expects start, limit and delta");
    }
    for (const Tensor* t : {start, limit, delta}) {
      if (t->dtype() != start->dtype()) return InvalidArgument("Range: inputs must have the same dtype");
      if (t->num_elements() != 1) {
        return InvalidArgument("Range: inputs must be scalars, got shape ", DimsToString(t->dims()));
      }
    }
    switch (start->dtype()) {
      case DType::kFloat32: return RangeTyped<float>(ctx, *start, *limit, *delta);
      case DType::kFloat64: return RangeTyped<double>(ctx, *start, *limit, *delta);
      case DType::kInt64: return RangeTyped<int64_t>(ctx, *start, *limit, *delta);
      case DType::kInt32: return RangeTyped<int32_t>(ctx, *start, *limit, *delta);
      case DType::kInt16: return RangeTyped<int16_t>(ctx, *start, *limit, *delta);
      default: return Unsupported("Range: dtype ", DTypeName(start->dtype()), " is not supported");
    }
  }
};

// ---------------------------------------------------------------- EyeLike

template <typename T>
void FillEye(Tensor& out, int64_t k) {
  const int64_t rows = out.dim(0);
  const int64_t cols = out.dim(1);
  T* o = out.data<T>();
  std::fill_n(o, rows * cols, T(0));
  for (int64_t r = std::max<int64_t>(0, -k); r < rows && r + k < cols; ++r) o[r * cols + r + k] = T(1);
}

class EyeLikeKernel final : public OpKernel {
 public:
  EyeLikeKernel(std::optional<DType> dtype, int64_t k) : dtype_(dtype), k_(k) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    if (in == nullptr) return InvalidArgument("EyeLike: input is missing");
    if (in->rank() != 2) return InvalidArgument("EyeLike: input must be 2-D, got ", DimsToString(in->dims()));
    const DType dtype = dtype_.value_or(in->dtype());
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, dtype, in->dims()));
    switch (dtype) {
      case DType::kFloat32: FillEye<float>(*out, k_); break;
      case DType::kFloat64: FillEye<double>(*out, k_); break;
      case DType::kInt64: FillEye<int64_t>(*out, k_); break;
      case DType::kInt32: FillEye<int32_t>(*out, k_); break;
      case DType::kInt16: FillEye<int16_t>(*out, k_); break;
      case DType::kInt8: FillEye<int8_t>(*out, k_); break;
      case DType::kUint8: FillEye<uint8_t>(*out, k_); break;
      case DType::kBool: FillEye<bool>(*out, k_); break;
      case DType::kUndefined:
      case DType::kSequence: return Unsupported("EyeLike: dtype ", DTypeName(dtype), " is not supported");
    }
    return Status::Ok();
  }

 private:
  std::optional<DType> dtype_;  // nullopt: the input's dtype
  int64_t k_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateEyeLike(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t k, node.GetInt("k", 0));
  std::optional<DType> dtype;
  if (node.FindAttribute("dtype") != nullptr) {
    KILN_ASSIGN_OR_RETURN(int64_t code, node.GetInt("dtype", 1));
    dtype = graph::DTypeFromOnnxCode(code);
    if (!dtype) return Unsupported("EyeLike: dtype code ", code, " is not supported");
  }
  return std::unique_ptr<OpKernel>(new EyeLikeKernel(dtype, k));
}

}  // namespace

void RegisterShapeOps(KernelRegistry& r) {
  r.Register(KernelDef{"Shape", "", 1, kNoMaxOpset, CreateShape});
  r.Register(KernelDef{"Size", "", 1, kNoMaxOpset, MakeFactory<SizeKernel>()});
  r.Register(KernelDef{"Constant", "", 1, kNoMaxOpset, CreateConstant});
  r.Register(KernelDef{"ConstantOfShape", "", 9, kNoMaxOpset, CreateConstantOfShape});
  r.Register(KernelDef{"Range", "", 11, kNoMaxOpset, MakeFactory<RangeKernel>()});
  r.Register(KernelDef{"EyeLike", "", 9, kNoMaxOpset, CreateEyeLike});
}

}  // namespace kiln::kernels
