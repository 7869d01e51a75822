// Conv (opset 1+, float32, 1-D to 3-D) on oneDNN's convolution primitive.
// kiln's tensors are row-major NC[D]HW; the primitive works in the blocked
// layouts oneDNN prefers, with src/dst reordered per call and the weights
// packed once (see BlockedIo). Groups (including depthwise) map to oneDNN's
// grouped weights [G, M/G, C/G, k...], the same memory as ONNX's
// [M, C/G, k...]. FusedConv (domain "kiln", see graph/fuse_epilogues.h) is
// the same kernel with an optional residual R (input 3) and an activation.
// With channels_last = 1 (graph/channels_last.h) X, R and Y are NHWC: the
// primitive then reads and writes them in place when it prefers NHWC, as
// oneDNN's AVX-512 kernels do, instead of reordering both on every call.
//
// The activation alone is an eltwise post-op. A residual is a binary add
// post-op (then the activation) only when the primitive writes a row-major
// dst: the binary post-op reads src1 in dst's layout, and with a row-major
// src1 beside a blocked dst oneDNN falls back to its several times slower
// GEMM-based convolution. For a blocked dst (the usual case on AVX2), R
// would have to be reordered to the blocked layout on every call, and
// measured on ResNet shapes that extra reorder plus the post-op cost more
// than the pass it saves; there the primitive runs without post-ops and R
// and the activation are applied in one cache-blocked pass over the
// row-major result, right after the dst reorder.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <utility>

#include "graph/channels_last.h"
#include "graph/fuse_epilogues.h"
#include "graph/log.h"
#include "kernels/dnnl_context.h"
#include "kernels/dnnl_kernels.h"
#include "kernels/epilogue.h"
#include "kernels/unprepared_conv.h"
#include "kernels/window_geometry.h"

namespace kiln::kernels {
namespace {

constexpr const char* kOp = "Conv";

class ConvKernel final : public OpKernel {
 public:
  // `fused`: a FusedConv, which may have a residual input.
  ConvKernel(WindowAttrs attrs, int64_t group, Epilogue epilogue, bool fused, bool channels_last)
      : attrs_(std::move(attrs)), group_(group), epilogue_(epilogue), fused_(fused), channels_last_(channels_last) {}

