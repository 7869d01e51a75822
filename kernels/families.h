// Registration entry points of the kernel families; see registry.cc.
#pragma once

#include "kernels/kernel.h"

namespace kiln::kernels {

// Unary and binary elementwise math, comparisons, logic, Where, Clip, Cast.
void RegisterElementwiseKernels(KernelRegistry& registry);
// oneDNN-backed: Conv, ConvTranspose, MatMul, Gemm, BatchNormalization, pooling.
void RegisterDnnlKernels(KernelRegistry& registry);
// Reductions, ArgMax, Softmax, LogSoftmax, LayerNormalization, Resize, Pad.
void RegisterReductionKernels(KernelRegistry& registry);
// Shape and data movement: Reshape, Transpose, Concat, Slice, Gather, ...
void RegisterTensorKernels(KernelRegistry& registry);
// LSTM, GRU, RNN.
void RegisterRecurrentKernels(KernelRegistry& registry);
// Sequence and optional ops: SequenceEmpty, SequenceConstruct, SequenceInsert,
// SequenceAt, SequenceErase, SequenceLength, SplitToSequence,
// ConcatFromSequence, Optional, OptionalHasElement, OptionalGetElement.
void RegisterSequenceKernels(KernelRegistry& registry);

}  // namespace kiln::kernels
