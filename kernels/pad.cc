// Pad: constant, reflect, edge and wrap padding of any dtype. Negative pads
// crop. Pads (and the constant value) are attributes before opset 11 and
// inputs from 11 on; opset 18 adds the optional `axes` input that says which
// axes the pads refer to.
//
// Every output axis gets a table mapping an output index to its source index
// (or -1 for "constant"). The output is then filled row by row (a row is the
// innermost axis): a row whose outer indices hit -1 is all constant; any
// other row copies its interior with one memcpy and maps the few border
// elements through the table.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels/reduction_common.h"

namespace kiln::kernels {
namespace {

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

// The source index of output index `i` along an axis of `n` elements with
// `begin` elements padded in front, or -1 for the constant.
int64_t SourceIndex(PadMode mode, int64_t i, int64_t begin, int64_t n) {
  int64_t j = i - begin;
  if (j >= 0 && j < n) return j;
  switch (mode) {
    case PadMode::kConstant: return -1;
    case PadMode::kEdge: return j < 0 ? 0 : n - 1;
    case PadMode::kReflect: {
      // Reflection without repeating the edge has period 2(n-1); padding
      // wider than the axis keeps reflecting, as numpy's pad does.
      if (n == 1) return 0;
      const int64_t period = 2 * (n - 1);
      j %= period;
      if (j < 0) j += period;
      return j < n ? j : period - j;
    }
    case PadMode::kWrap: j %= n; return j < 0 ? j + n : j;
  }
  return -1;
}

// Copies one element of `size` bytes; fixed sizes compile to single moves.
inline void CopyElement(uint8_t* dst, const uint8_t* src, size_t size) {
  switch (size) {
    case 1: *dst = *src; break;
    case 2: std::memcpy(dst, src, 2); break;
    case 4: std::memcpy(dst, src, 4); break;
    case 8: std::memcpy(dst, src, 8); break;
    default: std::memcpy(dst, src, size);
  }
}

void FillConstant(uint8_t* dst, int64_t count, const uint8_t* value, size_t size) {
  bool zero = true;
  for (size_t b = 0; b < size; ++b) zero = zero && value[b] == 0;
  if (zero) {
    std::memset(dst, 0, static_cast<size_t>(count) * size);
    return;
  }
  for (int64_t i = 0; i < count; ++i) CopyElement(dst + static_cast<size_t>(i) * size, value, size);
}

// The constant as the bytes of one element of `dtype`.
std::vector<uint8_t> ConstantBytes(DType dtype, double value) {
  std::vector<uint8_t> bytes(DTypeSize(dtype));
  auto put = [&bytes](auto v) { std::memcpy(bytes.data(), &v, sizeof(v)); };
  switch (dtype) {
    case DType::kFloat32: put(static_cast<float>(value)); break;
    case DType::kFloat64: put(value); break;
    case DType::kInt64: put(ConvertValue<int64_t>(value)); break;
    case DType::kInt32: put(ConvertValue<int32_t>(value)); break;
    case DType::kInt16: put(ConvertValue<int16_t>(value)); break;
    case DType::kInt8: put(ConvertValue<int8_t>(value)); break;
    case DType::kUint8: put(ConvertValue<uint8_t>(value)); break;
    case DType::kBool: put(static_cast<uint8_t>(value != 0)); break;
    case DType::kUndefined:
    case DType::kSequence: break;
  }
  return bytes;
}

class PadKernel final : public OpKernel {
 public:
  // Opsets < 11 pass pads and value as attributes (`from_inputs` false).
  PadKernel(PadMode mode, bool from_inputs, std::vector<int64_t> pads, float value)
      : mode_(mode), from_inputs_(from_inputs), pads_attr_(std::move(pads)), value_attr_(value) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument("Pad: missing input");
    const int64_t rank = x->rank();
    const size_t esize = DTypeSize(x->dtype());
    std::vector<int64_t> pads = pads_attr_;
    std::vector<uint8_t> value = ConstantBytes(x->dtype(), value_attr_);
    std::vector<int64_t> axes;
    if (from_inputs_) {
      if (ctx.input(1) == nullptr) return InvalidArgument("Pad: missing pads input");
      KILN_ASSIGN_OR_RETURN(pads, ReadInt64List("Pad", "pads", *ctx.input(1)));
      if (const Tensor* c = ctx.input(2); c != nullptr && c->num_elements() > 0) {
        if (c->dtype() != x->dtype()) {
          return InvalidArgument("Pad: constant_value has dtype ", DTypeName(c->dtype()), ", input has ",
                                 DTypeName(x->dtype()));
        }
        if (c->num_elements() != 1) {
          return InvalidArgument("Pad: constant_value must be a scalar, got shape ", DimsToString(c->dims()));
        }
        std::memcpy(value.data(), c->raw_data(), esize);
      }
      if (const Tensor* a = ctx.input(3); a != nullptr) {
        KILN_ASSIGN_OR_RETURN(axes, ReadInt64List("Pad", "axes", *a));
      }
    }
    // Pads for every axis, [begin..., end...].
    std::vector<int64_t> begin(static_cast<size_t>(rank), 0), end(static_cast<size_t>(rank), 0);
    if (!axes.empty()) {
      if (pads.size() != 2 * axes.size()) {
        return InvalidArgument("Pad: pads has ", pads.size(), " values, expected 2 * ", axes.size(), " axes");
      }
      std::vector<bool> seen(static_cast<size_t>(rank), false);
      for (size_t k = 0; k < axes.size(); ++k) {
        KILN_ASSIGN_OR_RETURN(int64_t a, NormalizeAxis("Pad", axes[k], rank));
        if (seen[static_cast<size_t>(a)]) return InvalidArgument("Pad: axis ", axes[k], " is repeated in axes");
        seen[static_cast<size_t>(a)] = true;
        begin[static_cast<size_t>(a)] = pads[k];
        end[static_cast<size_t>(a)] = pads[k + axes.size()];
      }
    } else {
      if (pads.size() != static_cast<size_t>(2 * rank)) {
        return InvalidArgument("Pad: pads has ", pads.size(), " values, expected ", 2 * rank, " for an input of rank ",
                               rank);
      }
      for (int64_t i = 0; i < rank; ++i) {
        begin[static_cast<size_t>(i)] = pads[static_cast<size_t>(i)];
        end[static_cast<size_t>(i)] = pads[static_cast<size_t>(i + rank)];
      }
    }
    Dims out_dims(static_cast<size_t>(rank));
    for (int64_t i = 0; i < rank; ++i) {
      const size_t k = static_cast<size_t>(i);
      const int64_t d = x->dim(i);
      // Guard the sum against overflow before it is formed.
      if (std::abs(begin[k]) > (int64_t{1} << 40) || std::abs(end[k]) > (int64_t{1} << 40)) {
        return InvalidArgument("Pad: pads ", begin[k], ", ", end[k], " on axis ", i, " are too large");
      }
      out_dims[k] = d + begin[k] + end[k];
      if (out_dims[k] < 0) {
        return InvalidArgument("Pad: pads ", begin[k], ", ", end[k], " on axis ", i, " crop more than its ", d,
                               " elements");
      }
      if (mode_ != PadMode::kConstant && d == 0 && out_dims[k] > 0) {
        return InvalidArgument("Pad: cannot pad the empty axis ", i, " in a non-constant mode");
      }
    }
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x->dtype(), out_dims));
    if (y->num_elements() == 0) return Status::Ok();
    const auto* in = static_cast<const uint8_t*>(x->raw_data());
    auto* out = static_cast<uint8_t*>(y->raw_data());
    if (rank == 0) {
      std::memcpy(out, in, esize);
      return Status::Ok();
    }

