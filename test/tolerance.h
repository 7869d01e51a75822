// How tests compare floats. Two scales are in use, both spelled out here so
// that a test names the one it means:
//  - IsClose: |got - want| <= atol + rtol * |want|, numpy.allclose's rule
//    and ONNX's backend tests' (kernels against literal values, JIT code
//    against a scalar reference, the CLI against numpy);
//  - IsCloseScaled: |got - want| <= tol * max(1, |want|), relative for
//    values above 1 and absolute below (one tier or thread count against
//    another, where values near zero come from cancellation).
// Both treat NaN as equal to NaN and an infinity as equal only to itself.
#pragma once

#include <vector>

#include "kiln/tensor.h"

namespace kiln::testing {

bool IsClose(double got, double want, double rtol, double atol);
bool IsCloseScaled(double got, double want, double tol);

// Whether the vectors have the same size and every element IsCloseScaled;
// for code that may not call gtest assertions (a watchdog thread) or counts
// mismatches itself.
bool AllCloseScaled(const std::vector<float>& got, const std::vector<float>& want, double tol);

// gtest checks: the sizes must match and every element be close; the first
// ten mismatching elements are reported with their index. The defaults of
// ExpectNear are ONNX's backend-test tolerances.
void ExpectNear(const std::vector<float>& got, const std::vector<float>& want, double rtol = 1e-3, double atol = 1e-6);
// Both tensors must be float32 of the same dims.
void ExpectNear(const Tensor& got, const Tensor& want, double rtol = 1e-3, double atol = 1e-6);
void ExpectNearScaled(const std::vector<float>& got, const std::vector<float>& want, double tol);

}  // namespace kiln::testing
