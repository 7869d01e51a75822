#include "jit/bit_exact_math.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/DerivedTypes.h>
#include <llvm/IR/Intrinsics.h>

namespace kiln::jit {
namespace {

// Constants are float literals in the interpreter: build them from floats,
// so that a double-only constant never slips in.
llvm::Value* F(llvm::Value* like, float v) { return llvm::ConstantFP::get(like->getType(), static_cast<double>(v)); }

llvm::Type* I32Like(llvm::Value* like) {
  llvm::Type* i32 = llvm::Type::getInt32Ty(like->getContext());
  if (auto* vt = llvm::dyn_cast<llvm::VectorType>(like->getType())) {
    return llvm::VectorType::get(i32, vt->getElementCount());
  }
  return i32;
}

// std::fma: always fused, unlike llvm.fmuladd.
llvm::Value* Fma(llvm::IRBuilderBase& b, llvm::Value* x, llvm::Value* y, llvm::Value* z) {
  return b.CreateIntrinsic(llvm::Intrinsic::fma, {x->getType()}, {x, y, z});
}

llvm::Value* Fabs(llvm::IRBuilderBase& b, llvm::Value* x) {
  return b.CreateIntrinsic(llvm::Intrinsic::fabs, {x->getType()}, {x});
}

llvm::Value* CopySign(llvm::IRBuilderBase& b, llvm::Value* magnitude, llvm::Value* sign) {
  return b.CreateIntrinsic(llvm::Intrinsic::copysign, {magnitude->getType()}, {magnitude, sign});
}

// `cond ? x : y` on an ordered comparison, as the interpreter writes its
// clamps (a NaN operand makes the comparison false).
llvm::Value* Pick(llvm::IRBuilderBase& b, llvm::Value* cond, llvm::Value* x, llvm::Value* y) {
  return b.CreateSelect(cond, x, y);
}

// HornerDegree5 of kernels/fast_math.h.
llvm::Value* HornerDegree5(llvm::IRBuilderBase& b, llvm::Value* u, const float (&c)[6]) {
  llvm::Value* r = Fma(b, F(u, c[5]), u, F(u, c[4]));
  for (int k = 3; k >= 0; --k) r = Fma(b, r, u, F(u, c[k]));
  return r;
}

// 2^n for an integer-valued float n in [-150, 128], as two factors whose
// exponents are in range (see FastExp).
llvm::Value* TwoToThe(llvm::IRBuilderBase& b, llvm::Value* n, llvm::Value*& s2) {
  llvm::Type* i32 = I32Like(n);
  llvm::Value* ni = b.CreateFPToSI(n, i32);
  llvm::Value* n1 = b.CreateAShr(ni, llvm::ConstantInt::get(i32, 1));
  llvm::Value* n2 = b.CreateSub(ni, n1);
  auto scale = [&](llvm::Value* e) {
    llvm::Value* bits = b.CreateShl(b.CreateAdd(e, llvm::ConstantInt::get(i32, 127)), llvm::ConstantInt::get(i32, 23));
    return b.CreateBitCast(bits, n->getType());
  };
  s2 = scale(n2);
  return scale(n1);
}

}  // namespace

llvm::Value* EmitBitExactExp(llvm::IRBuilderBase& b, llvm::Value* x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRoundMagic = 12582912.0f;
  llvm::Value* xc = Pick(b, b.CreateFCmpOGT(x, F(x, -104.0f)), x, F(x, -104.0f));
  xc = Pick(b, b.CreateFCmpOLT(xc, F(x, 89.0f)), xc, F(x, 89.0f));
  llvm::Value* n = b.CreateFSub(b.CreateFAdd(b.CreateFMul(xc, F(x, kLog2e)), F(x, kRoundMagic)), F(x, kRoundMagic));
  llvm::Value* r = Fma(b, n, F(x, -kLn2Hi), xc);
  r = Fma(b, n, F(x, -kLn2Lo), r);
  llvm::Value* p = F(x, 1.0f / 5040.0f);
  for (float c : {1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f}) p = Fma(b, p, r, F(x, c));
  llvm::Value* s2 = nullptr;
  llvm::Value* s1 = TwoToThe(b, n, s2);
  llvm::Value* result = b.CreateFMul(b.CreateFMul(p, s1), s2);
  return Pick(b, b.CreateFCmpOEQ(x, x), result, x);
}

llvm::Value* EmitBitExactTanh(llvm::IRBuilderBase& b, llvm::Value* x) {
  llvm::Value* ax = Fabs(b, x);
  llvm::Value* x2 = b.CreateFMul(x, x);
  llvm::Value* s = F(x, -1382.0f / 155925.0f);
  for (float c : {62.0f / 2835.0f, -17.0f / 315.0f, 2.0f / 15.0f, -1.0f / 3.0f}) s = Fma(b, s, x2, F(x, c));
  llvm::Value* series = Fma(b, b.CreateFMul(s, x2), x, x);
  llvm::Value* e = EmitBitExactExp(b, b.CreateFMul(F(x, -2.0f), ax));
  llvm::Value* t = CopySign(b, b.CreateFDiv(b.CreateFSub(F(x, 1.0f), e), b.CreateFAdd(F(x, 1.0f), e)), x);
  return Pick(b, b.CreateFCmpOLT(ax, F(x, 0.25f)), series, t);
}

llvm::Value* EmitBitExactSigmoid(llvm::IRBuilderBase& b, llvm::Value* x) {
  llvm::Value* e = EmitBitExactExp(b, b.CreateFNeg(Fabs(b, x)));
  llvm::Value* s = b.CreateFDiv(F(x, 1.0f), b.CreateFAdd(F(x, 1.0f), e));
  return Pick(b, b.CreateFCmpOGE(x, F(x, 0.0f)), s, b.CreateFMul(e, s));
}

llvm::Value* EmitBitExactErf(llvm::IRBuilderBase& b, llvm::Value* x) {
  static constexpr float kP[6] = {1.1283791065216064f,   0.19038376212120056f,   0.05274537578225136f,
                                  0.003764558583498001f, 0.0002848450094461441f, 2.050074726867024e-06f};
  static constexpr float kQ[6] = {1.0f,
                                  0.5020559430122375f,
                                  0.11409942060709f,
                                  0.014967095106840134f,
                                  0.0011622535530477762f,
                                  3.80896199203562e-05f};
  llvm::Value* ax = Fabs(b, x);
  llvm::Value* axc = Pick(b, b.CreateFCmpOLT(ax, F(x, 4.0f)), ax, F(x, 4.0f));
  llvm::Value* u = b.CreateFMul(axc, axc);
  llvm::Value* y = b.CreateFDiv(b.CreateFMul(axc, HornerDegree5(b, u, kP)), HornerDegree5(b, u, kQ));
  y = Pick(b, b.CreateFCmpOLT(y, F(x, 1.0f)), y, F(x, 1.0f));
  return Pick(b, b.CreateFCmpOEQ(x, x), CopySign(b, y, x), x);
}

}  // namespace kiln::jit
