#include "kernels/recurrent_cells.h"

#include <algorithm>

#include "kernels/gate_math.h"

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

// The default-activation rows below run a row in blocks of kGateBlock
// hidden units, one stage at a time over the block (pre-activations, each
// activation, the state update), through small arrays that stay in L1. A
// single loop doing all of one unit's arithmetic has a dependency chain of
// several exponentials and divisions per vector, longer than the
// out-of-order window can overlap; a stage's loop body is short and its
// iterations independent, so consecutive vectors' work overlaps.
constexpr int64_t kGateBlock = 64;

// LstmRow for the default activations (sigmoid, tanh, tanh) without clip
// or input_forget. `flatten`: GCC's -O2 inliner would keep the activations
// out of line, and a call keeps a loop scalar.
[[gnu::flatten]] void DefaultLstmRow(const float* x, const float* gates, const float* peephole, int64_t n,
                                     float* c_state, float* h_state) {
  alignas(64) float i_gate[kGateBlock], f_gate[kGateBlock], c_gate[kGateBlock], o_gate[kGateBlock];
  for (int64_t j0 = 0; j0 < n; j0 += kGateBlock) {
    const int64_t m = std::min(kGateBlock, n - j0);
    const float* gi = gates + j0;
    const float* go = gates + n + j0;
    const float* gf = gates + 2 * n + j0;
    const float* gc = gates + 3 * n + j0;
    const float* xi = x + j0;
    const float* xo = x + n + j0;
    const float* xf = x + 2 * n + j0;
    const float* xc = x + 3 * n + j0;
    const float* pi = peephole + j0;
    const float* po = peephole + n + j0;
    const float* pf = peephole + 2 * n + j0;
    float* c_row = c_state + j0;
    float* h_row = h_state + j0;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) {
      const float c = c_row[j];
      i_gate[j] = gi[j] + (xi[j] + pi[j] * c);
      f_gate[j] = gf[j] + (xf[j] + pf[j] * c);
      c_gate[j] = gc[j] + xc[j];
    }
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) i_gate[j] = GateSigmoid(i_gate[j]);
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) f_gate[j] = GateSigmoid(f_gate[j]);
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) c_gate[j] = GateTanh(c_gate[j]);
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) {
      // The output gate's peephole looks at the new cell state.
      const float c_new = f_gate[j] * c_row[j] + i_gate[j] * c_gate[j];
      c_row[j] = c_new;
      o_gate[j] = (go[j] + xo[j]) + po[j] * c_new;
    }
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) o_gate[j] = GateSigmoid(o_gate[j]);
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) h_row[j] = o_gate[j] * GateTanh(c_row[j]);
  }
}

// GruLinearBeforeResetRow for the default activations (sigmoid, tanh)
// without clip, staged like DefaultLstmRow.
[[gnu::flatten]] void DefaultGruLinearBeforeResetRow(const float* x, const float* gates, const float* recurrent_h_bias,
                                                     int64_t n, float* h_state) {
  alignas(64) float z_gate[kGateBlock], r_gate[kGateBlock], candidate[kGateBlock];
  for (int64_t j0 = 0; j0 < n; j0 += kGateBlock) {
    const int64_t m = std::min(kGateBlock, n - j0);
    const float* gz = gates + j0;
    const float* gr = gates + n + j0;
    const float* gh = gates + 2 * n + j0;
    const float* xz = x + j0;
    const float* xr = x + n + j0;
    const float* xh = x + 2 * n + j0;
    const float* rb = recurrent_h_bias + j0;
    float* h_row = h_state + j0;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) {
      z_gate[j] = gz[j] + xz[j];
      r_gate[j] = gr[j] + xr[j];
    }
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) z_gate[j] = GateSigmoid(z_gate[j]);
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) r_gate[j] = GateSigmoid(r_gate[j]);
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) candidate[j] = GateTanh(xh[j] + r_gate[j] * (gh[j] + rb[j]));
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) h_row[j] = (1.0f - z_gate[j]) * candidate[j] + z_gate[j] * h_row[j];
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