  // A 1-D or 2-D convolution whose X shape the graph knows and whose W is
  // constant: its primitive is created and its weights reordered in the
  // background. Until then, runs of that shape compute with
  // UnpreparedConv2d (a 1-D one as 2-D of height 1) instead of building the
  // primitive themselves.
  std::function<void()> TakePreparation(const std::vector<const Tensor*>& constant_inputs,
                                        const std::vector<std::optional<Dims>>& static_dims) override {
    const Tensor* w = constant_inputs.size() > 1 ? constant_inputs[1] : nullptr;
    if (w == nullptr || w->dtype() != DType::kFloat32 || static_dims.empty() || !static_dims[0]) return {};
    const int64_t rank = static_cast<int64_t>(static_dims[0]->size());
    // A channels-last X is always 2-D (graph/channels_last.h).
    if (w->rank() != rank || (rank != 4 && (rank != 3 || channels_last_))) return {};
    const Dims& xd = *static_dims[0];
    const Dims x_nchw = channels_last_ ? Dims{xd[0], xd[3], xd[1], xd[2]} : xd;
    const Dims kernel(w->dims().begin() + 2, w->dims().end());
    // Shapes Compute would reject are left to Compute to report.
    if (w->dim(1) * group_ != x_nchw[1] || w->dim(0) % group_ != 0 ||
        (!attrs_.kernel_shape.empty() && attrs_.kernel_shape != kernel) || HasZeroDim(x_nchw)) {
      return {};
    }
    const bool has_bias = (constant_inputs.size() > 2 && constant_inputs[2] != nullptr) ||
                          (static_dims.size() > 2 && static_dims[2].has_value());
    const size_t r = static_cast<size_t>(graph::kFusedResidualInput);
    const bool has_residual = fused_ && static_dims.size() > r && static_dims[r].has_value();
    std::vector<int64_t> key;
    AppendKey(key, x_nchw);
    AppendKey(key, w->dims());
    key.push_back(has_bias);
    key.push_back(has_residual);
    prepared_key_ = key;
    preparation_pending_.store(true, std::memory_order_release);
    return [this, key, x_nchw, w, has_bias, has_residual, kernel] {
      const Status built = GuardDnnl(kOp, [&]() -> Status {
        // For the thread count the runtime gave this thread: that of the
        // session's runs (runtime/preparation_queue.h).
        const int threads = DnnlThreadsFor(EstimatedConvWork(x_nchw, w->dims(), attrs_.strides), omp_get_max_threads());
        std::shared_ptr<const Plan> plan;
        {
          DnnlCreationThreads creation_threads(threads);
          KILN_ASSIGN_OR_RETURN(plan, MakePlan(x_nchw, *w, has_bias, has_residual, kernel));
        }
        if (plan->io.reorder_weights) {
          // Reordered here so that the first run on the primitive finds them.
          class NoOutputs final : public OutputAllocator {
           public:
            StatusOr<Tensor> AllocateOutput(int, DType, const Dims&) override { return Internal("no outputs"); }
          } allocator;
          const std::vector<const Tensor*> inputs;
          std::vector<Tensor> outputs;
          const SerialRunner serial;
          KernelContext ctx(inputs, outputs, allocator, serial);
          plan->io.weights_cache.Get(ctx, plan->io.weights_reorder, *w, /*weights_constant=*/true);
        }
        cache_.Insert(key, threads, std::move(plan));
        return Status::Ok();
      });
      // From now on runs take the cache's path: they find the plan, or
      // (preparation failed, or the plan was evicted) build it themselves
      // and report what fails.
      if (!built.ok()) Log().debug("Conv: background preparation failed: {}", built.ToString());
      preparation_pending_.store(false, std::memory_order_release);
    };
  }

  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* w = ctx.input(1);
    const Tensor* b = ctx.input(2);
    const Tensor* r = fused_ ? ctx.input(graph::kFusedResidualInput) : nullptr;
    if (x == nullptr || w == nullptr) return InvalidArgument(kOp, ": X and W are required");
    if (x->dtype() != DType::kFloat32 || w->dtype() != DType::kFloat32 ||
        (b != nullptr && b->dtype() != DType::kFloat32)) {
      return Unsupported(kOp, ": only float32 is supported, got X ", DTypeName(x->dtype()), " W ",
                         DTypeName(w->dtype()));
    }
    if (x->rank() < 3) return InvalidArgument(kOp, ": X must have rank >= 3, got ", DimsToString(x->dims()));
    if (x->rank() > 5) return Unsupported(kOp, ": only 1-D to 3-D convolution, got X ", DimsToString(x->dims()));
    if (channels_last_ && x->rank() != 4) {
      return InvalidArgument(kOp, ": a channels-last X must have rank 4, got ", DimsToString(x->dims()));
    }
    // The problem in ONNX's NCHW terms; channels-last only changes where
    // X's and Y's elements live.
    const Dims x_nchw = channels_last_ ? Dims{x->dim(0), x->dim(3), x->dim(1), x->dim(2)} : x->dims();
    if (w->rank() != x->rank()) {
      return InvalidArgument(kOp, ": W ", DimsToString(w->dims()), " must have the rank of X ",
                             DimsToString(x->dims()));
    }
    const int64_t channels = x_nchw[1];
    const int64_t filters = w->dim(0);
    if (w->dim(1) * group_ != channels) {
      return InvalidArgument(kOp, ": channel mismatch: X has ", channels, " channels but W ", DimsToString(w->dims()),
                             " with group ", group_, " expects ", w->dim(1) * group_);
    }
    if (filters % group_ != 0) {
      return InvalidArgument(kOp, ": W's ", filters, " output channels are not divisible by group ", group_);
    }
    if (b != nullptr && (b->rank() != 1 || b->dim(0) != filters)) {
      return InvalidArgument(kOp, ": B ", DimsToString(b->dims()), " must be [", filters, "]");
    }
    const Dims kernel(w->dims().begin() + 2, w->dims().end());
    if (!attrs_.kernel_shape.empty() && attrs_.kernel_shape != kernel) {
      return InvalidArgument(kOp, ": kernel_shape ", DimsToString(attrs_.kernel_shape), " does not match W ",
                             DimsToString(w->dims()));
    }

