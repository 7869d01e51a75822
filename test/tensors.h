// Tensors for tests and benchmarks: from literal values, back to a vector,
// and filled with seeded pseudo-random floats.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::testing {

// The value of `s`; an error fails the test and aborts it, for builders
// whose later steps cannot go on without the value.
template <typename T>
T ValueOrAbort(StatusOr<T> s) {
  if (!s.ok()) {
    ADD_FAILURE() << s.status().ToString();
    std::abort();
  }
  return std::move(s).value();
}

// A tensor of `dims` holding `values` (row-major). A failed allocation or a
// value count that does not match the shape fails the test, and an empty
// tensor comes back instead of a crash.
template <typename T>
Tensor MakeTensor(const Dims& dims, const std::vector<T>& values) {
  StatusOr<Tensor> t = Tensor::Allocate(DTypeOf<T>(), dims);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  if (!t.ok()) return Tensor();
  EXPECT_EQ(static_cast<size_t>(t->num_elements()), values.size()) << "MakeTensor: value count != shape";
  if (static_cast<size_t>(t->num_elements()) != values.size()) return Tensor();
  T* out = t->template data<T>();
  for (size_t i = 0; i < values.size(); ++i) out[i] = values[i];
  return std::move(t).value();
}

// The elements of `t`, which must hold T.
template <typename T>
std::vector<T> ToVector(const Tensor& t) {
  const T* p = t.data<T>();
  return std::vector<T>(p, p + t.num_elements());
}

// Elements of a tensor of `dims` (test shapes: small, no overflow check).
int64_t ElementCount(const Dims& dims);

// `n` floats drawn uniformly from [lo, hi) by std::mt19937 seeded with
// `seed`: the same seed gives the same values on every run (with libstdc++),
// so a failure reproduces. Every test and benchmark draws its random data
// here.
std::vector<float> RandomFloats(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

// A float32 tensor of `dims` filled by RandomFloats(.., seed, lo, hi).
StatusOr<Tensor> RandomTensor(const Dims& dims, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

}  // namespace kiln::testing
