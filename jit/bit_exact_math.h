// The interpreter's float32 approximations (kernels/fast_math.h) emitted as
// LLVM IR operation for operation: the same constants, the same rounding
// steps, a fused multiply-add exactly where the interpreter calls std::fma
// and nowhere else. Code that uses them rounds as the interpreter does, bit
// for bit, which SessionOptions::jit_bitwise_equivalent promises; the
// faster approximations of vector_math.h do not.
//
// jit/ cannot include kernels/, so the formulas are restated here;
// test/jit/bit_exact_math_test.cc compares each with its kernels/ original
// over a sweep of float bit patterns and fails on any difference.
//
// Each takes and returns a float vector (or scalar).
#pragma once

#include <llvm/IR/IRBuilder.h>

namespace kiln::jit {

// kernels::FastExp.
llvm::Value* EmitBitExactExp(llvm::IRBuilderBase& b, llvm::Value* x);
// kernels::FastTanh.
llvm::Value* EmitBitExactTanh(llvm::IRBuilderBase& b, llvm::Value* x);
// kernels::FastSigmoid.
llvm::Value* EmitBitExactSigmoid(llvm::IRBuilderBase& b, llvm::Value* x);
// kernels::FastErf.
llvm::Value* EmitBitExactErf(llvm::IRBuilderBase& b, llvm::Value* x);

}  // namespace kiln::jit
