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
inline float FastExp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  // ln2 split in a high part with few significant bits (so n * kLn2Hi is
  // exact) and the remainder (Cody and Waite's reduction).
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  // Adding then subtracting 1.5 * 2^23 rounds to the nearest integer.
  constexpr float kRoundMagic = 12582912.0f;
  // Clamping also maps NaN to a finite value so the int conversion below is
  // defined; the NaN is restored at the end.
  float xc = x > -104.0f ? x : -104.0f;
  xc = xc < 89.0f ? xc : 89.0f;
  const float n = (xc * kLog2e + kRoundMagic) - kRoundMagic;
  float r = std::fma(n, -kLn2Hi, xc);
  r = std::fma(n, -kLn2Lo, r);
  float p = 1.0f / 5040.0f;
  p = std::fma(p, r, 1.0f / 720.0f);
  p = std::fma(p, r, 1.0f / 120.0f);
  p = std::fma(p, r, 1.0f / 24.0f);
  p = std::fma(p, r, 1.0f / 6.0f);
  p = std::fma(p, r, 0.5f);
  p = std::fma(p, r, 1.0f);
  p = std::fma(p, r, 1.0f);
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t n1 = ni >> 1;
  const int32_t n2 = ni - n1;
  const float s1 = std::bit_cast<float>((n1 + 127) << 23);
  const float s2 = std::bit_cast<float>((n2 + 127) << 23);
  const float result = p * s1 * s2;
  return x == x ? result : x;
}

// tanh(x) = sign(x) * (1 - e) / (1 + e) with e = exp(-2|x|). Below |x| = 0.25
// the subtraction would lose relative precision, so the odd Taylor series
// (terms to x^11, truncation < 1e-8 relative there) is used instead. Above
// it e >= 0.5 means 1 - e is exact (Sterbenz), so exp's error is at most
// amplified 1.6x.
inline float FastTanh(float x) {
  const float ax = std::fabs(x);
  const float x2 = x * x;
  float s = -1382.0f / 155925.0f;
  s = std::fma(s, x2, 62.0f / 2835.0f);
  s = std::fma(s, x2, -17.0f / 315.0f);
  s = std::fma(s, x2, 2.0f / 15.0f);
  s = std::fma(s, x2, -1.0f / 3.0f);
  const float series = std::fma(s * x2, x, x);
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

// erf(x): for |x| <= 1 the Maclaurin series 2/sqrt(pi) * sum (-1)^n
// x^(2n+1) / (n! (2n+1)) to n = 10 (truncation < 2e-9); for 1 < |x| < 3.92 a
// degree-14 polynomial in t = (|x| - 2.46) / 1.46 (a Chebyshev interpolant
// of erf on [1, 3.92], computed offline in double precision; max error 8e-8);
// beyond 3.92 erf rounds to +-1 in float. The JIT emits the same
// approximation (jit/vector_math.cc), so both tiers agree to rounding.
// Absolute error < 2e-7 (3 ulp of 1) everywhere, relative < 1e-6.
//
// Always inlined and written without loops: GCC otherwise keeps it as an
// out-of-line scalar function (it is large), and the kernels' `omp simd`
// loops then call it once per element instead of vectorising it (measured:
// Gelu on 1M floats took 24 ms, 86% of the SiLU-LN-GELU model).
[[gnu::always_inline]] inline float FastErf(float x) {
  const float ax = std::fabs(x);
  const float x2 = x * x;
  float s = 1.4807192815879218e-08f;
  s = std::fma(s, x2, -1.6365844691234924e-07f);
  s = std::fma(s, x2, 1.6462114365889246e-06f);
  s = std::fma(s, x2, -1.492565035840625e-05f);
  s = std::fma(s, x2, 0.00012055332981789664f);
  s = std::fma(s, x2, -0.0008548327023450852f);
  s = std::fma(s, x2, 0.005223977625442188f);
  s = std::fma(s, x2, -0.026866170645131252f);
  s = std::fma(s, x2, 0.11283791670955126f);
  s = std::fma(s, x2, -0.37612638903183754f);
  s = std::fma(s, x2, 1.1283791670955126f);
  const float series = s * x;

  constexpr float kMid[] = {
      9.994966464e-01f,  3.878101009e-03f,  -1.392897855e-02f, 3.060008645e-02f, -4.504737155e-02f,
      4.510588281e-02f,  -2.844687941e-02f, 6.499152849e-03f,  7.345193501e-03f, -9.037615042e-03f,
      3.340892319e-03f,  1.592594051e-03f,  -1.628860124e-03f, 1.139237199e-05f, 2.197394674e-04f,
  };
  const float axc = ax < 3.92f ? ax : 3.92f;
  const float t = (axc - 2.46f) * (1.0f / 1.46f);
  float m = kMid[14];
  m = std::fma(m, t, kMid[13]);
  m = std::fma(m, t, kMid[12]);
  m = std::fma(m, t, kMid[11]);
  m = std::fma(m, t, kMid[10]);
  m = std::fma(m, t, kMid[9]);
  m = std::fma(m, t, kMid[8]);
  m = std::fma(m, t, kMid[7]);
  m = std::fma(m, t, kMid[6]);
  m = std::fma(m, t, kMid[5]);
  m = std::fma(m, t, kMid[4]);
  m = std::fma(m, t, kMid[3]);
  m = std::fma(m, t, kMid[2]);
  m = std::fma(m, t, kMid[1]);
  m = std::fma(m, t, kMid[0]);
  m = ax >= 3.92f ? 1.0f : m;
  const float mid = std::copysign(m, x);
  const float result = ax <= 1.0f ? series : mid;
  return x == x ? result : x;
}

}  // namespace kiln::kernels
