// ConvTranspose (opset 1+, float32, 1-D to 3-D) on oneDNN's deconvolution
// primitive. ONNX weights [C, M/G, k...] are oneDNN's grouped deconvolution
// weights [G, M/G, C/G, k...] with the two channel axes swapped, which a
// strided memory descriptor expresses; the primitive runs in oneDNN's
// preferred blocked layouts (see BlockedIo).
//
// oneDNN cannot express every ONNX output geometry (output_padding larger
// than the end pad, or negative pads from output_shape); those cases run the
// unpadded deconvolution into a temporary and crop or extend it (positions
// no input reaches get only the bias).
#include <memory>
#include <utility>

#include "kernels/dnnl_context.h"
#include "kernels/dnnl_kernels.h"
#include "kernels/window_geometry.h"

namespace kiln::kernels {
namespace {

constexpr const char* kOp = "ConvTranspose";

struct TransposeAttrs {
  WindowAttrs window;
  int64_t group = 1;
  Dims output_padding;
  Dims output_shape;
};

class ConvTransposeKernel final : public OpKernel {
 public:
  explicit ConvTransposeKernel(TransposeAttrs attrs) : attrs_(std::move(attrs)) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* w = ctx.input(1);
    const Tensor* b = ctx.input(2);
    if (x == nullptr || w == nullptr) return InvalidArgument(kOp, ": X and W are required");
    if (x->dtype() != DType::kFloat32 || w->dtype() != DType::kFloat32 ||
        (b != nullptr && b->dtype() != DType::kFloat32)) {
      return Unsupported(kOp, ": only float32 is supported, got X ", DTypeName(x->dtype()), " W ",
                         DTypeName(w->dtype()));
    }
    if (x->rank() < 3) return InvalidArgument(kOp, ": X must have rank >= 3, got ", DimsToString(x->dims()));
    if (x->rank() > 5) return Unsupported(kOp, ": only 1-D to 3-D, got X ", DimsToString(x->dims()));
    if (w->rank() != x->rank()) {
      return InvalidArgument(kOp, ": W ", DimsToString(w->dims()), " must have the rank of X ",
                             DimsToString(x->dims()));
    }
    const int64_t group = attrs_.group;
    if (w->dim(0) != x->dim(1)) {
      return InvalidArgument(kOp, ": channel mismatch: X has ", x->dim(1), " channels but W ", DimsToString(w->dims()),
                             " expects ", w->dim(0));
    }
    if (x->dim(1) % group != 0) {
      return InvalidArgument(kOp, ": ", x->dim(1), " input channels are not divisible by group ", group);
    }
    const int64_t filters = w->dim(1) * group;
    if (b != nullptr && (b->rank() != 1 || b->dim(0) != filters)) {
      return InvalidArgument(kOp, ": B ", DimsToString(b->dims()), " must be [", filters, "]");
    }
    const Dims kernel(w->dims().begin() + 2, w->dims().end());
    if (!attrs_.window.kernel_shape.empty() && attrs_.window.kernel_shape != kernel) {
      return InvalidArgument(kOp, ": kernel_shape ", DimsToString(attrs_.window.kernel_shape), " does not match W ",
                             DimsToString(w->dims()));
    }

