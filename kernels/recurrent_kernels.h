// The recurrent kernel family (LSTM, GRU, RNN), registered in
// recurrent_family.cc.
#pragma once

#include <memory>

#include "graph/graph.h"
#include "kernels/kernel.h"
#include "kernels/recurrent_spec.h"

namespace kiln::kernels {

// The kernel of `cell` (recurrent.cc): oneDNN's primitive for the calls it
// can run when `use_onednn` (recurrent_dnnl.h), kiln's own implementation
// for every other attribute combination ONNX defines. Tests turn oneDNN
// off to compare the two.
StatusOr<std::unique_ptr<OpKernel>> CreateRecurrentKernel(const graph::Node& node, RecurrentCell cell,
                                                          bool use_onednn = true);

}  // namespace kiln::kernels
