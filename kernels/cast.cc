// Cast and CastLike between every kiln dtype, with the value rules of
// ConvertValue (elementwise_common.h).
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>

#include "graph/onnx_dtype.h"
#include "kernels/elementwise_common.h"

namespace kiln::kernels {
namespace {

const char* OnnxTypeName(int64_t code) {
  switch (code) {
    case 4: return "uint16";
    case 8: return "string";
    case 10: return "float16";
    case 12: return "uint32";
    case 13: return "uint64";
    case 14: return "complex64";
    case 15: return "complex128";
    case 16: return "bfloat16";
    default: return "unknown";
  }
}

Status CastTensor(KernelContext& ctx, const char* op, const Tensor& x, DType to) {
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, to, x.dims()));
  if (x.dtype() == to) {
    if (x.byte_size() > 0 && y->raw_data() != x.raw_data()) std::memcpy(y->raw_data(), x.raw_data(), x.byte_size());
    return Status::Ok();
  }
  return DispatchDType(AllTypes{}, x.dtype(), op, [&](auto from_tag) -> Status {
    using TI = typename decltype(from_tag)::type;
    return DispatchDType(AllTypes{}, to, op, [&](auto to_tag) -> Status {
      using TO = typename decltype(to_tag)::type;
      ApplyUnary(ctx.parallel(), x.data<TI>(), y->data<TO>(), x.num_elements(),
                 [](TI v) { return ConvertValue<TO>(v); });
      return Status::Ok();
    });
  });
}

class CastKernel final : public OpKernel {
 public:
  explicit CastKernel(DType to) : to_(to) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument("Cast: missing input");
    return CastTensor(ctx, "Cast", *x, to_);
  }

 private:
  DType to_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateCast(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t to, node.GetInt("to", -1));
  if (node.FindAttribute("to") == nullptr) return InvalidModel("Cast: missing attribute 'to'");
  std::optional<DType> dtype = graph::DTypeFromOnnxCode(to);
  if (!dtype) return Unsupported("Cast: target type ", OnnxTypeName(to), " (", to, ") is not supported");
  return std::unique_ptr<OpKernel>(new CastKernel(*dtype));
}

class CastLikeKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* like = ctx.input(1);
    if (x == nullptr || like == nullptr) return InvalidArgument("CastLike: expects 2 inputs");
    return CastTensor(ctx, "CastLike", *x, like->dtype());
  }
};

}  // namespace

void RegisterCastOps(KernelRegistry& r) {
  // Cast-1 named the target type with a string; 6+ uses the ONNX type code.
  r.Register(KernelDef{"Cast", "", 6, kNoMaxOpset, CreateCast});
  r.Register(KernelDef{"CastLike", "", 15, kNoMaxOpset, MakeFactory<CastLikeKernel>()});
}

}  // namespace kiln::kernels
