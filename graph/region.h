// A region is a connected set of nodes that the JIT compiles into one
// function. The partitioner (partitioner.h) finds them; the runtime profiles
// and dispatches them; jit/ generates code for them.
#pragma once

#include <string>
#include <vector>

#include "graph/graph.h"

namespace kiln::graph {

enum class RegionKind {
  // Elementwise ops (with broadcasting) fused into one loop nest: every
  // output has the region's output shape; inputs broadcast into it.
  kElementwise,
  // Reductions over the same contiguous suffix of axes (Softmax,
  // LayerNormalization, ReduceSum/Mean/Max with keepdims, GlobalAveragePool)
  // with the elementwise ops feeding them and consuming their results. The
  // domain is the reductions' common input shape viewed as [rows, row_len],
  // the row being the axes from `Region::row_axis` on. Every value is either
  // row-shaped (the domain's shape) or per-row (the domain's leading dims
  // followed by 1s); outputs may be either.
  kRowReduction,
  // One matrix product with a constant weight (graph/gemm_pattern.h) and
  // its fused epilogue: compiled to a GEMM kernel for the host's vector ISA,
  // with the weight packed into the kernel's layout. The domain is the
  // output [..., N], viewed as [M, N].
  kGemm,
  // One channels-last depthwise convolution (graph/depthwise_pattern.h)
  // with its fused epilogue, compiled per input shape with the filter taps
  // baked into the code. The domain is the NHWC output, viewed as
  // [N * OH, OW * C].
  kDepthwiseConv,
  // Scaled dot-product attention (graph/attention_pattern.h): the head
  // transposes, both MatMuls, the scales, the mask add and the Softmax,
  // compiled with an online softmax over key blocks so the scores never go
  // to memory. The domain is the attention output.
  kAttention,
  // One LSTM node (graph/lstm_pattern.h): its input projection and its
  // recurrence compiled per (seq, batch), the cell applied in registers
  // after each step's product. The domain is the node; its outputs (Y, Y_h,
  // Y_c, whichever are used) have shapes of their own.
  kLstm,
};
const char* RegionKindName(RegionKind kind);

struct Region {
  int id = 0;
  RegionKind kind = RegionKind::kElementwise;
  std::vector<NodeId> nodes;     // in topological order
  std::vector<ValueId> inputs;   // values read from outside (graph inputs, constants, other nodes' outputs)
  std::vector<ValueId> outputs;  // values used outside the region or graph outputs
  int row_axis = -1;             // kRowReduction: the first reduced axis of the domain; -1 otherwise
  std::string reason;            // why these nodes were grouped (for `kiln info --regions`)
  // Empty at the top level; in a sub-graph, where the body sits
  // ("Loop 'l'/body", graph/body_partitioner.h).
  std::string path;
};

}  // namespace kiln::graph
