// Broadcasting binary arithmetic: Add, Sub, Mul, Div, Mod, Pow, PRelu.
// Opsets 1-6 of these ops had `broadcast`/`axis` attributes with other
// semantics; only the numpy-broadcasting versions (7+) are registered, so a
// legacy model is reported as unsupported rather than computed wrongly.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "kernels/broadcast.h"
#include "kernels/elementwise_common.h"

namespace kiln::kernels {
namespace {

// Checks the two inputs of a binary op, which must share a dtype, and
// returns the broadcast output dims.
StatusOr<Dims> CheckBinaryInputs(const std::string& op, const Tensor* a, const Tensor* b) {
  if (a == nullptr || b == nullptr) return InvalidArgument(op, ": expects 2 inputs");
  if (a->dtype() != b->dtype()) {
    return InvalidArgument(op, ": inputs have different dtypes ", DTypeName(a->dtype()), " and ",
                           DTypeName(b->dtype()));
  }
  return BroadcastDims(op.c_str(), {&a->dims(), &b->dims()});
}

template <typename T>
Status CheckNoZeroDivisor(const std::string& op, const Tensor& divisor) {
  if constexpr (std::is_integral_v<T>) {
    const T* d = divisor.data<T>();
    for (int64_t i = 0, n = divisor.num_elements(); i < n; ++i) {
      if (d[i] == T(0)) return InvalidArgument(op, ": integer division by zero");
    }
  }
  return Status::Ok();
}

struct AddOp {
  template <typename T>
  T operator()(T a, T b) const {
    return WrapAdd(a, b);
  }
};
struct SubOp {
  template <typename T>
  T operator()(T a, T b) const {
    return WrapSub(a, b);
  }
};
struct MulOp {
  template <typename T>
  T operator()(T a, T b) const {
    return WrapMul(a, b);
  }
};
// Integer division truncates toward zero (C semantics, as ONNX specifies);
// min / -1 wraps instead of trapping. Zero divisors are rejected beforehand.
struct DivOp {
  template <typename T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      return b == T(-1) ? WrapSub(T(0), a) : static_cast<T>(a / b);
    } else {
      return static_cast<T>(a / b);
    }
  }
};

// fmod=1: the remainder has the dividend's sign (C fmod / %); fmod=0: the
// divisor's sign (Python %).
struct ModOp {
  bool fmod = false;
  template <typename T>
  T operator()(T a, T b) const {
    T r;
    if constexpr (std::is_floating_point_v<T>) {
      r = std::fmod(a, b);
    } else if constexpr (std::is_signed_v<T>) {
      r = b == T(-1) ? T(0) : static_cast<T>(a % b);
    } else {
      r = static_cast<T>(a % b);
    }
    if (!fmod && r != T(0) && ((r < T(0)) != (b < T(0)))) r = static_cast<T>(r + b);
    return r;
  }
};

struct PReluOp {
  template <typename T>
  T operator()(T x, T slope) const {
    return x < T(0) ? slope * x : x;
  }
};

// Binary ops whose inputs and output share one dtype.
template <typename Op, typename Types, bool kDivides>
class SameTypeBinaryKernel final : public OpKernel {
 public:
  SameTypeBinaryKernel(std::string name, Op op) : name_(std::move(name)), op_(op) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    KILN_ASSIGN_OR_RETURN(Dims out_dims, CheckBinaryInputs(name_, a, b));
    return DispatchDType(Types{}, a->dtype(), name_.c_str(), [&](auto tag) -> Status {
      using T = typename decltype(tag)::type;
      if constexpr (kDivides) KILN_RETURN_IF_ERROR(CheckNoZeroDivisor<T>(name_, *b));
      KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, a->dtype(), out_dims));
      BroadcastBinary(ctx.parallel(), a->data<T>(), a->dims(), b->data<T>(), b->dims(), out->data<T>(), out_dims, op_);
      return Status::Ok();
    });
  }

 private:
  std::string name_;
  Op op_;
};

template <typename Op, typename Types, bool kDivides = false>
void RegisterSameType(KernelRegistry& registry, const char* op_type, int since_version, Op op = Op{}) {
  registry.Register(KernelDef{
      op_type, "", since_version, kNoMaxOpset, [op](const graph::Node& node) -> StatusOr<std::unique_ptr<OpKernel>> {
        return std::unique_ptr<OpKernel>(new SameTypeBinaryKernel<Op, Types, kDivides>(node.op_type, op));
      }});
}

