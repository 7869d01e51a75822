// C = A * B^T with B [n, k] read as it is stored, row-major: how ONNX keeps
// a recurrent op's W and R. Nothing is packed, reordered or generated, so it
// can serve a first run before the prepared GEMMs exist (kernels/
// recurrent.cc). It suits few rows of A, such as one recurrence step's batch:
// each B row is streamed once per four A rows and dotted with them, eight
// outputs at a time reduced together. It is slower than the prepared GEMMs
// and not meant for steady state.
#pragma once

#include <cstdint>

#include "kernels/kernel.h"

namespace kiln::kernels {

// C [m, n] (row stride ldc) = A [m, k] (row stride lda) * B^T, or C += that
// with `accumulate`, for B [n, k] (row stride ldb). Columns of C are split
// over `parallel` when the product is large enough to be worth it; each
// element's sum has one order whatever the thread count.
void StoredWeightGemm(const float* a, int64_t lda, int64_t m, const float* b, int64_t ldb, int64_t n, int64_t k,
                      float* c, int64_t ldc, bool accumulate, const ParallelRunner& parallel);

}  // namespace kiln::kernels
