// Ops that only change a tensor's shape (Reshape, Flatten, Squeeze,
// Unsqueeze) or pass it through (Identity, inference-mode Dropout). The data
// is copied for now; the interpreter may later alias outputs to inputs, at
// which point these become free.
#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "kernels/tensor_ops_common.h"
#include "kiln/sequence.h"

namespace kiln::kernels {
namespace {

// Copies `in` into a new output 0 of shape `dims` (same element count,
// checked by the caller).
Status CopyToOutput(KernelContext& ctx, int index, const Tensor& in, const Dims& dims) {
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(index, in.dtype(), dims));
  ParallelCopy(ctx.parallel(), out->raw_data(), in.raw_data(), in.byte_size());
  return Status::Ok();
}

StatusOr<const Tensor*> RequiredInput(const KernelContext& ctx, const char* op, int i) {
  const Tensor* t = ctx.input(i);
  if (t == nullptr) return InvalidArgument(op, ": input ", i, " is missing");
  return t;
}

// ---------------------------------------------------------------- Reshape

// The output dims of Reshape(input dims, requested shape): 0 copies the
// input dim at the same position (unless allow_zero), one -1 is inferred.
StatusOr<Dims> ReshapeDims(const Dims& in_dims, const std::vector<int64_t>& shape, bool allow_zero) {
  const auto fail = [&](const char* why) {
    return InvalidArgument("Reshape: cannot reshape ", DimsToString(in_dims), " to ", DimsToString(shape), ": ", why);
  };
  KILN_ASSIGN_OR_RETURN(int64_t in_count, CheckedNumElements(in_dims));
  Dims out(shape.size());
  int infer_at = -1;
  int64_t known = 1;
  bool has_zero = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t d = shape[i];
    if (d == -1) {
      if (infer_at >= 0) return fail("more than one -1");
      infer_at = static_cast<int>(i);
      continue;
    }
    if (d < -1) return fail("negative dimension");
    if (d == 0 && !allow_zero) {
      if (i >= in_dims.size()) return fail("0 copies a dimension the input does not have");
      d = in_dims[i];
    }
    if (d == 0) has_zero = true;
    out[i] = d;
    if (d != 0 && known > (int64_t{1} << 62) / d) return fail("element count overflows");
    known *= d;
  }
  if (infer_at >= 0) {
    if (has_zero) {
      if (in_count != 0) return fail("element counts differ");
      if (allow_zero) return fail("-1 cannot be inferred next to an explicit 0 with allowzero=1");
      out[static_cast<size_t>(infer_at)] = 0;  // ambiguous; ONNX Runtime and numpy choose 0
      return out;
    }
    if (in_count % known != 0) return fail("element count is not divisible by the known dimensions");
    out[static_cast<size_t>(infer_at)] = in_count / known;
  } else if (known != in_count) {
    return fail("element counts differ");
  }
  return out;
}

class ReshapeKernel final : public OpKernel {
 public:
  // `shape_attr` is set for opset < 5, where the shape is an attribute.
  ReshapeKernel(std::optional<std::vector<int64_t>> shape_attr, bool allow_zero)
      : shape_attr_(std::move(shape_attr)), allow_zero_(allow_zero) {}

  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(const Tensor* data, RequiredInput(ctx, "Reshape", 0));
    std::vector<int64_t> shape;
    if (shape_attr_) {
      shape = *shape_attr_;
    } else {
      KILN_ASSIGN_OR_RETURN(const Tensor* s, RequiredInput(ctx, "Reshape", 1));
      KILN_ASSIGN_OR_RETURN(shape, ReadIndexVector("Reshape", "shape", *s));
    }
    KILN_ASSIGN_OR_RETURN(Dims dims, ReshapeDims(data->dims(), shape, allow_zero_));
    return CopyToOutput(ctx, 0, *data, dims);
  }

 private:
  std::optional<std::vector<int64_t>> shape_attr_;
  bool allow_zero_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateReshape(const graph::Node& node) {
  std::optional<std::vector<int64_t>> shape_attr;
  if (node.opset < 5) {
    KILN_ASSIGN_OR_RETURN(shape_attr, node.GetInts("shape"));
  }
  KILN_ASSIGN_OR_RETURN(int64_t allow_zero, node.GetInt("allowzero", 0));
  return std::unique_ptr<OpKernel>(new ReshapeKernel(std::move(shape_attr), allow_zero != 0));
}

