// Lower-priority shape-family ops: Trilu, NonZero, TopK, CumSum, OneHot,
// DepthToSpace, SpaceToDepth.
#include "kernels/tensor_ops_common.h"

namespace kiln::kernels {

void RegisterIndexingOps(KernelRegistry& r) { (void)r; }

}  // namespace kiln::kernels
