// Clip: bounds come from the `min`/`max` attributes up to opset 10 and from
// optional scalar inputs from opset 11 on. When min > max every element
// becomes max, as ONNX specifies; NaN passes through.
#include <cstdint>
#include <limits>
#include <memory>

#include "kernels/elementwise_common.h"

namespace kiln::kernels {
namespace {

template <typename T>
void ClipTyped(KernelContext& ctx, const Tensor& x, Tensor& y, T lo, T hi) {
  ApplyUnary(ctx.parallel(), x.data<T>(), y.data<T>(), x.num_elements(), [lo, hi](T v) {
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
  });
}

// Opsets 1-10: float bounds as attributes.
class ClipAttrKernel final : public OpKernel {
 public:
  ClipAttrKernel(float lo, float hi) : lo_(lo), hi_(hi) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument("Clip: missing input");
    return DispatchDType(FloatTypes{}, x->dtype(), "Clip", [&](auto tag) -> Status {
      using T = typename decltype(tag)::type;
      KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x->dtype(), x->dims()));
      ClipTyped<T>(ctx, *x, *y, static_cast<T>(lo_), static_cast<T>(hi_));
      return Status::Ok();
    });
  }

 private:
  float lo_;
  float hi_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateClipAttr(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(float lo, node.GetFloat("min", std::numeric_limits<float>::lowest()));
  KILN_ASSIGN_OR_RETURN(float hi, node.GetFloat("max", std::numeric_limits<float>::max()));
  return std::unique_ptr<OpKernel>(new ClipAttrKernel(lo, hi));
}

// Opset 11+: optional scalar inputs of X's dtype.
class ClipKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument("Clip: missing input");
    const Tensor* bounds[2] = {ctx.input(1), ctx.input(2)};
    for (int i = 0; i < 2; ++i) {
      const Tensor* b = bounds[i];
      if (b == nullptr) continue;
      const char* name = i == 0 ? "min" : "max";
      if (b->dtype() != x->dtype()) {
        return InvalidArgument("Clip: ", name, " has dtype ", DTypeName(b->dtype()), ", input has ",
                               DTypeName(x->dtype()));
      }
      if (b->num_elements() != 1) {
        return InvalidArgument("Clip: ", name, " must be a scalar, got shape ", DimsToString(b->dims()));
      }
    }
    return DispatchDType(NumericTypes{}, x->dtype(), "Clip", [&](auto tag) -> Status {
      using T = typename decltype(tag)::type;
      const T lo = bounds[0] ? *bounds[0]->data<T>() : std::numeric_limits<T>::lowest();
      const T hi = bounds[1] ? *bounds[1]->data<T>() : std::numeric_limits<T>::max();
      KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x->dtype(), x->dims()));
      ClipTyped<T>(ctx, *x, *y, lo, hi);
      return Status::Ok();
    });
  }
};

}  // namespace

void RegisterClipOp(KernelRegistry& r) {
  r.Register(KernelDef{"Clip", "", 1, 10, CreateClipAttr});
  r.Register(KernelDef{"Clip", "", 11, kNoMaxOpset, MakeFactory<ClipKernel>()});
}

}  // namespace kiln::kernels
