// OpEmitter's bit-exact mode (SessionOptions::jit_bitwise_equivalent): each
// elementwise op computed the way the interpreter's kernel computes it, so
// that compiled code and the interpreter give equal bits. Ops whose default
// emission already does (DefaultFormIsBitExact) keep it; for the others
// every step mirrors the kernel's expression (kernels/unary_ops.cc,
// binary_ops.cc): the same comparisons and operand order in selects
// (they decide what NaN and -0 become), the same association of products,
// the interpreter's own approximations (bit_exact_math.h), and libm's
// function where the interpreter calls libm. An op whose kernel cannot be
// reproduced exactly (a libm function LLVM has no intrinsic for, Pow
// through double precision) is refused, so the region stays interpreted.
#include <llvm/IR/Intrinsics.h>

#include "graph/fusible_ops.h"
#include "jit/bit_exact_math.h"
#include "jit/region_ops.h"

namespace kiln::jit::internal {

bool DefaultFormIsBitExact(graph::FusibleOp op) {
  switch (op) {
    // Correctly rounded IEEE operations, emitted as the kernels write them.
    case graph::FusibleOp::kNeg:
    case graph::FusibleOp::kAbs:
    case graph::FusibleOp::kSqrt:
    case graph::FusibleOp::kReciprocal:
    case graph::FusibleOp::kFloor:
    case graph::FusibleOp::kCeil:
    case graph::FusibleOp::kAdd:
    case graph::FusibleOp::kSub:
    case graph::FusibleOp::kMul:
    case graph::FusibleOp::kDiv:
    // Selects whose NaN rule is the kernels' ((a < b || a != a) ? a : b
    // folded from the left) and exact comparisons.
    case graph::FusibleOp::kMin:
    case graph::FusibleOp::kMax:
    case graph::FusibleOp::kClip:
    case graph::FusibleOp::kWhere:
    case graph::FusibleOp::kEqual:
    case graph::FusibleOp::kLess:
    case graph::FusibleOp::kGreater:
    case graph::FusibleOp::kIdentity: return true;
    default: return false;
  }
}

StatusOr<Operand> OpEmitter::EmitBitExact(const graph::Node& node, graph::FusibleOp op,
                                          const std::vector<std::optional<Operand>>& in) {
  auto f = [](llvm::Value* v) { return Operand{v, Kind::kFloat, std::nullopt}; };
  auto select = [&](llvm::Value* cond, llvm::Value* a, llvm::Value* b) { return b_.CreateSelect(cond, a, b); };
  llvm::Value* x = in[0]->v;
  // kernels' HardSigmoid and HardSwish clamp: v > 0 ? v : 0, then v < 1 ? v : 1.
  auto clamp01 = [&](llvm::Value* v) {
    v = select(b_.CreateFCmpOGT(v, FConst(0.0)), v, FConst(0.0));
    return select(b_.CreateFCmpOLT(v, FConst(1.0)), v, FConst(1.0));
  };

  switch (op) {
    case graph::FusibleOp::kExp: return f(EmitBitExactExp(b_, x));
    case graph::FusibleOp::kSigmoid: return f(EmitBitExactSigmoid(b_, x));
    case graph::FusibleOp::kTanh: return f(EmitBitExactTanh(b_, x));
    case graph::FusibleOp::kErf: return f(EmitBitExactErf(b_, x));
    // The interpreter calls libm's logf per element; llvm.log on a vector
    // becomes one call of the same logf per lane.
    case graph::FusibleOp::kLog: return f(Intr(llvm::Intrinsic::log, x));
    case graph::FusibleOp::kRelu: return f(select(b_.CreateFCmpOGT(x, FConst(0.0)), x, FConst(0.0)));
    case graph::FusibleOp::kLeakyRelu: {
      KILN_ASSIGN_OR_RETURN(float alpha, node.GetFloat("alpha", 0.01f));
      return f(select(b_.CreateFCmpOGE(x, FConst(0.0)), x, b_.CreateFMul(FConst(alpha), x)));
    }
    case graph::FusibleOp::kHardSigmoid: {
      KILN_ASSIGN_OR_RETURN(float alpha, node.GetFloat("alpha", 0.2f));
      KILN_ASSIGN_OR_RETURN(float beta, node.GetFloat("beta", 0.5f));
      return f(clamp01(b_.CreateFAdd(b_.CreateFMul(FConst(alpha), x), FConst(beta))));
    }
    case graph::FusibleOp::kHardSwish: {
      const float sixth = static_cast<float>(1.0 / 6.0);
      return f(b_.CreateFMul(x, clamp01(b_.CreateFAdd(b_.CreateFMul(x, FConst(sixth)), FConst(0.5)))));
    }
    case graph::FusibleOp::kGelu: {
      KILN_ASSIGN_OR_RETURN(std::string approximate, node.GetString("approximate", "none"));
      llvm::Value* half_x = b_.CreateFMul(FConst(0.5), x);
      if (approximate == "none") {
        const float inv_sqrt2 = 0.70710678118654752440f;
        llvm::Value* e = EmitBitExactErf(b_, b_.CreateFMul(x, FConst(inv_sqrt2)));
        return f(b_.CreateFMul(half_x, b_.CreateFAdd(FConst(1.0), e)));
      }
      if (approximate == "tanh") {
        const float sqrt_2_over_pi = static_cast<float>(0.79788456080286535588);
        const float cubic = static_cast<float>(0.044715);
        // 0.044715 * x * x * x associates from the left in the kernel.
        llvm::Value* x3 = b_.CreateFMul(b_.CreateFMul(b_.CreateFMul(FConst(cubic), x), x), x);
        llvm::Value* inner = b_.CreateFMul(FConst(sqrt_2_over_pi), b_.CreateFAdd(x, x3));
        return f(b_.CreateFMul(half_x, b_.CreateFAdd(FConst(1.0), EmitBitExactTanh(b_, inner))));
      }
      return Unsupported("jit: Gelu: approximate='", approximate, "'");
    }
    case graph::FusibleOp::kPow: {
      // The kernel squares (or copies) for these exponents and otherwise
      // calls pow in double precision; x^1 and x^2 are exact either way.
      if (in[1]->immediate && *in[1]->immediate == 1.0) return f(x);
      if (in[1]->immediate && *in[1]->immediate == 2.0) return f(b_.CreateFMul(x, x));
      return Unsupported("jit: Pow: bit-exact code only for constant exponents 1 and 2");
    }
    default: break;
  }
  return Unsupported("jit: ", node.op_type, " has no bit-exact compiled form (the interpreter's kernel calls libm)");
}

}  // namespace kiln::jit::internal