    // Per-axis source tables and input strides (in elements).
    std::vector<std::vector<int64_t>> source(static_cast<size_t>(rank));
    std::vector<int64_t> in_stride(static_cast<size_t>(rank));
    int64_t s = 1;
    for (int64_t i = rank; i-- > 0;) {
      const size_t k = static_cast<size_t>(i);
      in_stride[k] = s;
      s *= x->dim(i);
      source[k].resize(static_cast<size_t>(out_dims[k]));
      for (int64_t j = 0; j < out_dims[k]; ++j)
        source[k][static_cast<size_t>(j)] = SourceIndex(mode_, j, begin[k], x->dim(i));
    }
    const int64_t row_len = out_dims.back();
    const int64_t rows = y->num_elements() / row_len;
    const std::vector<int64_t>& last = source.back();
    // The interior [lo, hi) of the row maps to consecutive source elements.
    const int64_t lo = std::clamp<int64_t>(begin.back(), 0, row_len);
    const int64_t hi = std::clamp<int64_t>(begin.back() + x->dims().back(), lo, row_len);

    ParallelItems(ctx.parallel(), rows, row_len, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        uint8_t* dst = out + static_cast<size_t>(r * row_len) * esize;
        int64_t base = 0;
        bool constant_row = false;
        int64_t rest = r;
        for (int64_t i = rank - 1; i-- > 0;) {
          const size_t k = static_cast<size_t>(i);
          const int64_t src = source[k][static_cast<size_t>(rest % out_dims[k])];
          rest /= out_dims[k];
          if (src < 0) {
            constant_row = true;
            break;
          }
          base += src * in_stride[k];
        }
        if (constant_row) {
          FillConstant(dst, row_len, value.data(), esize);
          continue;
        }
        const uint8_t* src_row = in + static_cast<size_t>(base) * esize;
        for (int64_t j = 0; j < lo; ++j) {
          const int64_t src = last[static_cast<size_t>(j)];
          uint8_t* d = dst + static_cast<size_t>(j) * esize;
          src < 0 ? CopyElement(d, value.data(), esize)
                  : CopyElement(d, src_row + static_cast<size_t>(src) * esize, esize);
        }
        if (hi > lo) {
          std::memcpy(dst + static_cast<size_t>(lo) * esize, src_row + static_cast<size_t>(lo - begin.back()) * esize,
                      static_cast<size_t>(hi - lo) * esize);
        }
        for (int64_t j = hi; j < row_len; ++j) {
          const int64_t src = last[static_cast<size_t>(j)];
          uint8_t* d = dst + static_cast<size_t>(j) * esize;
          src < 0 ? CopyElement(d, value.data(), esize)
                  : CopyElement(d, src_row + static_cast<size_t>(src) * esize, esize);
        }
      }
    });
    return Status::Ok();
  }

 private:
  PadMode mode_;
  bool from_inputs_;
  std::vector<int64_t> pads_attr_;
  float value_attr_;
};

