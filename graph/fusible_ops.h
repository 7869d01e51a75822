// The elementwise ops a JIT region can hold: the one list the partitioner
// groups by and the code generator emits from (jit/region_ops.cc switches
// over FusibleOp, so an op added here without an emitter fails to compile
// under -Wswitch rather than at run time).
#pragma once

#include <string_view>

namespace kiln::graph {

enum class FusibleOp {
  kAbs,
  kAdd,
  kCeil,
  kClip,
  kDiv,
  kElu,
  kEqual,
  kErf,
  kExp,
  kFloor,
  kGelu,
  kGreater,
  kHardSigmoid,
  kHardSwish,
  kIdentity,
  kLeakyRelu,
  kLess,
  kLog,
  kMax,
  kMin,
  kMul,
  kNeg,
  kPow,
  kReciprocal,
  kRelu,
  kSigmoid,
  kSoftplus,
  kSqrt,
  kSub,
  kTanh,
  kWhere,
};

struct FusibleOpInfo {
  FusibleOp op;
  const char* name;  // the ONNX op type (default domain)
  int min_inputs;
  int max_inputs;  // kVariadic: any number from min_inputs on
  // Comparisons yield bool masks (consumed by Where inside the region);
  // every other op yields float32.
  bool yields_bool;
  // Whether bool operands are accepted (Where's condition and branches,
  // Equal, Identity); all other ops compute on float32 only.
  bool accepts_bool;
};

inline constexpr int kVariadic = -1;

// The table entry for an op type, or null when the op is not fusible.
// Opset-independent: what each op computes per element has not changed
// since opset 7 (IsFusibleElementwise checks the opset).
const FusibleOpInfo* FindFusibleOp(std::string_view op_type);

}  // namespace kiln::graph
