// The LSTM nodes the JIT compiles into LSTM regions: the ONNX operator with
// constant weights and the cell ONNX defines by default, which the JIT runs
// as one input projection (a GEMM) and a recurrence whose step product and
// cell share registers (jit/lstm_codegen.h). Anything else an LSTM node can
// ask for stays with the interpreter's kernel.
#pragma once

#include <cstdint>
#include <optional>

#include "graph/graph.h"

namespace kiln::graph {

struct LstmPattern {
  ValueId x = kNoValue;          // [seq, batch, input]
  ValueId w = kNoValue;          // constant [dirs, 4 * hidden, input]
  ValueId r = kNoValue;          // constant [dirs, 4 * hidden, hidden]
  ValueId b = kNoValue;          // constant [dirs, 8 * hidden], optional
  ValueId initial_h = kNoValue;  // [dirs, batch, hidden], optional
  ValueId initial_c = kNoValue;  // [dirs, batch, hidden], optional
  ValueId y = kNoValue;          // [seq, dirs, batch, hidden], optional
  ValueId y_h = kNoValue;        // [dirs, batch, hidden], optional
  ValueId y_c = kNoValue;        // [dirs, batch, hidden], optional
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  int num_directions = 1;
  bool reverse = false;  // one direction, run from the last step
};

// `node` as an LSTM the JIT compiles, or nullopt: float32; W, R (and B)
// constants whose dims agree with hidden_size and X's static last dim;
// direction forward, reverse or bidirectional; layout 0; sigmoid, tanh,
// tanh (the default, in any letter case); no clip, no input_forget; no
// sequence_lens (a batch of ragged sequences is the interpreter's); no
// peephole weights, or constant all-zero ones. initial_h and initial_c may
// be anything of the right shape; any of the outputs may be absent.
std::optional<LstmPattern> AsLstm(const Graph& graph, const Node& node);

}  // namespace kiln::graph
