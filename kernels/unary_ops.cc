// Unary elementwise math and activations: one kernel template instantiated
// per op with a small functor holding the op's parsed attributes. The
// functors are inlined into a flat loop, so the float32 paths of the
// activations vectorise (Exp, Tanh and Sigmoid through fast_math.h).
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "kernels/elementwise_common.h"
#include "kernels/fast_math.h"

namespace kiln::kernels {
namespace {

template <typename Op, typename Types>
class UnaryKernel final : public OpKernel {
 public:
  UnaryKernel(std::string name, Op op) : name_(std::move(name)), op_(op) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument(name_, ": missing input X");
    return DispatchDType(Types{}, x->dtype(), name_.c_str(), [&](auto tag) -> Status {
      using T = typename decltype(tag)::type;
      KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x->dtype(), x->dims()));
      ApplyUnary(ctx.parallel(), x->data<T>(), y->data<T>(), x->num_elements(), op_);
      return Status::Ok();
    });
  }

 private:
  std::string name_;
  Op op_;
};

// Parses an op's attributes into its functor; a plain functor without
// attributes uses NoAttributes.
template <typename Op>
StatusOr<Op> NoAttributes(const graph::Node&) {
  return Op{};
}

template <typename Op, typename Types, typename Parse>
void RegisterUnary(KernelRegistry& registry, const char* op_type, int since_version, Parse parse,
                   const char* domain = "") {
  registry.Register(KernelDef{op_type, domain, since_version, kNoMaxOpset,
                              [parse](const graph::Node& node) -> StatusOr<std::unique_ptr<OpKernel>> {
                                KILN_ASSIGN_OR_RETURN(Op op, parse(node));
                                return std::unique_ptr<OpKernel>(new UnaryKernel<Op, Types>(node.op_type, op));
                              }});
}

template <typename Op, typename Types>
void RegisterUnary(KernelRegistry& registry, const char* op_type, int since_version) {
  RegisterUnary<Op, Types>(registry, op_type, since_version, NoAttributes<Op>);
}

// --- math ---------------------------------------------------------------

struct ExpOp {
  float operator()(float x) const { return FastExp(x); }
  double operator()(double x) const { return std::exp(x); }
};
struct LogOp {
  template <typename T>
  T operator()(T x) const {
    return std::log(x);
  }
};
struct SqrtOp {
  template <typename T>
  T operator()(T x) const {
    return std::sqrt(x);
  }
};
struct ReciprocalOp {
  template <typename T>
  T operator()(T x) const {
    return T(1) / x;
  }
};
struct SinOp {
  template <typename T>
  T operator()(T x) const {
    return std::sin(x);
  }
};
struct CosOp {
  template <typename T>
  T operator()(T x) const {
    return std::cos(x);
  }
};
struct TanOp {
  template <typename T>
  T operator()(T x) const {
    return std::tan(x);
  }
};
struct AsinOp {
  template <typename T>
  T operator()(T x) const {
    return std::asin(x);
  }
};
struct AcosOp {
  template <typename T>
  T operator()(T x) const {
    return std::acos(x);
  }
};
struct AtanOp {
  template <typename T>
  T operator()(T x) const {
    return std::atan(x);
  }
};
struct SinhOp {
  template <typename T>
  T operator()(T x) const {
    return std::sinh(x);
  }
};
struct CoshOp {
  template <typename T>
  T operator()(T x) const {
    return std::cosh(x);
  }
};
struct AsinhOp {
  template <typename T>
  T operator()(T x) const {
    return std::asinh(x);
  }
};
struct AcoshOp {
  template <typename T>
  T operator()(T x) const {
    return std::acosh(x);
  }
};
struct AtanhOp {
  template <typename T>
  T operator()(T x) const {
    return std::atanh(x);
  }
};
struct ErfOp {
  // Inlined into the kernel's simd loop (see FastErf).
  [[gnu::always_inline]] float operator()(float x) const { return FastErf(x); }
  double operator()(double x) const { return std::erf(x); }
};
struct FloorOp {
  template <typename T>
  T operator()(T x) const {
    return std::floor(x);
  }
};
struct CeilOp {
  template <typename T>
  T operator()(T x) const {
    return std::ceil(x);
  }
};
// ONNX rounds halves to even, which is the default floating-point rounding
// mode that nearbyint uses.
struct RoundOp {
  template <typename T>
  T operator()(T x) const {
    return std::nearbyint(x);
  }
};

struct NegOp {
  template <typename T>
  T operator()(T x) const {
    if constexpr (std::is_integral_v<T>) {
      // Wraps for the minimum value (as two's complement hardware does)
      // instead of overflowing, which would be undefined.
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(U{0} - static_cast<U>(x));
    } else {
      return -x;
    }
  }
};
struct AbsOp {
  template <typename T>
  T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) {
      return std::fabs(x);
    } else if constexpr (std::is_unsigned_v<T>) {
      return x;
    } else {
      return x < 0 ? NegOp{}(x) : x;
    }
  }
};
// NaN stays NaN (as numpy does).
struct SignOp {
  template <typename T>
  T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) {
      return x > T(0) ? T(1) : x < T(0) ? T(-1) : x == T(0) ? T(0) : x;
    } else {
      return static_cast<T>((x > T(0)) - (x < T(0)));
    }
  }
};

