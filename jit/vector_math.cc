#include "jit/vector_math.h"

#include <llvm/Analysis/ValueTracking.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/DerivedTypes.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Module.h>

#include <cmath>
#include <limits>
#include <vector>

namespace kiln::jit {
namespace {

// Small helpers that build splat constants of the operand's shape, so the
// same emitter serves scalars and vectors.
llvm::Value* F(llvm::Value* like, double v) { return llvm::ConstantFP::get(like->getType(), v); }

llvm::Type* IntTypeLike(llvm::Value* like) {
  llvm::Type* i32 = llvm::Type::getInt32Ty(like->getContext());
  if (auto* vt = llvm::dyn_cast<llvm::VectorType>(like->getType())) {
    return llvm::VectorType::get(i32, vt->getElementCount());
  }
  return i32;
}

llvm::Value* I(llvm::Value* like_int, int64_t v) { return llvm::ConstantInt::get(like_int->getType(), v, true); }

llvm::Value* FMulAdd(llvm::IRBuilderBase& b, llvm::Value* x, llvm::Value* y, llvm::Value* z) {
  return b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {x->getType()}, {x, y, z});
}

// Horner evaluation of sum(coeffs[k] * x^k).
llvm::Value* Polynomial(llvm::IRBuilderBase& b, llvm::Value* x, const std::vector<double>& coeffs) {
  llvm::Value* acc = F(x, coeffs.back());
  for (size_t k = coeffs.size() - 1; k-- > 0;) acc = FMulAdd(b, acc, x, F(x, coeffs[k]));
  return acc;
}

// select-based clamps keep NaN as NaN (llvm.minnum would drop it).
llvm::Value* ClampBelow(llvm::IRBuilderBase& b, llvm::Value* x, double lo) {
  return b.CreateSelect(b.CreateFCmpOLT(x, F(x, lo)), F(x, lo), x);
}
llvm::Value* ClampAbove(llvm::IRBuilderBase& b, llvm::Value* x, double hi) {
  return b.CreateSelect(b.CreateFCmpOGT(x, F(x, hi)), F(x, hi), x);
}

// True when LLVM can prove `x` is NaN or <= 0 (e.g. -|y|, as Sigmoid and
// Softplus pass to EmitExp), so that an upper clamp would never fire.
bool CannotBePositive(llvm::IRBuilderBase& b, llvm::Value* x) {
  llvm::BasicBlock* block = b.GetInsertBlock();
  if (block == nullptr || block->getModule() == nullptr) return false;
  return llvm::computeKnownFPClass(x, block->getModule()->getDataLayout()).cannotBeOrderedGreaterThanZero();
}

// Taylor coefficients of e^r: 1/k!.
std::vector<double> ExpCoefficients(int degree, int first) {
  std::vector<double> c;
  double factorial = 1;
  for (int k = 1; k <= first; ++k) factorial *= k;
  for (int k = first; k <= degree; ++k) {
    if (k > first) factorial *= k;
    c.push_back(1.0 / factorial);
  }
  return c;
}

constexpr double kLn2Hi = 0.693145751953125;         // few mantissa bits: n * kLn2Hi is exact
constexpr double kLn2Lo = 1.428606765330187045e-06;  // ln 2 - kLn2Hi
constexpr double kLog2E = 1.442695040888963407;

// 1.5 * 2^23 + 254 and 1.5 * 2^23 + 191: see EmitExp.
constexpr double kExpShifter = 12583166.0;
constexpr double kExpShifterNonPositive = 12583103.0;

// e^r ~= 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4) for
// |r| <= ln2 / 2. Fitted once offline in double precision with numpy:
// Lawson's iteratively reweighted least squares (which converges to the
// minimax fit; the error equioscillates) on 20000 Chebyshev nodes, minimising
// the maximum relative error with c0 = c1 = 1 held fixed (so e^0 = 1
// exactly, and 1.0 is a constant the loop holds anyway). Max relative error
// of the fit 3.8e-9 with the coefficients rounded to float, against 1.6e-7
// for the Taylor polynomial of the same degree; rounding in the evaluation
// dominates. (The degree-5 fit {1, 1, 0.4999923150, 0.1666711465,
// 0.04189015681, 0.008312520141}, 1.05e-7, saves one FMA but doubles the
// max error of Exp and Tanh over the test sweeps.)
std::vector<double> ExpMinimaxCoefficients() {
  return {1.0, 1.0, 0.4999999345, 0.1666652063, 0.04166838805, 0.008368716879, 0.001381459856};
}

// e^x; `non_positive` promises x <= 0 or NaN (see EmitExp).
llvm::Value* Exp(llvm::IRBuilderBase& b, llvm::Value* x, bool non_positive) {
  // e^x = 2^n * e^r with n = round(x / ln 2), |r| <= ln2 / 2. Clamping to
  // [-105, 89] keeps n in [-151, 128]: below -105 the result rounds to 0,
  // above 89 it overflows to inf through the scaling (the upper clamp is left
  // out when x is known not to be positive). The clamps are selects that let
  // NaN through; it stays NaN through the polynomial and the two
  // multiplications at the end, so no separate NaN select is needed.
  llvm::Value* xc = ClampBelow(b, x, -105.0);
  if (!non_positive) xc = ClampAbove(b, xc, 89.0);
  // t = x / ln 2 + shifter lies in [2^23, 2^24), where floats are integers,
  // so the addition rounds to nearest: t = shifter + n, exactly, with
  // k = n + 254 (two exponent biases; n + 191 for non-positive x, below) in
  // the low mantissa bits.
  llvm::Value* shifter = F(xc, non_positive ? kExpShifterNonPositive : kExpShifter);
  llvm::Value* t = FMulAdd(b, xc, F(xc, kLog2E), shifter);
  llvm::Value* nf = b.CreateFSub(t, shifter);
  llvm::Value* r = FMulAdd(b, nf, F(xc, -kLn2Hi), xc);
  r = FMulAdd(b, nf, F(xc, -kLn2Lo), r);
  llvm::Value* p = Polynomial(b, r, ExpMinimaxCoefficients());
  llvm::Value* bits = b.CreateBitCast(t, IntTypeLike(xc));
  if (non_positive) {
    // x <= 0 (Sigmoid's and Softplus's -|x|, Tanh's -2|x|): n is in
    // [-151, 0], so 2^(n + 64) is a normal float (biased exponent
    // k = n + 191), p * 2^(n + 64) is exact, and the multiplication by 2^-64
    // rounds once: the same result as the two factors below, in three
    // instructions instead of six.
    llvm::Value* scale = b.CreateBitCast(b.CreateShl(bits, I(bits, 23)), xc->getType());
    return b.CreateFMul(b.CreateFMul(p, scale), F(xc, 0x1p-64));
  }
  // 2^n as 2^floor(n/2) * 2^ceil(n/2), both normal for n in [-151, 128], so
  // p * first is exact and the second multiplication rounds once (to a
  // denormal, 0 or inf where the result is one). Their biased exponents are
  // floor(k/2) and ceil(k/2): shifted into the exponent field, the bits of t
  // above k fall off the top.
  llvm::Value* first = b.CreateShl(b.CreateLShr(bits, I(bits, 1)), I(bits, 23));
  llvm::Value* second = b.CreateSub(b.CreateShl(bits, I(bits, 23)), first);
  return b.CreateFMul(b.CreateFMul(p, b.CreateBitCast(first, xc->getType())), b.CreateBitCast(second, xc->getType()));
}

// e^x - 1; `non_positive` as for Exp.
llvm::Value* Expm1(llvm::IRBuilderBase& b, llvm::Value* x, bool non_positive) {
  // Near zero e^x - 1 cancels, so use the series without its constant term;
  // elsewhere |e^x - 1| >= 0.29 and the subtraction loses at most 2 bits.
  llvm::Value* ax = b.CreateIntrinsic(llvm::Intrinsic::fabs, {x->getType()}, {x});
  llvm::Value* small = b.CreateFCmpOLT(ax, F(x, 0.34657359));
  llvm::Value* series = b.CreateFMul(x, Polynomial(b, x, ExpCoefficients(8, 1)));
  llvm::Value* large = b.CreateFSub(Exp(b, x, non_positive), F(x, 1.0));
  return b.CreateSelect(small, series, large);
}

}  // namespace