    std::vector<int64_t> key;
    AppendKey(key, x_nchw);
    AppendKey(key, w->dims());
    key.push_back(b != nullptr);
    key.push_back(r != nullptr);  // the residual's post-op is part of the primitive
    if (preparation_pending_.load(std::memory_order_acquire) && key == prepared_key_) {
      return ComputeUnprepared(ctx, *x, x_nchw, *w, b, r, kernel);
    }
    return GuardDnnl(kOp, [&]() -> Status {
      KILN_ASSIGN_OR_RETURN(
          std::shared_ptr<const Plan> plan,
          cache_.GetOrCreate(
              key, DnnlThreadsFor(EstimatedConvWork(x_nchw, w->dims(), attrs_.strides), ctx.parallel().num_threads()),
              [&] { return MakePlan(x_nchw, *w, b != nullptr, r != nullptr, kernel); }));
      if (r != nullptr) KILN_RETURN_IF_ERROR(CheckResidual(kOp, *r, plan->y_dims));
      KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kFloat32, plan->y_dims));
      if (y->num_elements() == 0 || x->num_elements() == 0) {
        return y->num_elements() == 0 ? Status::Ok() : InvalidArgument(kOp, ": X is empty");
      }
      std::unordered_map<int, dnnl::memory> extra;
      if (b != nullptr) extra.emplace(DNNL_ARG_BIAS, WrapMemory(plan->pd.bias_desc(), b->raw_data()));
      if (r != nullptr && plan->residual_arg != 0) {
        extra.emplace(plan->residual_arg, WrapMemory(plan->pd.dst_desc(), r->raw_data()));
      }
      plan->io.Execute(ctx, plan->primitive, plan->pd, x->raw_data(), *w, ctx.input_is_constant(1), y->raw_data(),
                       std::move(extra));
      if (plan->epilogue_after) {
        // The primitive ran without post-ops: finish on the row-major result.
        epilogue_.ApplyWithResidual(ctx, y->data<float>(), r != nullptr ? r->data<float>() : nullptr,
                                    y->num_elements());
      }
      return Status::Ok();
    });
  }

 private:
  struct Plan {
    Dims out_dims;  // NCHW
    Dims y_dims;    // Y's dims: out_dims, or their NHWC permutation
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::convolution_forward primitive;
    BlockedIo io;
    // The residual's post-op argument (0: no residual post-op).
    int residual_arg = 0;
    // With a residual and a blocked dst (see the file comment): the
    // primitive has no post-ops, Compute adds the residual and applies the
    // activation afterwards.
    bool epilogue_after = false;
  };

  // The convolution while the primitive for its shape is being prepared.
  Status ComputeUnprepared(KernelContext& ctx, const Tensor& x, const Dims& x_nchw, const Tensor& w, const Tensor* b,
                           const Tensor* r, const Dims& kernel) const {
    const Dims in_spatial(x_nchw.begin() + 2, x_nchw.end());
    KILN_ASSIGN_OR_RETURN(WindowGeometry g, ResolveForwardWindow(kOp, attrs_, in_spatial, kernel, false));
    Dims y_dims = {x_nchw[0], w.dim(0)};
    y_dims.insert(y_dims.end(), g.output.begin(), g.output.end());
    if (channels_last_) y_dims = {y_dims[0], y_dims[2], y_dims[3], y_dims[1]};
    if (r != nullptr) KILN_RETURN_IF_ERROR(CheckResidual(kOp, *r, y_dims));
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kFloat32, y_dims));
    if (y->num_elements() == 0) return Status::Ok();
    Dims x_2d = x_nchw, w_2d = w.dims();
    if (x_nchw.size() == 3) {
      // [N, C, W] is [N, C, 1, W] in memory, and [M, C/G, k] is [M, C/G, 1, k]:
      // a window of height 1 that moves by 1 with no padding.
      x_2d.insert(x_2d.begin() + 2, 1);
      w_2d.insert(w_2d.begin() + 2, 1);
      auto with_unit = [](Dims& dims, int64_t unit) { dims.insert(dims.begin(), unit); };
      with_unit(g.kernel, 1);
      with_unit(g.strides, 1);
      with_unit(g.dilations, 1);
      with_unit(g.pad_begin, 0);
      with_unit(g.pad_end, 0);
      with_unit(g.output, 1);
    }
    UnpreparedConv2d(ctx, x.data<float>(), x_2d, channels_last_, w.data<float>(), w_2d, group_,
                     b != nullptr ? b->data<float>() : nullptr, g, y->data<float>());
    epilogue_.ApplyWithResidual(ctx, y->data<float>(), r != nullptr ? r->data<float>() : nullptr, y->num_elements());
    return Status::Ok();
  }

  // A descriptor of the NCHW `dims` in the layout X and Y have in memory.
  dnnl::memory::desc UserDesc(const Dims& dims) const {
    if (!channels_last_) return PlainF32Desc(dims);
    return dnnl::memory::desc(ToDnnlDims(dims), dnnl::memory::data_type::f32, dnnl::memory::format_tag::nhwc);
  }

  // `x_dims` in NCHW order whatever X's layout.
  StatusOr<std::shared_ptr<const Plan>> MakePlan(const Dims& x_dims, const Tensor& w, bool has_bias, bool has_residual,
                                                 const Dims& kernel) const {
    const Dims in_spatial(x_dims.begin() + 2, x_dims.end());
    KILN_ASSIGN_OR_RETURN(WindowGeometry g, ResolveForwardWindow(kOp, attrs_, in_spatial, kernel, false));
    auto plan = std::make_shared<Plan>();
    plan->out_dims = {x_dims[0], w.dim(0)};
    plan->out_dims.insert(plan->out_dims.end(), g.output.begin(), g.output.end());
    plan->y_dims = plan->out_dims;
    if (channels_last_) {
      const Dims& o = plan->out_dims;
      plan->y_dims = {o[0], o[2], o[3], o[1]};
    }
    if (HasZeroDim(x_dims) || HasZeroDim(plan->out_dims)) return plan;

    Dims w_dims = w.dims();
    if (group_ > 1) {
      w_dims = {group_, w.dim(0) / group_};
      w_dims.insert(w_dims.end(), w.dims().begin() + 1, w.dims().end());
    }
    Dims dnnl_dilations = g.dilations;
    for (int64_t& d : dnnl_dilations) d -= 1;  // oneDNN counts the gaps
    const dnnl::memory::desc bias_md = has_bias ? PlainF32Desc({w.dim(0)}) : dnnl::memory::desc();
    plan->io.src_user = UserDesc(x_dims);
    plan->io.weights_user = PlainF32Desc(w_dims);
    plan->io.dst_user = UserDesc(plan->out_dims);
    // Each of Y's elements reads C/group channels times the kernel's taps.
    double outputs = 1, taps = 1;
    for (int64_t d : plan->out_dims) outputs *= static_cast<double>(d);
    for (size_t i = 1; i < w.dims().size(); ++i) taps *= static_cast<double>(w.dims()[i]);
    plan->io.flops = 2 * outputs * taps;
    // format_tag::any lets oneDNN pick its blocked layouts (nChw8c and the
    // matching weights on AVX2), which its fastest kernels need.
    dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                         AnyF32Desc(x_dims), AnyF32Desc(w_dims), bias_md, AnyF32Desc(plan->out_dims),
                                         ToDnnlDims(g.strides), ToDnnlDims(dnnl_dilations), ToDnnlDims(g.pad_begin),
                                         ToDnnlDims(g.pad_end));
    if (has_residual) {
      // format_tag::any: src1 takes the layout oneDNN picks for dst. Keep
      // the post-op only when that is R's own layout.
      dnnl::post_ops ops;
      const int residual_arg = AppendResidualPostOp(ops, AnyF32Desc(plan->out_dims));
      epilogue_.AppendPostOps(ops);
      dnnl::primitive_attr attr = UserScratchpadAttr();
      attr.set_post_ops(ops);
      try {
        plan->pd = dnnl::convolution_forward::primitive_desc(desc, attr, DnnlEngine());
        if (plan->pd.query_md(dnnl::query::exec_arg_md, residual_arg) == plan->io.dst_user) {
          plan->residual_arg = residual_arg;
        }
      } catch (const dnnl::error& e) {
        if (e.status != dnnl_unimplemented) throw;  // no implementation with it: run it after
      }
      if (plan->residual_arg == 0) {
        plan->epilogue_after = true;
        plan->pd = dnnl::convolution_forward::primitive_desc(desc, UserScratchpadAttr(), DnnlEngine());
      }
    } else {
      dnnl::primitive_attr attr = UserScratchpadAttr();
      if (!epilogue_.empty()) {
        dnnl::post_ops ops;
        epilogue_.AppendPostOps(ops);
        attr.set_post_ops(ops);
      }
      plan->pd = dnnl::convolution_forward::primitive_desc(desc, attr, DnnlEngine());
    }
    plan->primitive = dnnl::convolution_forward(plan->pd);
    plan->io.Prepare(plan->pd.src_desc(), plan->pd.weights_desc(), plan->pd.dst_desc());
    return std::shared_ptr<const Plan>(std::move(plan));
  }

  WindowAttrs attrs_;
  int64_t group_;
  Epilogue epilogue_;
  bool fused_;
  bool channels_last_;
  ShapeCache<Plan> cache_;
  // The shape key TakePreparation prepares in the background (empty: none),
  // and whether that is still under way.
  std::vector<int64_t> prepared_key_;
  std::atomic<bool> preparation_pending_{false};
};

}  // namespace