// ---------------------------------------------------------------- Flatten

class FlattenKernel final : public OpKernel {
 public:
  explicit FlattenKernel(int64_t axis) : axis_(axis) {}

  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(const Tensor* in, RequiredInput(ctx, "Flatten", 0));
    const int64_t rank = in->rank();
    // The axis may equal the rank (everything goes to the outer dim).
    if (axis_ < -rank || axis_ > rank) {
      return InvalidArgument("Flatten: axis ", axis_, " is out of range for rank ", rank, " (valid: [", -rank, ", ",
                             rank, "])");
    }
    const size_t axis = static_cast<size_t>(axis_ < 0 ? axis_ + rank : axis_);
    const Dims& d = in->dims();
    return CopyToOutput(ctx, 0, *in, {DimProduct(d, 0, axis), DimProduct(d, axis, d.size())});
  }

 private:
  int64_t axis_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateFlatten(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.GetInt("axis", 1));
  if (axis < 0 && node.opset < 11) return InvalidArgument("Flatten: negative axis needs opset 11");
  return std::unique_ptr<OpKernel>(new FlattenKernel(axis));
}

// -------------------------------------------------------- Squeeze/Unsqueeze

// Axes come from an attribute before opset 13 and from input 1 from 13 on.
class AxesSource {
 public:
  AxesSource(bool from_input, std::vector<int64_t> attr) : from_input_(from_input), attr_(std::move(attr)) {}

  // The axes (possibly empty: "absent") for this call.
  StatusOr<std::vector<int64_t>> Get(const KernelContext& ctx, const char* op) const {
    if (!from_input_) return attr_;
    const Tensor* t = ctx.input(1);
    if (t == nullptr) return std::vector<int64_t>{};
    return ReadIndexVector(op, "axes", *t);
  }

 private:
  bool from_input_;
  std::vector<int64_t> attr_;
};

class SqueezeKernel final : public OpKernel {
 public:
  explicit SqueezeKernel(AxesSource axes) : axes_(std::move(axes)) {}

  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(const Tensor* in, RequiredInput(ctx, "Squeeze", 0));
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, axes_.Get(ctx, "Squeeze"));
    KILN_ASSIGN_OR_RETURN(axes, NormalizeAxes("Squeeze", axes, in->rank()));
    std::vector<bool> drop(static_cast<size_t>(in->rank()), false);
    if (axes.empty()) {
      for (int64_t i = 0; i < in->rank(); ++i) drop[static_cast<size_t>(i)] = in->dim(i) == 1;
    }
    for (int64_t a : axes) {
      if (in->dim(a) != 1) {
        return InvalidArgument("Squeeze: axis ", a, " of shape ", DimsToString(in->dims()), " has size ", in->dim(a),
                               ", not 1");
      }
      drop[static_cast<size_t>(a)] = true;
    }
    Dims dims;
    for (int64_t i = 0; i < in->rank(); ++i) {
      if (!drop[static_cast<size_t>(i)]) dims.push_back(in->dim(i));
    }
    return CopyToOutput(ctx, 0, *in, dims);
  }

 private:
  AxesSource axes_;
};

class UnsqueezeKernel final : public OpKernel {
 public:
  explicit UnsqueezeKernel(AxesSource axes) : axes_(std::move(axes)) {}

  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(const Tensor* in, RequiredInput(ctx, "Unsqueeze", 0));
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, axes_.Get(ctx, "Unsqueeze"));
    if (axes.empty()) return InvalidArgument("Unsqueeze: axes must not be empty");
    const int64_t out_rank = in->rank() + static_cast<int64_t>(axes.size());
    KILN_ASSIGN_OR_RETURN(axes, NormalizeAxes("Unsqueeze", axes, out_rank));
    std::vector<bool> inserted(static_cast<size_t>(out_rank), false);
    for (int64_t a : axes) inserted[static_cast<size_t>(a)] = true;
    Dims dims;
    size_t next = 0;
    for (int64_t i = 0; i < out_rank; ++i) {
      dims.push_back(inserted[static_cast<size_t>(i)] ? 1 : in->dims()[next++]);
    }
    return CopyToOutput(ctx, 0, *in, dims);
  }

 private:
  AxesSource axes_;
};

