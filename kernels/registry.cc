// The one list of kernel families. Each family registers its ops with their
// opset ranges; the order here does not matter because (op, domain, opset)
// ranges never overlap.
#include "kernels/families.h"
#include "kernels/kernel.h"

namespace kiln::kernels {

const KernelRegistry& DefaultKernelRegistry() {
  // Built once on first use and immutable afterwards; C++ guarantees the
  // initialisation is thread-safe.
  static const KernelRegistry* registry = [] {
    auto* r = new KernelRegistry();
    RegisterElementwiseKernels(*r);
    RegisterDnnlKernels(*r);
    RegisterReductionKernels(*r);
    RegisterTensorKernels(*r);
    RegisterRecurrentKernels(*r);
    RegisterSequenceKernels(*r);
    return r;
  }();
  return *registry;
}

}  // namespace kiln::kernels