namespace {

StatusOr<std::unique_ptr<OpKernel>> CreateConv(const graph::Node& node, Epilogue epilogue, bool fused) {
  KILN_ASSIGN_OR_RETURN(WindowAttrs attrs, ParseWindowAttrs(node, kOp));
  KILN_ASSIGN_OR_RETURN(int64_t group, node.GetInt("group", 1));
  if (group <= 0) return InvalidModel(kOp, ": group must be positive, got ", group);
  KILN_ASSIGN_OR_RETURN(int64_t channels_last, node.GetInt(graph::kChannelsLastAttr, 0));
  if (channels_last != 0 && !fused) return InvalidModel(kOp, ": channels_last is a kiln.FusedConv attribute");
  return std::unique_ptr<OpKernel>(new ConvKernel(std::move(attrs), group, epilogue, fused, channels_last != 0));
}

// A convolution of ResNet's middle stage, the kind channels-last is for.
constexpr int64_t kProbeChannels = 64;
constexpr int64_t kProbeSize = 56;

bool ProbeChannelsLast() {
  try {
    const Dims x = {1, kProbeChannels, kProbeSize, kProbeSize};
    const Dims w = {kProbeChannels, kProbeChannels, 3, 3};
    dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                         AnyF32Desc(x), AnyF32Desc(w), dnnl::memory::desc(), AnyF32Desc(x), {1, 1},
                                         {0, 0}, {1, 1}, {1, 1});
    dnnl::convolution_forward::primitive_desc pd(desc, DnnlEngine());
    return pd.src_desc() ==
           dnnl::memory::desc(ToDnnlDims(x), dnnl::memory::data_type::f32, dnnl::memory::format_tag::nhwc);
  } catch (const dnnl::error&) {
    return false;
  }
}

}  // namespace

bool ConvPrefersChannelsLast() {
  // A fact about the host and the oneDNN build, the same on every call.
  static const bool prefers = ProbeChannelsLast();
  return prefers;
}

StatusOr<std::unique_ptr<OpKernel>> CreateConvKernel(const graph::Node& node) { return CreateConv(node, {}, false); }

StatusOr<std::unique_ptr<OpKernel>> CreateFusedConvKernel(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(Epilogue epilogue, ParseEpilogue(node, "FusedConv"));
  return CreateConv(node, epilogue, true);
}

}  // namespace kiln::kernels
