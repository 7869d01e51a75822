#include "graph/fusible_ops.h"

#include <algorithm>
#include <iterator>

namespace kiln::graph {
namespace {

// Sorted by name for binary search.
constexpr FusibleOpInfo kFusibleOps[] = {
    {FusibleOp::kAbs, "Abs", 1, 1, false, false},
    {FusibleOp::kAdd, "Add", 2, 2, false, false},
    {FusibleOp::kCeil, "Ceil", 1, 1, false, false},
    {FusibleOp::kClip, "Clip", 1, 3, false, false},
    {FusibleOp::kDiv, "Div", 2, 2, false, false},
    {FusibleOp::kElu, "Elu", 1, 1, false, false},
    {FusibleOp::kEqual, "Equal", 2, 2, true, true},
    {FusibleOp::kErf, "Erf", 1, 1, false, false},
    {FusibleOp::kExp, "Exp", 1, 1, false, false},
    {FusibleOp::kFloor, "Floor", 1, 1, false, false},
    {FusibleOp::kGelu, "Gelu", 1, 1, false, false},
    {FusibleOp::kGreater, "Greater", 2, 2, true, false},
    {FusibleOp::kHardSigmoid, "HardSigmoid", 1, 1, false, false},
    {FusibleOp::kHardSwish, "HardSwish", 1, 1, false, false},
    {FusibleOp::kIdentity, "Identity", 1, 1, false, true},
    {FusibleOp::kLeakyRelu, "LeakyRelu", 1, 1, false, false},
    {FusibleOp::kLess, "Less", 2, 2, true, false},
    {FusibleOp::kLog, "Log", 1, 1, false, false},
    {FusibleOp::kMax, "Max", 1, kVariadic, false, false},
    {FusibleOp::kMin, "Min", 1, kVariadic, false, false},
    {FusibleOp::kMul, "Mul", 2, 2, false, false},
    {FusibleOp::kNeg, "Neg", 1, 1, false, false},
    {FusibleOp::kPow, "Pow", 2, 2, false, false},
    {FusibleOp::kReciprocal, "Reciprocal", 1, 1, false, false},
    {FusibleOp::kRelu, "Relu", 1, 1, false, false},
    {FusibleOp::kSigmoid, "Sigmoid", 1, 1, false, false},
    {FusibleOp::kSoftplus, "Softplus", 1, 1, false, false},
    {FusibleOp::kSqrt, "Sqrt", 1, 1, false, false},
    {FusibleOp::kSub, "Sub", 2, 2, false, false},
    {FusibleOp::kTanh, "Tanh", 1, 1, false, false},
    {FusibleOp::kWhere, "Where", 3, 3, false, true},
};

}  // namespace

const FusibleOpInfo* FindFusibleOp(std::string_view op_type) {
  auto it = std::lower_bound(
      std::begin(kFusibleOps), std::end(kFusibleOps), op_type,
      [](const FusibleOpInfo& info, std::string_view name) { return std::string_view(info.name) < name; });
  return it != std::end(kFusibleOps) && it->name == op_type ? &*it : nullptr;
}

}  // namespace kiln::graph
