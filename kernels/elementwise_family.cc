// The elementwise family: each file registers its own ops (with opset
// ranges and dtypes stated there); this is the one list of those files.
#include "kernels/elementwise_common.h"
#include "kernels/families.h"

namespace kiln::kernels {

void RegisterElementwiseKernels(KernelRegistry& registry) {
  RegisterUnaryOps(registry);         // unary_ops.cc: math and activations
  RegisterBinaryOps(registry);        // binary_ops.cc: Add..Div, Mod, Pow, PRelu
  RegisterVariadicOps(registry);      // variadic_ops.cc: Sum, Mean, Min, Max
  RegisterCompareLogicOps(registry);  // compare_logic_ops.cc
  RegisterCastOps(registry);          // cast.cc: Cast, CastLike
  RegisterWhereOp(registry);          // where.cc
  RegisterClipOp(registry);           // clip.cc
}

}  // namespace kiln::kernels
