// The reduction family: each file registers its own ops (with opset ranges
// and dtypes stated there); this is the one list of those files.
#include "kernels/families.h"
#include "kernels/reduction_common.h"

namespace kiln::kernels {

void RegisterReductionKernels(KernelRegistry& registry) {
  RegisterReduceOps(registry);     // reduce.cc: ReduceSum, ReduceMean, ... ReduceLogSumExp
  RegisterArgMinMaxOps(registry);  // arg_minmax.cc: ArgMax, ArgMin
  RegisterSoftmaxOps(registry);    // softmax.cc: Softmax, LogSoftmax, Hardmax
  RegisterLayerNormOp(registry);   // layer_norm.cc: LayerNormalization
  RegisterPadOp(registry);         // pad.cc: Pad
  RegisterResizeOps(registry);     // resize.cc: Resize, Upsample
}

}  // namespace kiln::kernels
