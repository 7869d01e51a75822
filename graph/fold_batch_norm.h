// Batch-norm folding: merges an inference-mode BatchNormalization into the
// Conv that feeds it.
//
// Why: with its statistics fixed, BatchNormalization is a per-channel
// y = x * a + c, and a convolution is linear in its weights, so the pair is
// one Conv with rescaled weights and a new bias. That removes a full pass
// over the Conv's output per BN, and it leaves Conv -> activation behind,
// which epilogue fusion then turns into one FusedConv (hence this pass runs
// before it).
//
// Rewrites, when every guard below holds:
//   Conv(X, W[, B]) -> BatchNormalization(scale, bias, mean, var, epsilon)
//   => Conv(X, W', B') producing the BatchNormalization's output, with
//   a  = scale / sqrt(var + epsilon)            (per output channel m)
//   W' = W * a[m]                               (along W's axis 0)
//   B' = (B - mean) * a + bias                  (B = 0 when absent)
// computed in double and rounded once to float32. W' and B' are new
// constants: W and B may be initializers that other nodes also read.
// Guards: BatchNormalization of opset >= 7 (older ones have is_test and
// consumed_inputs semantics), training_mode absent or 0, spatial absent or
// 1 (opsets 7-8), only output Y present; the Conv output float32, used only
// by the BatchNormalization and not a graph output; W a float32 constant of
// rank >= 3; B, scale, bias, mean and var float32 constants of shape [M]
// (M = W's first dim); every a finite (otherwise the BatchNormalization
// stays and its kernel computes what ONNX says).
#pragma once

#include "graph/graph.h"
#include "kiln/status.h"

namespace kiln::graph {

// Returns whether anything was folded.
StatusOr<bool> FoldBatchNormIntoConv(Graph& graph);

}  // namespace kiln::graph