class ModKernel final : public OpKernel {
 public:
  explicit ModKernel(bool fmod) : fmod_(fmod) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    KILN_ASSIGN_OR_RETURN(Dims out_dims, CheckBinaryInputs("Mod", a, b));
    return DispatchDType(NumericTypes{}, a->dtype(), "Mod", [&](auto tag) -> Status {
      using T = typename decltype(tag)::type;
      KILN_RETURN_IF_ERROR(CheckNoZeroDivisor<T>("Mod", *b));
      KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, a->dtype(), out_dims));
      BroadcastBinary(ctx.parallel(), a->data<T>(), a->dims(), b->data<T>(), b->dims(), out->data<T>(), out_dims,
                      ModOp{fmod_});
      return Status::Ok();
    });
  }

 private:
  bool fmod_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateMod(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t fmod, node.GetInt("fmod", 0));
  if (fmod != 0 && fmod != 1) return InvalidArgument("Mod: fmod must be 0 or 1, got ", fmod);
  return std::unique_ptr<OpKernel>(new ModKernel(fmod == 1));
}

// --- Pow --------------------------------------------------------------------

// base^exponent for integers by repeated squaring, wrapping on overflow. A
// negative exponent gives the truncated 1 / base^-e: 0 unless |base| is 1.
template <typename T, typename E>
T IntegerPow(T base, E exponent) {
  if (exponent < E(0)) {
    if (base == T(1)) return T(1);
    if (base == T(-1)) return (exponent % 2 == 0) ? T(1) : T(-1);
    return T(0);
  }
  T result = T(1);
  while (exponent != E(0)) {
    if (exponent & E(1)) result = WrapMul(result, base);
    base = WrapMul(base, base);
    exponent = static_cast<E>(exponent >> 1);
  }
  return result;
}

template <typename T, typename E>
struct PowOp {
  T operator()(T base, E exponent) const {
    if constexpr (std::is_integral_v<T> && std::is_integral_v<E>) {
      return IntegerPow(base, exponent);
    } else if constexpr (std::is_integral_v<T>) {
      return ConvertValue<T>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
    } else if constexpr (std::is_same_v<T, float> && std::is_integral_v<E>) {
      // A large integer exponent does not survive the trip through float.
      return static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
    } else {
      return std::pow(base, static_cast<T>(exponent));
    }
  }
};

using PowTypes = TypeList<float, double, int64_t, int32_t>;

class PowKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* y = ctx.input(1);
    if (x == nullptr || y == nullptr) return InvalidArgument("Pow: expects 2 inputs");
    KILN_ASSIGN_OR_RETURN(Dims out_dims, BroadcastDims("Pow", {&x->dims(), &y->dims()}));
    return DispatchDType(PowTypes{}, x->dtype(), "Pow", [&](auto base_tag) -> Status {
      using T = typename decltype(base_tag)::type;
      return DispatchDType(PowTypes{}, y->dtype(), "Pow (exponent)", [&](auto exp_tag) -> Status {
        using E = typename decltype(exp_tag)::type;
        KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x->dtype(), out_dims));
        if constexpr (std::is_floating_point_v<T>) {
          // Squares and square roots are common (hand-written norms and
          // Gelu); a scalar exponent of that kind skips the pow call.
          if (y->num_elements() == 1 && out_dims == x->dims()) {
            const double e = static_cast<double>(*y->data<E>());
            const T* in = x->data<T>();
            T* o = out->data<T>();
            const int64_t n = x->num_elements();
            if (e == 1.0) {
              ApplyUnary(ctx.parallel(), in, o, n, [](T v) { return v; });
              return Status::Ok();
            }
            if (e == 2.0) {
              ApplyUnary(ctx.parallel(), in, o, n, [](T v) { return v * v; });
              return Status::Ok();
            }
            if (e == 3.0) {
              ApplyUnary(ctx.parallel(), in, o, n, [](T v) { return v * v * v; });
              return Status::Ok();
            }
            if (e == 0.5) {
              ApplyUnary(ctx.parallel(), in, o, n, [](T v) { return std::sqrt(v); });
              return Status::Ok();
            }
          }
        }
        BroadcastBinary(ctx.parallel(), x->data<T>(), x->dims(), y->data<E>(), y->dims(), out->data<T>(), out_dims,
                        PowOp<T, E>{});
        return Status::Ok();
      });
    });
  }
};

}  // namespace

void RegisterBinaryOps(KernelRegistry& r) {
  RegisterSameType<AddOp, NumericTypes>(r, "Add", 7);
  RegisterSameType<SubOp, NumericTypes>(r, "Sub", 7);
  RegisterSameType<MulOp, NumericTypes>(r, "Mul", 7);
  RegisterSameType<DivOp, NumericTypes, /*kDivides=*/true>(r, "Div", 7);
  RegisterSameType<PReluOp, FloatTypes>(r, "PRelu", 7);
  r.Register(KernelDef{"Mod", "", 10, kNoMaxOpset, CreateMod});
  r.Register(KernelDef{"Pow", "", 7, kNoMaxOpset, MakeFactory<PowKernel>()});
}

}  // namespace kiln::kernels
