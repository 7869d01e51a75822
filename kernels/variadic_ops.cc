// Variadic broadcasting ops: Sum, Mean, Min, Max. The output starts as the
// combination of the first two inputs and each further input is folded into
// it in place (the output already has the full broadcast shape, so every
// element is read before it is written).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/broadcast.h"
#include "kernels/elementwise_common.h"

namespace kiln::kernels {
namespace {

struct SumOp {
  template <typename T>
  T operator()(T a, T b) const {
    return WrapAdd(a, b);
  }
};
// NaN in either operand gives NaN, as numpy's minimum and maximum do.
struct MinOp {
  template <typename T>
  T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>)
      return (a < b || a != a) ? a : b;
    else
      return a < b ? a : b;
  }
};
struct MaxOp {
  template <typename T>
  T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>)
      return (a > b || a != a) ? a : b;
    else
      return a > b ? a : b;
  }
};

template <typename Op, typename Types, bool kMean>
class VariadicKernel final : public OpKernel {
 public:
  explicit VariadicKernel(std::string name) : name_(std::move(name)) {}

  Status Compute(KernelContext& ctx) const override {
    const int n = ctx.num_inputs();
    if (n < 1) return InvalidArgument(name_, ": expects at least one input");
    std::vector<const Dims*> shapes;
    for (int i = 0; i < n; ++i) {
      const Tensor* t = ctx.input(i);
      if (t == nullptr) return InvalidArgument(name_, ": input ", i, " is missing");
      if (t->dtype() != ctx.input(0)->dtype()) {
        return InvalidArgument(name_, ": input ", i, " has dtype ", DTypeName(t->dtype()), ", input 0 has ",
                               DTypeName(ctx.input(0)->dtype()));
      }
      shapes.push_back(&t->dims());
    }
    KILN_ASSIGN_OR_RETURN(Dims out_dims, BroadcastDims(name_.c_str(), shapes));
    const Tensor& first = *ctx.input(0);
    return DispatchDType(Types{}, first.dtype(), name_.c_str(), [&](auto tag) -> Status {
      using T = typename decltype(tag)::type;
      KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, first.dtype(), out_dims));
      T* o = out->data<T>();
      if (n == 1) {
        if (first.byte_size() > 0) std::memcpy(o, first.data<T>(), first.byte_size());
        return Status::Ok();
      }
      const Op op;
      const Tensor& second = *ctx.input(1);
      BroadcastBinary(ctx.parallel(), first.data<T>(), first.dims(), second.data<T>(), second.dims(), o, out_dims, op);
      for (int i = 2; i < n; ++i) {
        const Tensor& next = *ctx.input(i);
        BroadcastBinary(ctx.parallel(), static_cast<const T*>(o), out_dims, next.data<T>(), next.dims(), o, out_dims,
                        op);
      }
      if constexpr (kMean) {
        const T count = static_cast<T>(n);
        ApplyUnary(ctx.parallel(), static_cast<const T*>(o), o, out->num_elements(),
                   [count](T v) { return v / count; });
      }
      return Status::Ok();
    });
  }

 private:
  std::string name_;
};

template <typename Op, typename Types, bool kMean = false>
void RegisterVariadic(KernelRegistry& registry, const char* op_type, int since_version) {
  registry.Register(KernelDef{op_type, "", since_version, kNoMaxOpset,
                              [](const graph::Node& node) -> StatusOr<std::unique_ptr<OpKernel>> {
                                return std::unique_ptr<OpKernel>(new VariadicKernel<Op, Types, kMean>(node.op_type));
                              }});
}

}  // namespace

void RegisterVariadicOps(KernelRegistry& r) {
  // Versions 6-7 required equal shapes, which broadcasting covers; version
  // 1 differs only by the ignored `consumed_inputs` attribute.
  RegisterVariadic<SumOp, NumericTypes>(r, "Sum", 1);
  RegisterVariadic<SumOp, FloatTypes, /*kMean=*/true>(r, "Mean", 1);
  RegisterVariadic<MinOp, NumericTypes>(r, "Min", 1);
  RegisterVariadic<MaxOp, NumericTypes>(r, "Max", 1);
}

}  // namespace kiln::kernels
