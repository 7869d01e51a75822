// Slice: starts/ends/axes are attributes before opset 10 and inputs (with
// steps) from 10 on. Each sliced axis becomes a (start, step, count) triple;
// the copy is then one StridedCopy, which merges the untouched inner axes
// into contiguous memcpy runs.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>

#include "kernels/tensor_ops_common.h"

namespace kiln::kernels {
namespace {

struct SliceArgs {
  std::vector<int64_t> starts, ends, axes, steps;
};

class SliceKernel final : public OpKernel {
 public:
  // `attrs` is set before opset 10, when the arguments are attributes.
  explicit SliceKernel(std::optional<SliceArgs> attrs) : attrs_(std::move(attrs)) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    if (in == nullptr) return InvalidArgument("Slice: input is missing");
    SliceArgs args;
    if (attrs_) {
      args = *attrs_;
    } else {
      if (ctx.input(1) == nullptr || ctx.input(2) == nullptr) {
        return InvalidArgument("Slice: starts and ends are required");
      }
      KILN_ASSIGN_OR_RETURN(args.starts, ReadIndexVector("Slice", "starts", *ctx.input(1)));
      KILN_ASSIGN_OR_RETURN(args.ends, ReadIndexVector("Slice", "ends", *ctx.input(2)));
      if (ctx.input(3) != nullptr) {
        KILN_ASSIGN_OR_RETURN(args.axes, ReadIndexVector("Slice", "axes", *ctx.input(3)));
      }
      if (ctx.input(4) != nullptr) {
        KILN_ASSIGN_OR_RETURN(args.steps, ReadIndexVector("Slice", "steps", *ctx.input(4)));
      }
    }
    const size_t n = args.starts.size();
    if (args.ends.size() != n) {
      return InvalidArgument("Slice: starts has ", n, " entries but ends has ", args.ends.size());
    }
    if (args.axes.empty()) {
      for (size_t i = 0; i < n; ++i) args.axes.push_back(static_cast<int64_t>(i));
    } else if (args.axes.size() != n) {
      return InvalidArgument("Slice: axes has ", args.axes.size(), " entries but starts has ", n);
    }
    if (args.steps.empty()) {
      args.steps.assign(n, 1);
    } else if (args.steps.size() != n) {
      return InvalidArgument("Slice: steps has ", args.steps.size(), " entries but starts has ", n);
    }
    KILN_ASSIGN_OR_RETURN(const std::vector<int64_t> axes, NormalizeAxes("Slice", args.axes, in->rank()));

    const std::vector<int64_t> in_strides = ContiguousStrides(in->dims());
    Dims out_dims = in->dims();
    std::vector<int64_t> src_strides = in_strides;
    int64_t base = 0;  // element offset of the first element read
    for (size_t i = 0; i < n; ++i) {
      const size_t a = static_cast<size_t>(axes[i]);
      const int64_t dim = in->dims()[a];
      const int64_t step = args.steps[i];
      if (step == 0) return InvalidArgument("Slice: step for axis ", axes[i], " is 0");
      int64_t start = args.starts[i];
      int64_t end = args.ends[i];
      if (start < 0) start += dim;
      if (end < 0) end += dim;
      int64_t count;
      if (dim == 0) {
        count = 0;
      } else if (step > 0) {
        start = std::clamp<int64_t>(start, 0, dim);
        end = std::clamp<int64_t>(end, 0, dim);
        // (span - 1) / step + 1 rather than a rounded-up division, which
        // overflows for steps near INT64_MAX.
        count = end > start ? (end - start - 1) / step + 1 : 0;
      } else {
        start = std::clamp<int64_t>(start, 0, dim - 1);
        end = std::clamp<int64_t>(end, -1, dim - 1);
        // -step may overflow for INT64_MIN; a step that large takes one element.
        const int64_t neg = step == INT64_MIN ? INT64_MAX : -step;
        count = start > end ? (start - end - 1) / neg + 1 : 0;
      }
      out_dims[a] = count;
      if (count > 0) {
        base += start * in_strides[a];
        src_strides[a] = count > 1 ? in_strides[a] * step : in_strides[a];
      }
    }
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, in->dtype(), out_dims));
    if (out->num_elements() == 0) return Status::Ok();
    const size_t es = DTypeSize(in->dtype());
    StridedCopy(ctx.parallel(), es, out->raw_data(),
                static_cast<const char*>(in->raw_data()) + base * static_cast<int64_t>(es), out_dims, src_strides);
    return Status::Ok();
  }

 private:
  std::optional<SliceArgs> attrs_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateSlice(const graph::Node& node) {
  std::optional<SliceArgs> attrs;
  if (node.opset < 10) {
    SliceArgs a;
    KILN_ASSIGN_OR_RETURN(a.starts, node.GetInts("starts"));
    KILN_ASSIGN_OR_RETURN(a.ends, node.GetInts("ends"));
    KILN_ASSIGN_OR_RETURN(a.axes, node.GetInts("axes"));
    attrs = std::move(a);
  }
  return std::unique_ptr<OpKernel>(new SliceKernel(std::move(attrs)));
}

}  // namespace

void RegisterSliceOp(KernelRegistry& r) { r.Register(KernelDef{"Slice", "", 1, kNoMaxOpset, CreateSlice}); }

}  // namespace kiln::kernels
