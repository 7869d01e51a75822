// The reduction family: each file registers its own ops (with opset ranges
// and dtypes stated there); this is the one list of those files.
#include "kernels/families.h"
#include "kernels/reduction_common.h"

namespace kiln::kernels {

void RegisterReductionKernels(KernelRegistry& registry) {
  RegisterReduceOps(registry);     // reduce.cc: ReduceSum, ReduceMean, ... ReduceLogSumExp
}

}  // namespace kiln::kernels
