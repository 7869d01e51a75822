// How many threads a oneDNN primitive is built for and runs with. oneDNN's
// blocked implementations fix their thread count when the primitive is
// created (see DnnlCreationThreads), so the count is chosen from an
// estimate of the primitive's work before its descriptor exists, and
// ExecuteDnnl applies the same rule to what the descriptor then says.
#pragma once

#include <cstddef>

#include "kiln/tensor.h"

namespace kiln::kernels {

// What one run of a primitive does.
struct DnnlWork {
  size_t bytes = 0;  // source, weights and destination
  double flops = 0;  // a multiply-add counts two
};

// The threads a primitive doing `work` runs with in a run of `run_threads`:
// one for a small primitive, since an OpenMP fork/join costs a few
// microseconds when the cores are idle and whole scheduler time slices when
// another process holds one, far more than the work it splits. Small means
// little time on one core, for moving its bytes and for its arithmetic
// alike: a convolution over a small map with many channels touches little
// memory but computes for tens of microseconds, and is split.
int DnnlThreadsFor(const DnnlWork& work, int run_threads);

// A convolution's work from its NCHW input dims, its weight dims
// [M, C/group, k...] and strides, with Y's positions taken as X's divided
// by the strides (padding and dilation ignored: an estimate, available
// before the window geometry is resolved).
DnnlWork EstimatedConvWork(const Dims& x_nchw, const Dims& w_dims, const Dims& strides);

}  // namespace kiln::kernels
