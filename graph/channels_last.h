// Channels-last layout for convolutional sub-graphs.
//
// ONNX convolutions take and give NCHW tensors, but the fastest CPU
// convolutions (oneDNN's brgemm kernels on AVX-512) read and write NHWC:
// channels innermost, so that one vector holds neighbouring channels of one
// pixel. Run op by op, every Conv then pays a reorder of its input to NHWC
// and of its output back to NCHW, which on small CNNs costs as much as half
// of the convolutions themselves. This pass finds the connected sub-graphs
// ("islands") of 2-D convolutions and the ops that can run in either layout
// around them, rewrites each island to compute in NHWC, and transposes only
// at the island's edges:
//
//   X -> Transpose(0,2,3,1) -> [island, NHWC throughout] -> Transpose(0,3,1,2) -> Y
//
// Island members (every value they exchange is rank 4 with a known rank):
//   - Conv and kiln.FusedConv with a 4-D input, float32: they become
//     kiln.FusedConv with channels_last = 1 (X, the residual R and Y in
//     NHWC; W and B unchanged);
//   - MaxPool (no Indices output), AveragePool, GlobalAveragePool and
//     GlobalMaxPool on 4-D float32 input: they become the kiln-domain op of
//     the same name, which is the ONNX op on NHWC data;
//   - elementwise ops of graph/fusible_ops.h with a 4-D output. Their
//     operands that are neither scalars nor island values are brought into
//     the island's layout: a constant is permuted at load time (after
//     left-padding its shape to rank 4), a 4-D computed operand gets a
//     Transpose; a node with a computed operand of another rank stays out.
// Only islands holding at least one convolution are rewritten: elsewhere
// the transposes would buy nothing.
//
// The rewritten values keep their static shapes, permuted (symbolic dims
// included), so the partitioner and the JIT see the NHWC shapes. Values the
// rest of the graph (or the caller) reads keep their id, name and NCHW
// shape: a Transpose back produces them.
#pragma once

#include "graph/graph.h"
#include "kiln/status.h"

namespace kiln::graph {

// The attribute of kiln.FusedConv that says X, R and Y are NHWC.
inline constexpr const char* kChannelsLastAttr = "channels_last";

// Returns whether any island was rewritten.
StatusOr<bool> ConvertToChannelsLast(Graph& graph);

}  // namespace kiln::graph
