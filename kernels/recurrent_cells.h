// One step of one batch row of the recurrent cells, after the GEMMs: the
// gate arithmetic of ONNX's LSTM, GRU and RNN equations. `x` is the row's
// input projection with its biases (X_t * W^T + Wb + Rb), `gates` the row's
// H_{t-1} * R^T; both hold the gates in ONNX's order (LSTM i, o, f, c; GRU
// z, r, h). `clip` <= 0 means no clipping. Each function updates the row's
// state in place; `gates` may be overwritten.
#pragma once

#include <cstdint>

#include "kernels/recurrent_spec.h"

namespace kiln::kernels {

// LSTM: `peephole` holds P_i, P_o, P_f (zeros when the node has none);
// `scratch` is `hidden` floats. With `input_forget`, f = 1 - i.
void LstmRow(const float* x, float* gates, const float* peephole, int64_t hidden, float clip, bool input_forget,
             const RecurrentActivation& f, const RecurrentActivation& g, const RecurrentActivation& h, float* c_state,
             float* h_state, float* scratch);

// GRU, first half (linear_before_reset = 0): `gates` holds the z and r
// columns only ([2 * hidden]); computes z (in place) and writes
// r . H_{t-1} to `reset_h` for the h gate's GEMM.
void GruGatesRow(const float* x, float* gates, int64_t hidden, float clip, const RecurrentActivation& f,
                 const float* h_state, float* reset_h);
// GRU, second half: `x_h` is the h gate's input projection, `z` the z gate
// from GruGatesRow, `candidate` (r . H_{t-1}) * R_h^T (overwritten).
void GruUpdateRow(const float* x_h, const float* z, float* candidate, int64_t hidden, float clip,
                  const RecurrentActivation& g, float* h_state);
// GRU with linear_before_reset = 1: `gates` holds all three columns and
// `recurrent_h_bias` is Rb_h, which the reset gate scales with R_h * H.
void GruLinearBeforeResetRow(const float* x, float* gates, const float* recurrent_h_bias, int64_t hidden, float clip,
                             const RecurrentActivation& f, const RecurrentActivation& g, float* h_state);

// RNN: H = f(x + gates).
void RnnRow(const float* x, float* gates, int64_t hidden, float clip, const RecurrentActivation& f, float* h_state);

}  // namespace kiln::kernels
