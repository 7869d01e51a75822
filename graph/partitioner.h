// Splits a graph into regions the JIT can compile as one function:
// - elementwise chains and trees: ops applied element by element (with
//   numpy broadcasting) whose outputs all have the same static shape, fused
//   so that each input is read once and each output written once, with no
//   intermediate buffers;
// - row reductions: reductions over a contiguous suffix of axes (Softmax,
//   LayerNormalization, ReduceSum/Mean/Max, GlobalAveragePool) together with
//   the elementwise ops that feed them and that consume their results, each
//   value being either row-shaped or one value per row.
#pragma once

#include <optional>
#include <vector>

#include "graph/graph.h"
#include "graph/region.h"
#include "kiln/status.h"

namespace kiln::graph {

struct PartitionOptions {
  // Regions with fewer nodes stay interpreted: one elementwise op is already
  // a single vectorised pass in the interpreter, so compiling it buys little.
  int min_region_nodes = 2;
  // Make a kGemm region of each matrix product with a constant weight
  // (graph/gemm_pattern.h); exempt from min_region_nodes.
  bool gemm_regions = true;
  // Make a kDepthwiseConv region of each depthwise convolution the JIT
  // compiles (graph/depthwise_pattern.h); exempt from min_region_nodes.
  bool depthwise_regions = true;
  // Make a kAttention region of each attention chain the JIT compiles
  // (graph/attention_pattern.h); exempt from min_region_nodes.
  bool attention_regions = true;
  // Make a kLstm region of each LSTM node the JIT compiles
  // (graph/lstm_pattern.h); exempt from min_region_nodes.
  bool lstm_regions = true;
};

// True for ops the elementwise region compiler handles (op type and the
// attributes that change its meaning, e.g. Gelu's approximation).
bool IsFusibleElementwise(const Node& node);

// What a reduction node of a kRowReduction region computes on each row.
enum class RowOp {
  kSum,         // ReduceSum
  kMean,        // ReduceMean, GlobalAveragePool
  kMax,         // ReduceMax
  kSoftmax,     // Softmax
  kLogSoftmax,  // LogSoftmax
  kLayerNorm,   // LayerNormalization (input 1 Scale, optional input 2 B)
};

struct RowReduction {
  RowOp op = RowOp::kSum;
  // The first reduced axis of the data input (input 0, of rank `rank`): the
  // row is every axis from it on. kSum/kMean/kMax give one value per row
  // (keepdims shape); the others a row-shaped output.
  int axis = 0;
  int rank = 0;
  float epsilon = 0;  // kLayerNorm only
};

// The row reduction `node` performs, or nullopt when it is not one the
// row-reduction code generator handles: float32 data of known rank; Softmax
// and LogSoftmax along the last axis (opset 13+) or over the axes from
// `axis` on (before 13, whose 2-D coercion is exactly that); LayerNormalization
// with stash_type 1 whose Mean/InvStdDev outputs are unused; ReduceSum,
// ReduceMean, ReduceMax with keepdims=1 over a suffix of axes (attribute, or
// from opset 13/18 a constant input; none means all axes);
// GlobalAveragePool (rank >= 3, rows are the N*C planes).
std::optional<RowReduction> AsRowReduction(const Graph& graph, const Node& node);

// Regions in a deterministic order (by their first node's topological
// position), ids 0..n-1. Nodes not in any region run in the interpreter.
// A node joins the region of one of its producers when it is fusible, its
// output has a shape the region can hold (elementwise: the region's static
// shape and dtype; row reduction: row-shaped or per-row, and its other
// inputs broadcast into the rows), and joining creates no cycle (no path
// leaves the region and comes back into the node). A row reduction joins an
// elementwise region whose shape is its input's, which then becomes a row
// reduction region.
StatusOr<std::vector<Region>> PartitionGraph(const Graph& graph, const PartitionOptions& options = {});

}  // namespace kiln::graph
