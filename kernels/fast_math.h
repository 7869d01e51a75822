// Branch-free float32 approximations of exp, tanh, sigmoid and erf, written so
// GCC vectorises loops that call them (std::exp and friends are opaque
// library calls that keep a loop scalar). Each stays within about 3 ulp
// (relative error < 1e-6) of the correctly rounded result over the whole
// float range; fast_math_test.cc checks this against double precision.
// NaN propagates; overflow gives inf and underflow gives 0 (or a denormal).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace kiln::kernels {

// e^x = 2^n * e^r with n = round(x / ln2) and |r| <= ln2 / 2. e^r comes from
// its Taylor polynomial of degree 7, whose truncation error (r^8/8! < 6e-9
// relative) is below float rounding; 2^n is built in the exponent bits, split
// into two factors so that n in [-150, 128] (denormal results up to overflow)
// never leaves the normal exponent range of either factor.
constexpr float kExpLog2e = 1.44269504088896341f;
// Adding then subtracting 1.5 * 2^23 rounds to the nearest integer.
constexpr float kExpRoundMagic = 12582912.0f;

// e^(x - n ln2), for n = round(x / ln2): the reduction r = x - n ln2 with ln2
// split in a high part with few significant bits (so n * kLn2Hi is exact)
// and the remainder (Cody and Waite's), then the degree-7 Taylor polynomial
// of e^r. FastExp and the recurrent gates' GateExp share it.
[[gnu::always_inline]] inline float ExpOfReduced(float x, float n) {
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  float r = std::fma(n, -kLn2Hi, x);
  r = std::fma(n, -kLn2Lo, r);
  float p = 1.0f / 5040.0f;
  p = std::fma(p, r, 1.0f / 720.0f);
  p = std::fma(p, r, 1.0f / 120.0f);
  p = std::fma(p, r, 1.0f / 24.0f);
  p = std::fma(p, r, 1.0f / 6.0f);
  p = std::fma(p, r, 0.5f);
  p = std::fma(p, r, 1.0f);
  return std::fma(p, r, 1.0f);
}

inline float FastExp(float x) {
  // Clamping also maps NaN to a finite value so the int conversion below is
  // defined; the NaN is restored at the end.
  float xc = x > -104.0f ? x : -104.0f;
  xc = xc < 89.0f ? xc : 89.0f;
  const float n = (xc * kExpLog2e + kExpRoundMagic) - kExpRoundMagic;
  const float p = ExpOfReduced(xc, n);
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t n1 = ni >> 1;
  const int32_t n2 = ni - n1;
  const float s1 = std::bit_cast<float>((n1 + 127) << 23);
  const float s2 = std::bit_cast<float>((n2 + 127) << 23);
  const float result = p * s1 * s2;
  return x == x ? result : x;
}

// tanh(x) by its odd Taylor series to x^11: truncation below 1e-8 relative
// for |x| < 0.25, where FastTanh and the recurrent gates' GateTanh use it.
[[gnu::always_inline]] inline float TanhSmallSeries(float x) {
  const float x2 = x * x;
  float s = -1382.0f / 155925.0f;
  s = std::fma(s, x2, 62.0f / 2835.0f);
  s = std::fma(s, x2, -17.0f / 315.0f);
  s = std::fma(s, x2, 2.0f / 15.0f);
  s = std::fma(s, x2, -1.0f / 3.0f);
  return std::fma(s * x2, x, x);
}

// tanh(x) = sign(x) * (1 - e) / (1 + e) with e = exp(-2|x|). Below |x| = 0.25
// the subtraction would lose relative precision, so the odd Taylor series
// (terms to x^11, truncation < 1e-8 relative there) is used instead. Above
// it e >= 0.5 means 1 - e is exact (Sterbenz), so exp's error is at most
// amplified 1.6x.
inline float FastTanh(float x) {
  const float ax = std::fabs(x);
  const float series = TanhSmallSeries(x);
  const float e = FastExp(-2.0f * ax);
  const float t = std::copysign((1.0f - e) / (1.0f + e), x);
  return ax < 0.25f ? series : t;
}

// 1 / (1 + e^-x), evaluated as e^x / (1 + e^x) for negative x so that large
// negative inputs keep full relative precision instead of cancelling to 0.
inline float FastSigmoid(float x) {
  const float e = FastExp(-std::fabs(x));
  const float s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : e * s;
}

// c0 + c1 u + ... + c5 u^5 in Horner's order, the order of jit/vector_math.cc's
// Polynomial, so that FastErf and the JIT's Erf round alike.
[[gnu::always_inline]] inline float HornerDegree5(float u, float c0, float c1, float c2, float c3, float c4, float c5) {
  float r = std::fma(c5, u, c4);
  r = std::fma(r, u, c3);
  r = std::fma(r, u, c2);
  r = std::fma(r, u, c1);
  return std::fma(r, u, c0);
}

// erf(x) = x * P(x^2) / Q(x^2) with P and Q of degree 5: a rational
// approximation of erf(x)/x on [0, 3.92], fitted offline in 40-digit
// arithmetic (linearised least squares on relative error, reweighted towards
// minimax; max error 2e-8 before the coefficients are rounded to float).
// erf rounds to +-1 in float from 3.92 on; there the rational evaluates to
// within an ulp of 1 and, from about 3.95, above it, so clamping |x| to 4
// and the result to 1 gives exactly +-1 in the tails. Twelve multiply-adds
// and a division, against 26 multiply-adds and two branches' worth of
// selects for the series-plus-Chebyshev pair it replaced: Gelu is
// compute-bound on it. Absolute and relative error < 4e-7 (about 6 ulp of
// 1; float rounding in the two Horner chains dominates).
//
// The JIT (jit/vector_math.cc) evaluates the same operations on signed x,
// clamped to [-4, 4] (LLVM turns those clamps into max/min); every step is
// odd in x, so both tiers agree bit for bit. Here the clamp goes on |x|
// and the sign back at the end, the form GCC vectorises into the fewest
// instructions (36 in Gelu's loop against 46 for the signed clamps).
//
// Always inlined (HornerDegree5 too) and written without loops: GCC
// otherwise keeps it as an out-of-line scalar function, and the kernels'
// `omp simd` loops then call it once per element instead of vectorising it
// (measured: Gelu on 1M floats took 24 ms, 86% of the SiLU-LN-GELU model).
[[gnu::always_inline]] inline float FastErf(float x) {
  const float ax = std::fabs(x);
  const float axc = ax < 4.0f ? ax : 4.0f;
  const float u = axc * axc;
  const float p = HornerDegree5(u, 1.1283791065216064f, 0.19038376212120056f, 0.05274537578225136f,
                                0.003764558583498001f, 0.0002848450094461441f, 2.050074726867024e-06f);
  const float q = HornerDegree5(u, 1.0f, 0.5020559430122375f, 0.11409942060709f, 0.014967095106840134f,
                                0.0011622535530477762f, 3.80896199203562e-05f);
  float y = axc * p / q;
  y = y < 1.0f ? y : 1.0f;
  const float result = std::copysign(y, x);
  // The clamp above maps NaN to 4 (and so to +-1): restore it.
  return x == x ? result : x;
}

}  // namespace kiln::kernels
