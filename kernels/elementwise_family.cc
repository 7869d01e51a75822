#include "kernels/families.h"

namespace kiln::kernels {

void RegisterElementwiseKernels(KernelRegistry& registry) {}

}  // namespace kiln::kernels
