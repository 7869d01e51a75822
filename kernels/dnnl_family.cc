#include "kernels/families.h"

namespace kiln::kernels {

void RegisterDnnlKernels(KernelRegistry& registry) {}

}  // namespace kiln::kernels
