#include "kernels/recurrent_cells.h"

#include <algorithm>

#include "kernels/fast_math.h"

namespace kiln::kernels {
namespace {

// Plain loops over contiguous rows, each simple enough to vectorise. They
// are marked `omp simd` because at -O2 GCC's cheap cost model keeps loops
// that would need a run-time aliasing check scalar; the rows a loop reads and
// writes never overlap, and each element's result is the same either way.
inline void AddInto(float* acc, const float* a, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) acc[i] += a[i];
}

inline void Clip(float* x, int64_t n, float clip) {
  if (clip <= 0.0f) return;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = std::min(clip, std::max(-clip, x[i]));
}

// LstmRow for the default activations (sigmoid, tanh, tanh) without clip
// or input_forget, in one pass: each element's gates stay in registers
// instead of going through memory once per activation. The operations and
// their order are LstmRow's, so the results are the same bits. `flatten`:
// GCC's -O2 inliner would keep FastTanh, called twice, out of line, and a
// call keeps the loop scalar.
[[gnu::flatten]] void DefaultLstmRow(const float* x, const float* gates, const float* peephole, int64_t n,
                                     float* c_state, float* h_state) {
  const float* pi = peephole;
  const float* po = peephole + n;
  const float* pf = peephole + 2 * n;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const float c = c_state[j];
    const float i_gate = FastSigmoid(gates[j] + (x[j] + pi[j] * c));
    const float f_gate = FastSigmoid(gates[2 * n + j] + (x[2 * n + j] + pf[j] * c));
    const float c_gate = FastTanh(gates[3 * n + j] + x[3 * n + j]);
    const float c_new = f_gate * c + i_gate * c_gate;
    const float o_gate = FastSigmoid((gates[n + j] + x[n + j]) + po[j] * c_new);
    c_state[j] = c_new;
    h_state[j] = o_gate * FastTanh(c_new);
  }
}

// GruLinearBeforeResetRow for the default activations (sigmoid, tanh)
// without clip, in one pass, with that function's operations in its order.
[[gnu::flatten]] void DefaultGruLinearBeforeResetRow(const float* x, const float* gates, const float* recurrent_h_bias,
                                                     int64_t n, float* h_state) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const float z = FastSigmoid(gates[j] + x[j]);
    const float r = FastSigmoid(gates[n + j] + x[n + j]);
    const float candidate = FastTanh(x[2 * n + j] + r * (gates[2 * n + j] + recurrent_h_bias[j]));
    h_state[j] = (1.0f - z) * candidate + z * h_state[j];
  }
}

}  // namespace

void LstmRow(const float* x, float* gates, const float* peephole, int64_t hidden, float clip, bool input_forget,
             const RecurrentActivation& f, const RecurrentActivation& g, const RecurrentActivation& h, float* c_state,
             float* h_state, float* scratch) {
  const int64_t n = hidden;
  using Kind = RecurrentActivation::Kind;
  if (clip <= 0.0f && !input_forget && f.kind == Kind::kSigmoid && g.kind == Kind::kTanh && h.kind == Kind::kTanh) {
    DefaultLstmRow(x, gates, peephole, n, c_state, h_state);
    return;
  }
  float* gi = gates;
  float* go = gates + n;
  float* gf = gates + 2 * n;
  float* gc = gates + 3 * n;
  const float* pi = peephole;
  const float* po = peephole + n;
  const float* pf = peephole + 2 * n;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    gi[j] += x[j] + pi[j] * c_state[j];
    gf[j] += x[2 * n + j] + pf[j] * c_state[j];
    gc[j] += x[3 * n + j];
    go[j] += x[n + j];
  }
  Clip(gi, n, clip);
  f.Apply(gi, n);
  if (input_forget) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) gf[j] = 1.0f - gi[j];
  } else {
    Clip(gf, n, clip);
    f.Apply(gf, n);
  }
  Clip(gc, n, clip);
  g.Apply(gc, n);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) c_state[j] = gf[j] * c_state[j] + gi[j] * gc[j];
// The output gate's peephole looks at the new cell state.
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) go[j] += po[j] * c_state[j];
  Clip(go, n, clip);
  f.Apply(go, n);
  std::copy_n(c_state, n, scratch);
  h.Apply(scratch, n);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) h_state[j] = go[j] * scratch[j];
}

void GruGatesRow(const float* x, float* gates, int64_t hidden, float clip, const RecurrentActivation& f,
                 const float* h_state, float* reset_h) {
  const int64_t n = hidden;
  AddInto(gates, x, 2 * n);
  Clip(gates, 2 * n, clip);
  f.Apply(gates, 2 * n);
  const float* r = gates + n;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) reset_h[j] = r[j] * h_state[j];
}

void GruUpdateRow(const float* x_h, const float* z, float* candidate, int64_t hidden, float clip,
                  const RecurrentActivation& g, float* h_state) {
  const int64_t n = hidden;
  AddInto(candidate, x_h, n);
  Clip(candidate, n, clip);
  g.Apply(candidate, n);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) h_state[j] = (1.0f - z[j]) * candidate[j] + z[j] * h_state[j];
}

void GruLinearBeforeResetRow(const float* x, float* gates, const float* recurrent_h_bias, int64_t hidden, float clip,
                             const RecurrentActivation& f, const RecurrentActivation& g, float* h_state) {
  const int64_t n = hidden;
  using Kind = RecurrentActivation::Kind;
  if (clip <= 0.0f && f.kind == Kind::kSigmoid && g.kind == Kind::kTanh) {
    DefaultGruLinearBeforeResetRow(x, gates, recurrent_h_bias, n, h_state);
    return;
  }
  AddInto(gates, x, 2 * n);
  Clip(gates, 2 * n, clip);
  f.Apply(gates, 2 * n);
  const float* z = gates;
  const float* r = gates + n;
  float* candidate = gates + 2 * n;
  const float* x_h = x + 2 * n;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) candidate[j] = x_h[j] + r[j] * (candidate[j] + recurrent_h_bias[j]);
  Clip(candidate, n, clip);
  g.Apply(candidate, n);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) h_state[j] = (1.0f - z[j]) * candidate[j] + z[j] * h_state[j];
}

void RnnRow(const float* x, float* gates, int64_t hidden, float clip, const RecurrentActivation& f, float* h_state) {
  AddInto(gates, x, hidden);
  Clip(gates, hidden, clip);
  f.Apply(gates, hidden);
  std::copy_n(gates, hidden, h_state);
}

}  // namespace kiln::kernels
