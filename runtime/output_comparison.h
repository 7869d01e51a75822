// How shadow verification compares a region's compiled outputs with the
// interpreter's: a tolerance derived from what the region computes, and the
// largest difference found. The tolerance is there to let rounding through,
// never wrong code: it sits an order of magnitude above the differences the
// tier tests see (test/runtime: 1e-5 elementwise, 1e-6 sqrt(K) for GEMMs),
// so that a real miscompile (a wrong op, index or constant, which is wrong by
// O(1)) fails and rounding never unpublishes good code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "graph/graph.h"
#include "graph/region.h"
#include "kiln/tensor.h"
#include "runtime/shape_signature.h"

namespace kiln::runtime {

// Floats of one output element may differ by tolerance * max(1, |interpreted|):
// relative above 1, absolute below, where values come from cancellation.
//  - elementwise arithmetic: the tiers round in a different order and the JIT
//    may contract a * b + c into one FMA: a few ulp per op;
//  - transcendental functions (exp, log, tanh, erf, pow, sqrt, ...): each tier
//    has its own polynomial or uses libm, a few ulp apart;
//  - accumulation (row reductions over the row, GEMM over K, depthwise over
//    the taps): the order of the sum differs, growing like sqrt(length).
// Non-float outputs (comparison masks) must be equal.
double VerificationTolerance(const graph::Graph& graph, const graph::Region& region, const ShapeSignature& signature);

// The number of terms one output element sums (1 when it sums none), for
// the tolerance: row length, K, or filter taps.
int64_t AccumulationLength(const graph::Graph& graph, const graph::Region& region, const ShapeSignature& signature);

struct OutputComparison {
  bool equal = true;  // every output within tolerance, of the same dims
  // Where the worst element is (largest difference relative to
  // max(1, |interpreted|)) and its two values; for the log.
  size_t output = 0;
  int64_t element = 0;
  double compiled = 0;
  double interpreted = 0;
  double largest_difference = 0;  // |compiled - interpreted| there (inf for NaN against a number)
  std::string problem;            // set when the outputs differ in dims or dtype
  // "largest difference 2.5 at output 0 element 17 (compiled 1.5,
  // interpreted -1, tolerance 0.0001)", or the dims problem.
  std::string ToString(double tolerance) const;
};

// The tolerance that asks for equal bits (SessionOptions::
// jit_bitwise_equivalent): -0 against +0 or two different NaNs differ.
inline constexpr double kBitwise = -1.0;

// Compares one region output; `into` accumulates over the outputs.
void CompareOutput(size_t output, const Tensor& compiled, const Tensor& interpreted, double tolerance,
                   OutputComparison& into);

}  // namespace kiln::runtime