llvm::Value* EmitExp(llvm::IRBuilderBase& b, llvm::Value* x) { return Exp(b, x, CannotBePositive(b, x)); }

llvm::Value* EmitExpm1(llvm::IRBuilderBase& b, llvm::Value* x) { return Expm1(b, x, CannotBePositive(b, x)); }

llvm::Value* EmitLog(llvm::IRBuilderBase& b, llvm::Value* x) {
  // x = m * 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s) with
  // s = (m - 1) / (m + 1), |s| <= 0.172, summed as an odd series to s^11.
  llvm::Type* ft = x->getType();
  llvm::Value* denormal = b.CreateFCmpOLT(x, F(x, std::numeric_limits<float>::min()));
  llvm::Value* xs = b.CreateSelect(denormal, b.CreateFMul(x, F(x, 8388608.0)), x);  // * 2^23
  llvm::Value* bits = b.CreateBitCast(xs, IntTypeLike(x));
  llvm::Value* e = b.CreateSub(b.CreateLShr(bits, I(bits, 23)), I(bits, 127));
  e = b.CreateSelect(denormal, b.CreateSub(e, I(e, 23)), e);
  llvm::Value* m = b.CreateBitCast(b.CreateOr(b.CreateAnd(bits, I(bits, 0x7fffff)), I(bits, 0x3f800000)), ft);
  llvm::Value* big = b.CreateFCmpOGT(m, F(x, 1.41421356237));
  m = b.CreateSelect(big, b.CreateFMul(m, F(x, 0.5)), m);
  e = b.CreateSelect(big, b.CreateAdd(e, I(e, 1)), e);
  llvm::Value* f = b.CreateFSub(m, F(x, 1.0));
  llvm::Value* s = b.CreateFDiv(f, b.CreateFAdd(f, F(x, 2.0)));
  llvm::Value* z = b.CreateFMul(s, s);
  std::vector<double> odd;  // 2 / (2k + 1) for k >= 1
  for (int k = 1; k <= 5; ++k) odd.push_back(2.0 / (2 * k + 1));
  llvm::Value* two_s = b.CreateFAdd(s, s);
  llvm::Value* tail = b.CreateFMul(b.CreateFMul(s, z), Polynomial(b, z, odd));
  llvm::Value* ef = b.CreateSIToFP(e, ft);
  llvm::Value* result = FMulAdd(b, ef, F(x, kLn2Hi), b.CreateFAdd(two_s, FMulAdd(b, ef, F(x, kLn2Lo), tail)));

  const double inf = std::numeric_limits<double>::infinity();
  result = b.CreateSelect(b.CreateFCmpOEQ(x, F(x, inf)), x, result);
  result = b.CreateSelect(b.CreateFCmpOEQ(x, F(x, 0.0)), F(x, -inf), result);
  // x < 0 and NaN both give NaN.
  result = b.CreateSelect(b.CreateFCmpULT(x, F(x, 0.0)), F(x, std::nan("")), result);
  return result;
}

