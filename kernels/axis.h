// Axis arguments as ONNX writes them: negative values count from the back.
// One definition shared by every kernel family, so the same mistake gets the
// same error whichever op makes it.
#pragma once

#include <cstdint>

#include "kiln/status.h"

namespace kiln::kernels {

// `axis` in [-rank, rank) mapped to [0, rank), or InvalidArgument naming
// `op` and the valid range.
inline StatusOr<int64_t> NormalizeAxis(const char* op, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) {
    return InvalidArgument(op, ": axis ", axis, " is out of range for rank ", rank, " (valid: [", -rank, ", ", rank - 1,
                           "])");
  }
  return axis < 0 ? axis + rank : axis;
}

}  // namespace kiln::kernels