template <typename K>
StatusOr<std::unique_ptr<OpKernel>> CreateAxesKernel(const graph::Node& node) {
  const bool from_input = node.opset >= 13;
  std::vector<int64_t> attr;
  if (!from_input) {
    KILN_ASSIGN_OR_RETURN(attr, node.GetInts("axes"));
  }
  return std::unique_ptr<OpKernel>(new K(AxesSource(from_input, std::move(attr))));
}

// ------------------------------------------------------- Identity, Dropout

class IdentityKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(const Tensor* in, RequiredInput(ctx, "Identity", 0));
    // A sequence or None (opset 14+ Identity takes any type) shares its
    // immutable elements.
    if (in->dtype() == DType::kSequence) {
      KILN_ASSIGN_OR_RETURN(Tensor copy, CopySequence(*in));
      return ctx.SetOutput(0, std::move(copy));
    }
    return CopyToOutput(ctx, 0, *in, in->dims());
  }
};

// Inference-mode Dropout is the identity; the optional mask is all "kept".
class DropoutKernel final : public OpKernel {
 public:
  explicit DropoutKernel(int opset) : opset_(opset) {}

  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(const Tensor* in, RequiredInput(ctx, "Dropout", 0));
    if (opset_ >= 12) {
      if (const Tensor* training = ctx.input(2)) {
        if (training->dtype() != DType::kBool || training->num_elements() != 1) {
          return InvalidArgument("Dropout: training_mode must be a bool scalar");
        }
        if (training->data<bool>()[0]) {
          // Training with ratio 0 keeps everything, which we can do exactly.
          float ratio = 0.5f;
          if (const Tensor* r = ctx.input(1)) {
            if (r->num_elements() != 1) return InvalidArgument("Dropout: ratio must be a scalar");
            if (r->dtype() == DType::kFloat32) {
              ratio = r->data<float>()[0];
            } else if (r->dtype() == DType::kFloat64) {
              ratio = static_cast<float>(r->data<double>()[0]);
            } else {
              return Unsupported("Dropout: ratio dtype ", DTypeName(r->dtype()), " is not supported");
            }
          }
          if (ratio != 0.0f) return Unsupported("Dropout: training_mode=true (random dropout) is not supported");
        }
      }
    }
    KILN_RETURN_IF_ERROR(CopyToOutput(ctx, 0, *in, in->dims()));
    if (ctx.num_outputs() > 1) {
      // The mask is bool from opset 10 on and the input's type before.
      const DType mask_type = opset_ >= 10 ? DType::kBool : in->dtype();
      KILN_ASSIGN_OR_RETURN(Tensor * mask, ctx.Output(1, mask_type, in->dims()));
      const int64_t n = mask->num_elements();
      switch (mask_type) {
        case DType::kBool: std::fill_n(mask->data<bool>(), n, true); break;
        case DType::kFloat32: std::fill_n(mask->data<float>(), n, 1.0f); break;
        case DType::kFloat64: std::fill_n(mask->data<double>(), n, 1.0); break;
        default: return Unsupported("Dropout: mask of dtype ", DTypeName(mask_type), " is not supported");
      }
    }
    return Status::Ok();
  }

 private:
  int opset_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateDropout(const graph::Node& node) {
  // The ratio attribute (before opset 12) only matters in training.
  return std::unique_ptr<OpKernel>(new DropoutKernel(node.opset));
}

}  // namespace

void RegisterReshapeOps(KernelRegistry& r) {
  r.Register(KernelDef{"Reshape", "", 1, kNoMaxOpset, CreateReshape});
  r.Register(KernelDef{"Flatten", "", 1, kNoMaxOpset, CreateFlatten});
  r.Register(KernelDef{"Squeeze", "", 1, kNoMaxOpset, CreateAxesKernel<SqueezeKernel>});
  r.Register(KernelDef{"Unsqueeze", "", 1, kNoMaxOpset, CreateAxesKernel<UnsqueezeKernel>});
  r.Register(KernelDef{"Identity", "", 1, kNoMaxOpset, MakeFactory<IdentityKernel>()});
  // Opsets 1-6 default to training (is_test=0), which we do not implement.
  r.Register(KernelDef{"Dropout", "", 7, kNoMaxOpset, CreateDropout});
}

}  // namespace kiln::kernels
