// The recurrent kernel family (LSTM, GRU, RNN), registered in
// recurrent_family.cc.
#pragma once

#include <memory>

#include "graph/graph.h"
#include "kernels/kernel.h"
#include "kernels/recurrent_spec.h"

namespace kiln::kernels {

// kiln's own implementation of `cell` (recurrent.cc): every attribute
// combination ONNX defines.
StatusOr<std::unique_ptr<OpKernel>> CreateRecurrentKernel(const graph::Node& node, RecurrentCell cell);

}  // namespace kiln::kernels