llvm::Value* EmitLog1p(llvm::IRBuilderBase& b, llvm::Value* x) {
  // With u = fl(1 + x), log(u) * x / (u - 1) cancels the rounding of u
  // (Goldberg's trick); when u rounds to 1, log1p(x) = x to float precision.
  llvm::Value* u = b.CreateFAdd(x, F(x, 1.0));
  llvm::Value* um1 = b.CreateFSub(u, F(x, 1.0));
  llvm::Value* corrected = b.CreateFMul(EmitLog(b, u), b.CreateFDiv(x, um1));
  // u == inf: log(inf) * inf/inf would be NaN.
  corrected = b.CreateSelect(b.CreateFCmpOEQ(u, F(x, std::numeric_limits<double>::infinity())), u, corrected);
  return b.CreateSelect(b.CreateFCmpOEQ(um1, F(x, 0.0)), x, corrected);
}

llvm::Value* EmitTanh(llvm::IRBuilderBase& b, llvm::Value* x) {
  // tanh|x| = -m / (2 + m) with m = expm1(-2|x|) in (-1, 0]: no cancellation
  // for small |x|, and m -> -1 gives exactly 1 for large |x|.
  llvm::Value* ax = b.CreateIntrinsic(llvm::Intrinsic::fabs, {x->getType()}, {x});
  // -2|x| is <= 0 or NaN, which LLVM's known-FP-class analysis does not
  // infer through the multiplication, so say so.
  llvm::Value* m = Expm1(b, b.CreateFMul(ax, F(x, -2.0)), /*non_positive=*/true);
  llvm::Value* t = b.CreateFDiv(b.CreateFNeg(m), b.CreateFAdd(m, F(x, 2.0)));
  return b.CreateIntrinsic(llvm::Intrinsic::copysign, {x->getType()}, {t, x});
}

