#include "test/tensors.h"

#include <algorithm>
#include <random>

namespace kiln::testing {

int64_t ElementCount(const Dims& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::vector<float> RandomFloats(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

StatusOr<Tensor> RandomTensor(const Dims& dims, uint32_t seed, float lo, float hi) {
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Allocate(DType::kFloat32, dims));
  const std::vector<float> values = RandomFloats(t.num_elements(), seed, lo, hi);
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

}  // namespace kiln::testing
