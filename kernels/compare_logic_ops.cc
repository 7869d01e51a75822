// Comparisons (numeric inputs, bool output), logical ops on bool tensors,
// and the IsNaN / IsInf predicates.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "kernels/broadcast.h"
#include "kernels/elementwise_common.h"

namespace kiln::kernels {
namespace {

struct EqualOp {
  template <typename T>
  bool operator()(T a, T b) const {
    return a == b;
  }
};
struct LessOp {
  template <typename T>
  bool operator()(T a, T b) const {
    return a < b;
  }
};
struct LessOrEqualOp {
  template <typename T>
  bool operator()(T a, T b) const {
    return a <= b;
  }
};
struct GreaterOp {
  template <typename T>
  bool operator()(T a, T b) const {
    return a > b;
  }
};
struct GreaterOrEqualOp {
  template <typename T>
  bool operator()(T a, T b) const {
    return a >= b;
  }
};
// Bool tensors hold 0 or 1 in each byte, so bitwise ops are the logical ones
// and keep the loops vectorisable.
struct AndOp {
  bool operator()(bool a, bool b) const { return a & b; }
};
struct OrOp {
  bool operator()(bool a, bool b) const { return a | b; }
};
struct XorOp {
  bool operator()(bool a, bool b) const { return a ^ b; }
};

// A broadcasting binary op with a bool output.
template <typename Op, typename Types>
class PredicateKernel final : public OpKernel {
 public:
  explicit PredicateKernel(std::string name) : name_(std::move(name)) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    if (a == nullptr || b == nullptr) return InvalidArgument(name_, ": expects 2 inputs");
    if (a->dtype() != b->dtype()) {
      return InvalidArgument(name_, ": inputs have different dtypes ", DTypeName(a->dtype()), " and ",
                             DTypeName(b->dtype()));
    }
    KILN_ASSIGN_OR_RETURN(Dims out_dims, BroadcastDims(name_.c_str(), {&a->dims(), &b->dims()}));
    return DispatchDType(Types{}, a->dtype(), name_.c_str(), [&](auto tag) -> Status {
      using T = typename decltype(tag)::type;
      KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kBool, out_dims));
      BroadcastBinary(ctx.parallel(), a->data<T>(), a->dims(), b->data<T>(), b->dims(), out->data<bool>(), out_dims,
                      Op{});
      return Status::Ok();
    });
  }

 private:
  std::string name_;
};

template <typename Op, typename Types>
void RegisterPredicate(KernelRegistry& registry, const char* op_type, int since_version) {
  registry.Register(KernelDef{op_type, "", since_version, kNoMaxOpset,
                              [](const graph::Node& node) -> StatusOr<std::unique_ptr<OpKernel>> {
                                return std::unique_ptr<OpKernel>(new PredicateKernel<Op, Types>(node.op_type));
                              }});
}

class NotKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument("Not: missing input X");
    if (x->dtype() != DType::kBool) return Unsupported("Not: dtype ", DTypeName(x->dtype()), " is not supported");
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kBool, x->dims()));
    ApplyUnary(ctx.parallel(), x->data<bool>(), y->data<bool>(), x->num_elements(), [](bool v) { return !v; });
    return Status::Ok();
  }
};

// Elementwise float predicate with a bool output.
template <typename Pred>
Status ApplyFloatPredicate(KernelContext& ctx, const char* op, const Pred& pred) {
  const Tensor* x = ctx.input(0);
  if (x == nullptr) return InvalidArgument(op, ": missing input X");
  return DispatchDType(FloatTypes{}, x->dtype(), op, [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kBool, x->dims()));
    ApplyUnary(ctx.parallel(), x->data<T>(), y->data<bool>(), x->num_elements(), [&](T v) { return pred(v); });
    return Status::Ok();
  });
}

class IsNaNKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    return ApplyFloatPredicate(ctx, "IsNaN", [](auto v) { return v != v; });
  }
};

class IsInfKernel final : public OpKernel {
 public:
  IsInfKernel(bool detect_negative, bool detect_positive)
      : detect_negative_(detect_negative), detect_positive_(detect_positive) {}

  Status Compute(KernelContext& ctx) const override {
    const bool neg = detect_negative_;
    const bool pos = detect_positive_;
    return ApplyFloatPredicate(ctx, "IsInf", [neg, pos](auto v) {
      using T = decltype(v);
      constexpr T kInf = std::numeric_limits<T>::infinity();
      return (pos && v == kInf) || (neg && v == -kInf);
    });
  }

 private:
  bool detect_negative_;
  bool detect_positive_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateIsInf(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t neg, node.GetInt("detect_negative", 1));
  KILN_ASSIGN_OR_RETURN(int64_t pos, node.GetInt("detect_positive", 1));
  return std::unique_ptr<OpKernel>(new IsInfKernel(neg != 0, pos != 0));
}

}  // namespace

void RegisterCompareLogicOps(KernelRegistry& r) {
  RegisterPredicate<EqualOp, AllTypes>(r, "Equal", 7);
  RegisterPredicate<LessOp, NumericTypes>(r, "Less", 7);
  RegisterPredicate<LessOrEqualOp, NumericTypes>(r, "LessOrEqual", 12);
  RegisterPredicate<GreaterOp, NumericTypes>(r, "Greater", 7);
  RegisterPredicate<GreaterOrEqualOp, NumericTypes>(r, "GreaterOrEqual", 12);
  RegisterPredicate<AndOp, TypeList<bool>>(r, "And", 7);
  RegisterPredicate<OrOp, TypeList<bool>>(r, "Or", 7);
  RegisterPredicate<XorOp, TypeList<bool>>(r, "Xor", 7);
  r.Register(KernelDef{"Not", "", 1, kNoMaxOpset, MakeFactory<NotKernel>()});
  r.Register(KernelDef{"IsNaN", "", 9, kNoMaxOpset, MakeFactory<IsNaNKernel>()});
  r.Register(KernelDef{"IsInf", "", 10, kNoMaxOpset, CreateIsInf});
}

}  // namespace kiln::kernels
