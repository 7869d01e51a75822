#include "kernels/families.h"

namespace kiln::kernels {

void RegisterReductionKernels(KernelRegistry& registry) {}

}  // namespace kiln::kernels
