// Runs ONNX's own shape inference on a model about to be loaded, made safe
// for models nobody has checked.
//
// Why a wrapper: the inference in Debian's libonnx (1.12) trusts the model.
// Several of its per-op functions index dims or dereference types without
// checking, so a malformed model crashes the process instead of throwing;
// the model fuzzer found each case handled here. For each, the wrapper
// either patches the model for the duration of inference (and undoes the
// patch afterwards) or skips inference altogether, which only costs static
// shapes: the loader and the kernels reject the malformed node themselves,
// with a message that names it.
#pragma once

#include <onnx/onnx_pb.h>

namespace kiln::graph {

// Adds the inferred types of intermediate values to model.graph().value_info().
// Never throws and never fails: inference that throws or cannot run safely
// leaves the model as it was (logged at debug).
void RunOnnxShapeInference(onnx::ModelProto& model);

}  // namespace kiln::graph
