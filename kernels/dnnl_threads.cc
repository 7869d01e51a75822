#include "kernels/dnnl_threads.h"

#include <algorithm>
#include <cstdint>

namespace kiln::kernels {

int DnnlThreadsFor(const DnnlWork& work, int run_threads) {
  // About ten microseconds of one core each: 256 KiB streamed through the
  // caches, or 2 MFLOP at the 100-200 GFLOP/s a core's vector units reach
  // on the small shapes this threshold decides about.
  constexpr size_t kMinParallelBytes = size_t{256} << 10;
  constexpr double kMinParallelFlops = 2e6;
  const bool small = work.bytes < kMinParallelBytes && work.flops < kMinParallelFlops;
  return small ? 1 : std::max(1, run_threads);
}

DnnlWork EstimatedConvWork(const Dims& x_nchw, const Dims& w_dims, const Dims& strides) {
  int64_t x = 1, w = 1, positions = 1, taps = 1;
  for (int64_t d : x_nchw) x *= d;
  for (int64_t d : w_dims) w *= d;
  for (size_t i = 2; i < x_nchw.size(); ++i) positions *= x_nchw[i];
  for (int64_t s : strides) positions /= std::max<int64_t>(1, s);
  // Each output element reads C/group channels times the kernel's taps.
  for (size_t i = 1; i < w_dims.size(); ++i) taps *= w_dims[i];
  const int64_t batch = x_nchw.empty() ? 0 : x_nchw[0];
  const int64_t filters = w_dims.empty() ? 0 : w_dims[0];
  const int64_t y = batch * filters * positions;
  return DnnlWork{static_cast<size_t>(x + w + y) * sizeof(float),
                  2.0 * static_cast<double>(y) * static_cast<double>(taps)};
}

}  // namespace kiln::kernels
