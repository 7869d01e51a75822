// Sigmoid and tanh for the gates of the recurrent cells (recurrent_cells.cc),
// cheaper than fast_math.h's FastSigmoid and FastTanh. A gate's
// pre-activation is a sum of products of small weights, far from the ends
// of the float range, so the exponential here clamps its argument to
// [-87, 88], where e^x and its 2^n factor are normal floats: one exponent
// scale instead of FastExp's two, min/max instead of FastExp's NaN select
// (NaN still propagates: it passes the clamps and the polynomial), and
// sigmoid without FastSigmoid's sign select. The recurrent cells are
// compute-bound on these functions (five per hidden unit per step for
// LSTM), and the interpreter is their only tier, so nothing has to match
// their rounding.
//
// Accuracy (gate_math_test.cc checks it against double precision): GateExp
// within 2 ulp on [-87, 88]; GateSigmoid within 4 ulp on [-87, inf) and
// below 1e-37 absolute error everywhere (inputs below -88 give
// sigmoid(-88), about 6e-39); GateTanh within 4 ulp everywhere.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/fast_math.h"

namespace kiln::kernels {

// e^x for x in [-87, 88]; x outside is clamped to that range. The reduction
// (n = round(x / ln2), r = x - n ln2 in Cody and Waite's two parts) and the
// degree-7 polynomial of e^r are FastExp's.
[[gnu::always_inline]] inline float GateExp(float x) {
  // Written so that NaN compares false and passes through both clamps.
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // x * log2(e) + 1.5 * 2^23 rounds to an integer, which then sits in the
  // low mantissa bits: n comes out of the bits without a float-to-int
  // conversion (undefined for NaN in C++).
  const float shifted = std::fma(x, kExpLog2e, kExpRoundMagic);
  const float n = shifted - kExpRoundMagic;
  const float p = ExpOfReduced(x, n);
  // n in [-126, 127]: 2^n is a normal float. Unsigned arithmetic keeps a NaN
  // input's meaningless bits defined; p is NaN then anyway.
  const uint32_t biased = std::bit_cast<uint32_t>(shifted) - std::bit_cast<uint32_t>(kExpRoundMagic) + 127u;
  return p * std::bit_cast<float>(biased << 23);
}

// 1 / (1 + e^-x). For x below -88 the result is sigmoid(-88), about 6e-39.
[[gnu::always_inline]] inline float GateSigmoid(float x) { return 1.0f / (1.0f + GateExp(-x)); }

// tanh(x) = sign(x) * (1 - e) / (1 + e) with e = e^(-2|x|), and below
// |x| = 0.25, where 1 - e would cancel, the odd Taylor series.
[[gnu::always_inline]] inline float GateTanh(float x) {
  const float ax = std::fabs(x);
  const float series = TanhSmallSeries(x);
  const float e = GateExp(-2.0f * ax);
  const float t = std::copysign((1.0f - e) / (1.0f + e), x);
  return ax < 0.25f ? series : t;
}

}  // namespace kiln::kernels