KernelFactory PadFactory(int variant) {
  // variant 1: opset 1 ("paddings"), 2: opsets 2-10 ("pads"), 11: inputs.
  return [variant](const graph::Node& node) -> StatusOr<std::unique_ptr<OpKernel>> {
    KILN_ASSIGN_OR_RETURN(std::string mode_name, node.GetString("mode", "constant"));
    PadMode mode;
    if (mode_name == "constant") {
      mode = PadMode::kConstant;
    } else if (mode_name == "reflect") {
      mode = PadMode::kReflect;
    } else if (mode_name == "edge") {
      mode = PadMode::kEdge;
    } else if (mode_name == "wrap") {
      mode = PadMode::kWrap;
    } else {
      return Unsupported("Pad: mode '", mode_name, "' is not supported");
    }
    std::vector<int64_t> pads;
    float value = 0.0f;
    if (variant < 11) {
      KILN_ASSIGN_OR_RETURN(pads, node.GetInts(variant == 1 ? "paddings" : "pads"));
      KILN_ASSIGN_OR_RETURN(value, node.GetFloat("value", 0.0f));
    }
    return std::unique_ptr<OpKernel>(new PadKernel(mode, variant >= 11, std::move(pads), value));
  };
}

}  // namespace

void RegisterPadOp(KernelRegistry& r) {
  r.Register(KernelDef{"Pad", "", 1, 1, PadFactory(1)});
  r.Register(KernelDef{"Pad", "", 2, 10, PadFactory(2)});
  r.Register(KernelDef{"Pad", "", 11, kNoMaxOpset, PadFactory(11)});
}

}  // namespace kiln::kernels
