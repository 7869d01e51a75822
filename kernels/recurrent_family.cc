// The recurrent family: LSTM, GRU and RNN. Opset 7 dropped opset 1's
// output_sequence attribute; 14 added `layout`; 22 only widened the types.
#include "kernels/families.h"
#include "kernels/recurrent_kernels.h"

namespace kiln::kernels {
namespace {

template <RecurrentCell kCell>
StatusOr<std::unique_ptr<OpKernel>> Create(const graph::Node& node) {
  return CreateRecurrentKernel(node, kCell);
}

}  // namespace

void RegisterRecurrentKernels(KernelRegistry& registry) {
  registry.Register({"LSTM", "", 7, 22, Create<RecurrentCell::kLstm>});
  registry.Register({"GRU", "", 7, 22, Create<RecurrentCell::kGru>});
  registry.Register({"RNN", "", 7, 22, Create<RecurrentCell::kRnn>});
}

}  // namespace kiln::kernels
