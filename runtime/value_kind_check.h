// Run-time checks of values against the kind a graph declares for them
// (graph::ValueKind): what a sequence or optional input may receive.
#pragma once

#include "graph/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::runtime {

// Ok when `t` is something `v` may hold: a tensor for kTensor, a sequence
// for kSequence, either of those or None for the optional kinds, with
// v.dtype (when known) as the tensor's or the elements' dtype. Otherwise
// InvalidArgument naming `v`.
Status CheckValueOfKind(const graph::Value& v, const Tensor& t);

}  // namespace kiln::runtime