llvm::Value* EmitSigmoid(llvm::IRBuilderBase& b, llvm::Value* x) {
  // With e = e^-|x| in (0, 1]: 1 / (1 + e) for x >= 0 and e / (1 + e) for
  // x < 0, so neither side overflows and tiny results keep their precision.
  llvm::Value* e = EmitExp(b, b.CreateFNeg(b.CreateIntrinsic(llvm::Intrinsic::fabs, {x->getType()}, {x})));
  // The division may use a reciprocal estimate refined by a Newton step
  // (arcp, and ninf, which the backend also asks for: 1 + e lies in (1, 2]
  // or is NaN): within 2 ulp there, and the divider is the slowest unit on
  // this path.
  llvm::Value* s = b.CreateFDiv(F(x, 1.0), b.CreateFAdd(e, F(x, 1.0)));
  if (auto* div = llvm::dyn_cast<llvm::Instruction>(s)) {
    div->setHasAllowReciprocal(true);
    div->setHasNoInfs(true);
    div->setHasAllowContract(true);
  }
  return b.CreateSelect(b.CreateFCmpOLT(x, F(x, 0.0)), b.CreateFMul(e, s), s);
}

llvm::Value* EmitErf(llvm::IRBuilderBase& b, llvm::Value* x) {
  // erf(x) = x * P(x^2) / Q(x^2), x clamped to [-4, 4] and the result to
  // [-1, 1]: kernels/fast_math.h's FastErf on signed x (see there for the
  // fit, why the clamps give exactly +-1 in the tails, its error, and why
  // the two tiers agree bit for bit). LLVM lowers these select-based clamps
  // to single max/min instructions that keep NaN, which then propagates:
  // fewer instructions than an |x| form with a saturation select and a NaN
  // check.
  static const std::vector<double> kNumerator = {1.1283791065216064,   0.19038376212120056,   0.05274537578225136,
                                                 0.003764558583498001, 0.0002848450094461441, 2.050074726867024e-06};
  static const std::vector<double> kDenominator = {
      1.0, 0.5020559430122375, 0.11409942060709, 0.014967095106840134, 0.0011622535530477762, 3.80896199203562e-05};
  llvm::Value* xc = ClampAbove(b, ClampBelow(b, x, -4.0), 4.0);
  llvm::Value* u = b.CreateFMul(xc, xc);
  llvm::Value* y = b.CreateFDiv(b.CreateFMul(xc, Polynomial(b, u, kNumerator)), Polynomial(b, u, kDenominator));
  return ClampAbove(b, ClampBelow(b, y, -1.0), 1.0);
}

llvm::Value* EmitPow(llvm::IRBuilderBase& b, llvm::Value* x, llvm::Value* y) {
  llvm::Value* ax = b.CreateIntrinsic(llvm::Intrinsic::fabs, {x->getType()}, {x});
  llvm::Value* r = EmitExp(b, b.CreateFMul(y, EmitLog(b, ax)));
  llvm::Value* fy = b.CreateIntrinsic(llvm::Intrinsic::floor, {y->getType()}, {y});
  llvm::Value* is_int = b.CreateFCmpOEQ(fy, y);
  // Every float >= 2^24 is even, so testing half of y is exact.
  llvm::Value* half = b.CreateFMul(y, F(y, 0.5));
  llvm::Value* is_odd =
      b.CreateAnd(is_int, b.CreateFCmpONE(b.CreateIntrinsic(llvm::Intrinsic::floor, {y->getType()}, {half}), half));
  llvm::Value* negative = b.CreateFCmpOLT(x, F(x, 0.0));
  llvm::Value* signed_r = b.CreateSelect(is_odd, b.CreateFNeg(r), r);
  llvm::Value* result = b.CreateSelect(negative, b.CreateSelect(is_int, signed_r, F(x, std::nan(""))), r);
  result = b.CreateSelect(b.CreateFCmpOEQ(x, F(x, 1.0)), F(x, 1.0), result);
  return b.CreateSelect(b.CreateFCmpOEQ(y, F(y, 0.0)), F(y, 1.0), result);
}

}  // namespace kiln::jit