// --- activations ----------------------------------------------------------

struct ReluOp {
  template <typename T>
  T operator()(T x) const {
    return x > T(0) ? x : T(0);
  }
};
struct SigmoidOp {
  float operator()(float x) const { return FastSigmoid(x); }
  double operator()(double x) const { return 1.0 / (1.0 + std::exp(-x)); }
};
struct TanhOp {
  float operator()(float x) const { return FastTanh(x); }
  double operator()(double x) const { return std::tanh(x); }
};
struct SoftsignOp {
  template <typename T>
  T operator()(T x) const {
    return x / (T(1) + std::fabs(x));
  }
};
// log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x and no
// loss for large negative x.
struct SoftplusOp {
  template <typename T>
  T operator()(T x) const {
    return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::fabs(x)));
  }
};
struct HardSwishOp {
  template <typename T>
  T operator()(T x) const {
    T v = x * T(1.0 / 6.0) + T(0.5);
    v = v > T(0) ? v : T(0);
    v = v < T(1) ? v : T(1);
    return x * v;
  }
};

struct LeakyReluOp {
  float alpha = 0.01f;
  template <typename T>
  T operator()(T x) const {
    return x >= T(0) ? x : T(alpha) * x;
  }
};
StatusOr<LeakyReluOp> ParseLeakyRelu(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(float alpha, node.GetFloat("alpha", 0.01f));
  return LeakyReluOp{alpha};
}

struct EluOp {
  float alpha = 1.0f;
  template <typename T>
  T operator()(T x) const {
    return x >= T(0) ? x : T(alpha) * std::expm1(x);
  }
};
StatusOr<EluOp> ParseElu(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(float alpha, node.GetFloat("alpha", 1.0f));
  return EluOp{alpha};
}

struct CeluOp {
  float alpha = 1.0f;
  template <typename T>
  T operator()(T x) const {
    return x >= T(0) ? x : T(alpha) * std::expm1(x / T(alpha));
  }
};
StatusOr<CeluOp> ParseCelu(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(float alpha, node.GetFloat("alpha", 1.0f));
  if (alpha == 0.0f) return InvalidArgument("Celu: alpha must not be 0");
  return CeluOp{alpha};
}

struct SeluOp {
  float alpha = 1.67326319217681884765625f;
  float gamma = 1.05070102214813232421875f;
  template <typename T>
  T operator()(T x) const {
    return T(gamma) * (x > T(0) ? x : T(alpha) * std::expm1(x));
  }
};
StatusOr<SeluOp> ParseSelu(const graph::Node& node) {
  SeluOp op;
  KILN_ASSIGN_OR_RETURN(op.alpha, node.GetFloat("alpha", op.alpha));
  KILN_ASSIGN_OR_RETURN(op.gamma, node.GetFloat("gamma", op.gamma));
  return op;
}

struct HardSigmoidOp {
  float alpha = 0.2f;
  float beta = 0.5f;
  template <typename T>
  T operator()(T x) const {
    T v = T(alpha) * x + T(beta);
    v = v > T(0) ? v : T(0);
    return v < T(1) ? v : T(1);
  }
};
StatusOr<HardSigmoidOp> ParseHardSigmoid(const graph::Node& node) {
  HardSigmoidOp op;
  KILN_ASSIGN_OR_RETURN(op.alpha, node.GetFloat("alpha", op.alpha));
  KILN_ASSIGN_OR_RETURN(op.beta, node.GetFloat("beta", op.beta));
  return op;
}

struct ThresholdedReluOp {
  float alpha = 1.0f;
  template <typename T>
  T operator()(T x) const {
    return x > T(alpha) ? x : T(0);
  }
};
StatusOr<ThresholdedReluOp> ParseThresholdedRelu(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(float alpha, node.GetFloat("alpha", 1.0f));
  return ThresholdedReluOp{alpha};
}

struct ShrinkOp {
  float bias = 0.0f;
  float lambd = 0.5f;
  template <typename T>
  T operator()(T x) const {
    const double v = static_cast<double>(x);
    if (v < -lambd) return static_cast<T>(v + bias);
    if (v > lambd) return static_cast<T>(v - bias);
    return T(0);
  }
};
StatusOr<ShrinkOp> ParseShrink(const graph::Node& node) {
  ShrinkOp op;
  KILN_ASSIGN_OR_RETURN(op.bias, node.GetFloat("bias", op.bias));
  KILN_ASSIGN_OR_RETURN(op.lambd, node.GetFloat("lambd", op.lambd));
  return op;
}

