// Scaled dot-product attention as exporters write it, which the JIT compiles
// into one attention region:
//
//   Q [b, s, h, d] -Transpose-> [b, h, s, d] (-Mul scale)            \
//   K [b, s, h, d] -Transpose-> [b, h, d, s] (-Mul scale) -> MatMul -> (Div | Mul scale)*
//       -> (Add mask)? -> Softmax(last axis) -> MatMul(., V) (-Transpose-> [b, s, h, d])?
//   V [b, s, h, d] -Transpose-> [b, h, s, d]                           /
//
// The Transposes between heads are not copied: they become the strides the
// compiled code reads Q, K and V with and writes the output with, so the
// region's inputs are the values before them (the Reshape views of the
// projections) and its output the value after the last one. Scalar scales
// anywhere on the Q, K or scores path fold into one factor. The scores
// matrix is never materialised (jit/attention_codegen.h).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "graph/graph.h"

namespace kiln::graph {

// out[b, h, i, :] = sum_j softmax_j(scale * <Q[b, h, i, :], K[b, h, j, :]>
//                                   + mask[b, h, i, j]) * V[b, h, j, :]
// in logical [batch, heads, seq, head_dim] coordinates. Each operand is a
// rank-4 value whose axis `axes[l]` holds logical axis l (b, h, s, d); the
// head dim is always its last, contiguous axis.
struct AttentionPattern {
  std::vector<NodeId> nodes;  // every node of the chain, in no particular order
  ValueId q = kNoValue;
  ValueId k = kNoValue;
  ValueId v = kNoValue;
  ValueId mask = kNoValue;  // optional: added to the scaled scores, broadcasting into [b, h, sq, sk]
  ValueId output = kNoValue;
  std::array<int, 4> q_axes{0, 1, 2, 3};
  std::array<int, 4> k_axes{0, 1, 2, 3};
  std::array<int, 4> v_axes{0, 1, 2, 3};
  std::array<int, 4> out_axes{0, 1, 2, 3};
  float scale = 1.0f;
  int64_t head_dim = 0;
};

// The attention whose Softmax is `softmax`, or nullopt when the chain around
// it is not one the JIT compiles: float32 throughout; both MatMuls of rank-4
// operands with the same batch and head dims; Softmax over the last axis;
// scales that are scalar constants; a mask of rank <= 4 whose last dim is 1
// or the key length; a static head dim that is each operand's last axis;
// every intermediate value read only by the next node of the chain and not
// a graph output.
std::optional<AttentionPattern> AsAttention(const Graph& graph, const Node& softmax);

}  // namespace kiln::graph
