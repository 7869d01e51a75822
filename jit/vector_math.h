// IR emitters for the transcendental functions the elementwise code
// generator needs. Each works on float or <N x float> values, uses only
// arithmetic, bit manipulation, selects and the llvm.fmuladd / rounding
// intrinsics, so the result stays vectorised: a call into libm would force
// LLVM to scalarise the whole loop body.
//
// Accuracy (checked by test/jit/vector_math_test.cc against std:: in double):
// a few float ulps (well under 1e-6 relative) over the range where the
// results are normal floats. Overflow gives +-inf, underflow gives 0 or a
// denormal, NaN in gives NaN out.
#pragma once

#include <llvm/IR/IRBuilder.h>

namespace kiln::jit {

// e^x.
llvm::Value* EmitExp(llvm::IRBuilderBase& b, llvm::Value* x);
// e^x - 1, accurate near 0.
llvm::Value* EmitExpm1(llvm::IRBuilderBase& b, llvm::Value* x);
// Natural logarithm; log(0) = -inf, log(x < 0) = NaN.
llvm::Value* EmitLog(llvm::IRBuilderBase& b, llvm::Value* x);
// log(1 + x), accurate near 0.
llvm::Value* EmitLog1p(llvm::IRBuilderBase& b, llvm::Value* x);
llvm::Value* EmitTanh(llvm::IRBuilderBase& b, llvm::Value* x);
llvm::Value* EmitSigmoid(llvm::IRBuilderBase& b, llvm::Value* x);
llvm::Value* EmitErf(llvm::IRBuilderBase& b, llvm::Value* x);
// x^y with C's pow rules for negative bases (integer exponents keep the
// sign, others give NaN), x^0 = 1 and 1^y = 1.
llvm::Value* EmitPow(llvm::IRBuilderBase& b, llvm::Value* x, llvm::Value* y);

}  // namespace kiln::jit