// Gelu (ONNX opset 20): x * Phi(x) computed exactly through erf, or with
// the tanh approximation 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))). Two
// functors rather than a flag so each inner loop stays branch-free.
struct GeluErfOp {
  [[gnu::always_inline]] float operator()(float x) const {
    return 0.5f * x * (1.0f + FastErf(x * 0.70710678118654752440f));
  }
  double operator()(double x) const { return 0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440)); }
};
struct GeluTanhOp {
  template <typename T>
  T operator()(T x) const {
    constexpr T kSqrt2OverPi = T(0.79788456080286535588);
    return T(0.5) * x * (T(1) + TanhOp{}(kSqrt2OverPi * (x + T(0.044715) * x * x * x)));
  }
};

StatusOr<std::unique_ptr<OpKernel>> CreateGelu(const graph::Node& node) {
  auto approximate = node.GetString("approximate", "none");
  if (!approximate.ok()) return approximate.status();
  if (*approximate == "none") return std::unique_ptr<OpKernel>(new UnaryKernel<GeluErfOp, FloatTypes>("Gelu", {}));
  if (*approximate == "tanh") return std::unique_ptr<OpKernel>(new UnaryKernel<GeluTanhOp, FloatTypes>("Gelu", {}));
  return Unsupported("Gelu: approximate='", *approximate, "' (expected 'none' or 'tanh')");
}

}  // namespace

void RegisterUnaryOps(KernelRegistry& r) {
  // Opsets before 6 only added the ignored `consumed_inputs` attribute, so
  // every version is served by one kernel.
  RegisterUnary<ExpOp, FloatTypes>(r, "Exp", 1);
  RegisterUnary<LogOp, FloatTypes>(r, "Log", 1);
  RegisterUnary<SqrtOp, FloatTypes>(r, "Sqrt", 1);
  RegisterUnary<ReciprocalOp, FloatTypes>(r, "Reciprocal", 1);
  RegisterUnary<SinOp, FloatTypes>(r, "Sin", 7);
  RegisterUnary<CosOp, FloatTypes>(r, "Cos", 7);
  RegisterUnary<TanOp, FloatTypes>(r, "Tan", 7);
  RegisterUnary<AsinOp, FloatTypes>(r, "Asin", 7);
  RegisterUnary<AcosOp, FloatTypes>(r, "Acos", 7);
  RegisterUnary<AtanOp, FloatTypes>(r, "Atan", 7);
  RegisterUnary<SinhOp, FloatTypes>(r, "Sinh", 9);
  RegisterUnary<CoshOp, FloatTypes>(r, "Cosh", 9);
  RegisterUnary<AsinhOp, FloatTypes>(r, "Asinh", 9);
  RegisterUnary<AcoshOp, FloatTypes>(r, "Acosh", 9);
  RegisterUnary<AtanhOp, FloatTypes>(r, "Atanh", 9);
  RegisterUnary<ErfOp, FloatTypes>(r, "Erf", 9);
  RegisterUnary<FloorOp, FloatTypes>(r, "Floor", 1);
  RegisterUnary<CeilOp, FloatTypes>(r, "Ceil", 1);
  RegisterUnary<RoundOp, FloatTypes>(r, "Round", 11);
  RegisterUnary<NegOp, SignedTypes>(r, "Neg", 1);
  RegisterUnary<AbsOp, NumericTypes>(r, "Abs", 1);
  RegisterUnary<SignOp, NumericTypes>(r, "Sign", 9);

  RegisterUnary<ReluOp, SignedTypes>(r, "Relu", 1);
  RegisterUnary<SigmoidOp, FloatTypes>(r, "Sigmoid", 1);
  RegisterUnary<TanhOp, FloatTypes>(r, "Tanh", 1);
  RegisterUnary<SoftsignOp, FloatTypes>(r, "Softsign", 1);
  RegisterUnary<SoftplusOp, FloatTypes>(r, "Softplus", 1);
  RegisterUnary<HardSwishOp, FloatTypes>(r, "HardSwish", 14);
  RegisterUnary<LeakyReluOp, FloatTypes>(r, "LeakyRelu", 1, ParseLeakyRelu);
  RegisterUnary<EluOp, FloatTypes>(r, "Elu", 1, ParseElu);
  RegisterUnary<CeluOp, FloatTypes>(r, "Celu", 12, ParseCelu);
  RegisterUnary<SeluOp, FloatTypes>(r, "Selu", 1, ParseSelu);
  RegisterUnary<HardSigmoidOp, FloatTypes>(r, "HardSigmoid", 1, ParseHardSigmoid);
  RegisterUnary<ThresholdedReluOp, FloatTypes>(r, "ThresholdedRelu", 10, ParseThresholdedRelu);
  RegisterUnary<ShrinkOp, FloatTypes>(r, "Shrink", 9, ParseShrink);
  // Gelu is an opset-20 op, newer than the opsets kiln targets; exporters
  // already emit it in models importing older opsets, so every opset of the
  // default domain accepts it.
  r.Register(KernelDef{"Gelu", "", 1, kNoMaxOpset, CreateGelu});
}

}  // namespace kiln::kernels
