// What an ONNX recurrent node (LSTM, GRU, RNN; opsets 7+) asks for, parsed
// and checked once when its kernel is created: the cell, the directions, the
// activation functions with their alpha/beta, clip, GRU's
// linear_before_reset, LSTM's input_forget and the opset-14 layout. Also
// the activation functions themselves, applied in place to a row of gate
// pre-activations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "kiln/status.h"

namespace kiln::kernels {

enum class RecurrentCell { kRnn, kGru, kLstm };

// The ONNX name of the op ("RNN", "GRU", "LSTM").
const char* RecurrentCellOp(RecurrentCell cell);
// Gates per direction: 1 (RNN), 3 (GRU: z, r, h), 4 (LSTM: i, o, f, c).
int RecurrentGateCount(RecurrentCell cell);
// Activation functions per direction: 1 (RNN), 2 (GRU), 3 (LSTM).
int RecurrentActivationCount(RecurrentCell cell);

// The activation functions the recurrent ops' `activations` attribute may
// name (ONNX lists them with their defaults in the LSTM spec).
struct RecurrentActivation {
  enum class Kind {
    kRelu,
    kTanh,
    kSigmoid,
    kAffine,
    kLeakyRelu,
    kThresholdedRelu,
    kScaledTanh,
    kHardSigmoid,
    kElu,
    kSoftsign,
    kSoftplus
  };
  Kind kind = Kind::kSigmoid;
  float alpha = 0.0f;
  float beta = 0.0f;

  // x[i] = f(x[i]) for i in [0, n).
  void Apply(float* x, int64_t n) const;
  bool operator==(const RecurrentActivation& other) const {
    return kind == other.kind && alpha == other.alpha && beta == other.beta;
  }
};

enum class RecurrentDirection { kForward, kReverse, kBidirectional };

struct RecurrentSpec {
  RecurrentCell cell = RecurrentCell::kLstm;
  RecurrentDirection direction = RecurrentDirection::kForward;
  // 0 when the attribute is absent: then R's last dim gives it.
  int64_t hidden_size = 0;
  // Per direction, RecurrentActivationCount(cell) functions each: forward's
  // first, then reverse's for a bidirectional node.
  std::vector<RecurrentActivation> activations;
  // Gate pre-activations are clipped to [-clip, clip]; 0 when the attribute
  // is absent (no clipping). A present clip must be positive.
  float clip = 0.0f;
  int64_t layout = 0;                // 0: [seq, batch, ...]; 1: [batch, seq, ...]
  bool linear_before_reset = false;  // GRU only
  bool input_forget = false;         // LSTM only

  int num_directions() const { return direction == RecurrentDirection::kBidirectional ? 2 : 1; }
  // Whether direction `d` (0 or 1) of this node runs backwards in time.
  bool reversed(int d) const { return direction == RecurrentDirection::kReverse || d == 1; }
  // Activation `i` (0: f, 1: g, 2: h) of direction `d`.
  const RecurrentActivation& activation(int d, int i) const {
    return activations[static_cast<size_t>(d * RecurrentActivationCount(cell) + i)];
  }
  // True when every activation is the op's default (Sigmoid/Tanh/Tanh for
  // LSTM, Sigmoid/Tanh for GRU, Tanh for RNN).
  bool default_activations() const;
};

// The sizes of one call, checked against every input by the kernel.
struct RecurrentProblem {
  int64_t seq = 0, batch = 0, input = 0, hidden = 0;
  int dirs = 1;
  int64_t gates = 1;  // per direction
};

// Parses and checks `node`'s attributes for `cell`: an unknown direction or
// activation, a wrong number of activations, a non-positive hidden_size or
// clip, a layout other than 0 or 1 give an InvalidModel error naming it.
StatusOr<RecurrentSpec> ParseRecurrentSpec(const graph::Node& node, RecurrentCell cell);

}  // namespace kiln::kernels