    std::vector<int64_t> key;
    AppendKey(key, x->dims());
    AppendKey(key, w->dims());
    key.push_back(b != nullptr);
    return GuardDnnl(kOp, [&]() -> Status {
      KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Plan> plan,
                            cache_.GetOrCreate(key, ctx.parallel().num_threads(),
                                               [&] { return MakePlan(*x, *w, b != nullptr, kernel); }));
      KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kFloat32, plan->out_dims));
      if (y->num_elements() == 0) return Status::Ok();
      if (x->num_elements() == 0) return Unsupported(kOp, ": empty X with a non-empty output");
      Tensor full;
      if (plan->crop) {
        KILN_ASSIGN_OR_RETURN(full, Tensor::Allocate(DType::kFloat32, plan->full_dims));
      }
      std::unordered_map<int, dnnl::memory> extra;
      if (b != nullptr) extra.emplace(DNNL_ARG_BIAS, WrapMemory(plan->pd.bias_desc(), b->raw_data()));
      plan->io.Execute(ctx, plan->primitive, plan->pd, x->raw_data(), *w, ctx.input_is_constant(1),
                       plan->crop ? full.raw_data() : y->raw_data(), std::move(extra));
      if (plan->crop) CropOrExtend(*plan, full, b, *y);
      return Status::Ok();
    });
  }

 private:
  struct Plan {
    Dims out_dims;
    bool crop = false;  // computed into a temporary of full_dims
    Dims full_dims;     // unpadded output dims, when crop
    Dims offset;        // spatial index in `full` of output position 0
    dnnl::deconvolution_forward::primitive_desc pd;
    dnnl::deconvolution_forward primitive;
    BlockedIo io;
  };

  StatusOr<std::shared_ptr<const Plan>> MakePlan(const Tensor& x, const Tensor& w, bool has_bias,
                                                 const Dims& kernel) const {
    const size_t rank = kernel.size();
    Dims strides, dilations;
    KILN_RETURN_IF_ERROR(CheckWindowLengths(kOp, attrs_.window, rank, &strides, &dilations));
    const Dims out_pad = attrs_.output_padding.empty() ? Dims(rank, 0) : attrs_.output_padding;
    if (out_pad.size() != rank) {
      return InvalidArgument(kOp, ": output_padding has ", out_pad.size(), " values for ", rank, " spatial dims");
    }
    if (!attrs_.output_shape.empty() && attrs_.output_shape.size() < rank) {
      return InvalidArgument(kOp, ": output_shape has ", attrs_.output_shape.size(), " values for ", rank,
                             " spatial dims");
    }
    Dims pad_begin(rank, 0), pad_end(rank, 0), out(rank, 0), full(rank, 0);
    const AutoPad auto_pad = attrs_.window.auto_pad;
    for (size_t i = 0; i < rank; ++i) {
      const int64_t in = x.dim(static_cast<int64_t>(i) + 2);
      const int64_t ek = (kernel[i] - 1) * dilations[i] + 1;
      full[i] = strides[i] * (in - 1) + ek;
      const bool explicit_shape = !attrs_.output_shape.empty();
      if (explicit_shape || auto_pad == AutoPad::kSameUpper || auto_pad == AutoPad::kSameLower) {
        out[i] = explicit_shape ? attrs_.output_shape[attrs_.output_shape.size() - rank + i] : in * strides[i];
        const int64_t total = full[i] + out_pad[i] - out[i];
        // The split the ONNX spec gives: SAME_UPPER puts the smaller half first.
        if (auto_pad == AutoPad::kSameUpper) {
          pad_begin[i] = FloorDiv(total, 2);
          pad_end[i] = total - pad_begin[i];
        } else {
          pad_end[i] = FloorDiv(total, 2);
          pad_begin[i] = total - pad_end[i];
        }
      } else {
        if (auto_pad == AutoPad::kNotSet && !attrs_.window.pads.empty()) {
          pad_begin[i] = attrs_.window.pads[i];
          pad_end[i] = attrs_.window.pads[i + rank];
        }
        out[i] = full[i] + out_pad[i] - pad_begin[i] - pad_end[i];
      }
      if (out[i] <= 0) return InvalidArgument(kOp, ": output size ", out[i], " in spatial dim ", i);
    }

    auto plan = std::make_shared<Plan>();
    const int64_t group = attrs_.group;
    const int64_t in_channels = x.dim(1);
    const int64_t filters = w.dim(1) * group;
    plan->out_dims = {x.dim(0), filters};
    plan->out_dims.insert(plan->out_dims.end(), out.begin(), out.end());
    if (HasZeroDim(plan->out_dims) || x.num_elements() == 0) return plan;

    Dims dnnl_pad_l = pad_begin, dnnl_pad_r(rank, 0);
    for (size_t i = 0; i < rank; ++i) {
      dnnl_pad_r[i] = pad_end[i] - out_pad[i];
      if (pad_begin[i] < 0 || dnnl_pad_r[i] < 0) plan->crop = true;
    }
    Dims dst_dims = plan->out_dims;
    if (plan->crop) {
      // oneDNN needs non-negative pads: compute the whole unpadded result.
      std::fill(dnnl_pad_l.begin(), dnnl_pad_l.end(), 0);
      std::fill(dnnl_pad_r.begin(), dnnl_pad_r.end(), 0);
      plan->full_dims = {x.dim(0), filters};
      plan->full_dims.insert(plan->full_dims.end(), full.begin(), full.end());
      plan->offset = pad_begin;
      dst_dims = plan->full_dims;
    }

    // Weights: ONNX [G*(C/G), M/G, k...] seen as oneDNN [G, M/G, C/G, k...]
    // (or [M, C, k...] without groups).
    int64_t k_size = 1;
    for (int64_t k : kernel) k_size *= k;
    const Dims k_strides = RowMajorStrides(kernel);
    const int64_t oc_g = w.dim(1), ic_g = in_channels / group;
    Dims w_dims, w_strides;
    if (group > 1) {
      w_dims = {group, oc_g, ic_g};
      w_strides = {ic_g * oc_g * k_size, k_size, oc_g * k_size};
    } else {
      w_dims = {oc_g, ic_g};
      w_strides = {k_size, oc_g * k_size};
    }
    w_dims.insert(w_dims.end(), kernel.begin(), kernel.end());
    w_strides.insert(w_strides.end(), k_strides.begin(), k_strides.end());

    Dims dnnl_dilations = dilations;
    for (int64_t& d : dnnl_dilations) d -= 1;
    const dnnl::memory::desc bias_md = has_bias ? PlainF32Desc({filters}) : dnnl::memory::desc();
    plan->io.src_user = PlainF32Desc(x.dims());
    plan->io.weights_user = StridedF32Desc(w_dims, w_strides);
    plan->io.dst_user = PlainF32Desc(dst_dims);
    dnnl::deconvolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::deconvolution_direct,
                                           AnyF32Desc(x.dims()), AnyF32Desc(w_dims), bias_md, AnyF32Desc(dst_dims),
                                           ToDnnlDims(strides), ToDnnlDims(dnnl_dilations), ToDnnlDims(dnnl_pad_l),
                                           ToDnnlDims(dnnl_pad_r));
    plan->pd = dnnl::deconvolution_forward::primitive_desc(desc, UserScratchpadAttr(), DnnlEngine());
    plan->primitive = dnnl::deconvolution_forward(plan->pd);
    plan->io.Prepare(plan->pd.src_desc(), plan->pd.weights_desc(), plan->pd.dst_desc());
    return std::shared_ptr<const Plan>(std::move(plan));
  }

  // y[n, m, o...] = full[n, m, o + offset...] where that is inside `full`,
  // else the bias (no input contributes there).
  static void CropOrExtend(const Plan& plan, const Tensor& full, const Tensor* bias, Tensor& y) {
    const size_t rank = plan.offset.size();
    const int64_t planes = y.dim(0) * y.dim(1);
    const int64_t channels = y.dim(1);
    int64_t out_plane = 1, full_plane = 1;
    for (size_t i = 0; i < rank; ++i) {
      out_plane *= y.dim(static_cast<int64_t>(i) + 2);
      full_plane *= full.dim(static_cast<int64_t>(i) + 2);
    }
    const Dims full_strides = RowMajorStrides(Dims(full.dims().begin() + 2, full.dims().end()));
    const float* src = full.data<float>();
    float* dst = y.data<float>();
    const float* b = bias != nullptr ? bias->data<float>() : nullptr;
    Dims idx(rank, 0);
    for (int64_t p = 0; p < planes; ++p) {
      const float fill = b != nullptr ? b[p % channels] : 0.0f;
      std::fill(idx.begin(), idx.end(), 0);
      for (int64_t o = 0; o < out_plane; ++o) {
        int64_t offset = 0;
        bool inside = true;
        for (size_t i = 0; i < rank; ++i) {
          const int64_t f = idx[i] + plan.offset[i];
          if (f < 0 || f >= full.dim(static_cast<int64_t>(i) + 2)) {
            inside = false;
            break;
          }
          offset += f * full_strides[i];
        }
        dst[p * out_plane + o] = inside ? src[p * full_plane + offset] : fill;
        for (size_t i = rank; i-- > 0;) {  // odometer increment
          if (++idx[i] < y.dim(static_cast<int64_t>(i) + 2)) break;
          idx[i] = 0;
        }
      }
    }
  }

  TransposeAttrs attrs_;
  ShapeCache<Plan> cache_;
};

}  // namespace

StatusOr<std::unique_ptr<OpKernel>> CreateConvTransposeKernel(const graph::Node& node) {
  TransposeAttrs attrs;
  KILN_ASSIGN_OR_RETURN(attrs.window, ParseWindowAttrs(node, kOp));
  KILN_ASSIGN_OR_RETURN(attrs.group, node.GetInt("group", 1));
  if (attrs.group <= 0) return InvalidModel(kOp, ": group must be positive, got ", attrs.group);
  KILN_ASSIGN_OR_RETURN(attrs.output_padding, node.GetInts("output_padding"));
  KILN_ASSIGN_OR_RETURN(attrs.output_shape, node.GetInts("output_shape"));
  for (int64_t p : attrs.output_padding) {
    if (p < 0) return InvalidModel(kOp, ": output_padding must be non-negative");
  }
  for (int64_t s : attrs.output_shape) {
    if (s <= 0) return InvalidModel(kOp, ": output_shape values must be positive");
  }
  return std::unique_ptr<OpKernel>(new ConvTransposeKernel(std::move(attrs)));
}

}  // namespace kiln::kernels
