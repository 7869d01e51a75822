#include "kernels/families.h"

namespace kiln::kernels {

void RegisterTensorKernels(KernelRegistry& registry) {}

}  // namespace kiln::kernels
