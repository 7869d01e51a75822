// ONNX multidirectional (numpy-style) broadcasting for the elementwise
// kernels: the output shape of a set of operands, and an indexer that walks
// the output in contiguous runs so inner loops see each operand either as a
// contiguous array (stride 1) or as a single repeated value (stride 0).
//
// Dims are collapsed first: size-1 output dims are dropped and neighbouring
// dims merged whenever every operand is broadcast along both or along
// neither. Same-shape operands become one flat run, a scalar operand a
// stride-0 run, and [N,C,H,W] + [C,1,1] becomes [N, C, H*W] with the bias
// constant along the H*W inner run; [N,C] + [C] becomes rows of C.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "kernels/elementwise_common.h"
#include "kernels/kernel.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::kernels {

// The broadcast of `shapes`: ranks are right-aligned, and each dim must be
// equal across shapes or 1. InvalidArgument naming `op` and the shapes when
// they are incompatible.
StatusOr<Dims> BroadcastDims(const char* op, std::initializer_list<const Dims*> shapes);
StatusOr<Dims> BroadcastDims(const char* op, const std::vector<const Dims*>& shapes);

class BroadcastIndexer {
 public:
  static constexpr int kMaxOperands = 3;
  using Offsets = std::array<int64_t, kMaxOperands>;

  // Each operand must be broadcastable to `out_dims` (BroadcastDims checked
  // it); at most kMaxOperands operands.
  BroadcastIndexer(const Dims& out_dims, std::initializer_list<const Dims*> operands);

  int64_t num_elements() const { return num_elements_; }
  // Length of the innermost collapsed dim: the longest run that is
  // contiguous in the output.
  int64_t run_length() const { return inner_; }
  // 1 when operand k advances with the output along a run, 0 when it repeats
  // one value along it.
  int64_t run_stride(int k) const { return inner_stride_[static_cast<size_t>(k)]; }

  // Calls fn(offsets, out_offset, count) for each maximal run of output
  // elements [out_offset, out_offset + count) within [begin, end); offsets[k]
  // is operand k's element offset at the start of the run.
  template <typename Fn>
  void ForRuns(int64_t begin, int64_t end, Fn&& fn) const;

 private:
  int num_operands_ = 0;
  int64_t num_elements_ = 0;
  int64_t inner_ = 1;
  Offsets inner_stride_{};
  // Collapsed dims outside the run, outermost first, with each operand's
  // element stride along them (0 where it is broadcast).
  std::vector<int64_t> outer_dims_;
  std::vector<Offsets> outer_strides_;
};

template <typename Fn>
void BroadcastIndexer::ForRuns(int64_t begin, int64_t end, Fn&& fn) const {
  if (begin >= end) return;
  const size_t rank = outer_dims_.size();
  int64_t row = begin / inner_;
  int64_t col = begin % inner_;
  // Odometer over the outer dims, started at `row`; its allocation happens
  // once per call, never per run.
  std::vector<int64_t> coord(rank, 0);
  Offsets base{};
  for (size_t d = rank; d-- > 0;) {
    coord[d] = row % outer_dims_[d];
    row /= outer_dims_[d];
    for (int k = 0; k < num_operands_; ++k) base[k] += coord[d] * outer_strides_[d][k];
  }
  int64_t out = begin;
  while (true) {
    const int64_t count = std::min(inner_ - col, end - out);
    Offsets offsets{};
    for (int k = 0; k < num_operands_; ++k) offsets[k] = base[k] + col * inner_stride_[k];
    fn(offsets, out, count);
    out += count;
    if (out >= end) break;
    col = 0;
    for (size_t d = rank; d-- > 0;) {
      for (int k = 0; k < num_operands_; ++k) base[k] += outer_strides_[d][k];
      if (++coord[d] < outer_dims_[d]) break;
      for (int k = 0; k < num_operands_; ++k) base[k] -= outer_strides_[d][k] * outer_dims_[d];
      coord[d] = 0;
    }
  }
}

// One run of a binary op: a and b advance by sa and sb (each 0 or 1). Each
// stride combination gets its own loop with compile-time strides so that all
// four vectorise (see ApplyUnary for the pragma).
template <typename TA, typename TB, typename TO, typename Op>
inline void BinaryRun(const TA* a, int64_t sa, const TB* b, int64_t sb, TO* out, int64_t n, const Op& op) {
  if (sa != 0 && sb != 0) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = op(a[i], b[i]);
  } else if (sa != 0) {
    const TB bv = *b;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = op(a[i], bv);
  } else if (sb != 0) {
    const TA av = *a;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = op(av, b[i]);
  } else {
    const TO v = op(*a, *b);
    for (int64_t i = 0; i < n; ++i) out[i] = v;
  }
}

// out = op(a, b) with a and b broadcast to out_dims (already checked with
// BroadcastDims). `out` may alias `a` or `b` only when that operand has
// out_dims itself (as in an accumulation), since each element is then read
// before it is written.
template <typename TA, typename TB, typename TO, typename Op>
void BroadcastBinary(const ParallelRunner& parallel, const TA* a, const Dims& a_dims, const TB* b, const Dims& b_dims,
                     TO* out, const Dims& out_dims, const Op& op) {
  const BroadcastIndexer indexer(out_dims, {&a_dims, &b_dims});
  const int64_t sa = indexer.run_stride(0);
  const int64_t sb = indexer.run_stride(1);
  ParallelElements(parallel, indexer.num_elements(), [&](int64_t begin, int64_t end) {
    indexer.ForRuns(begin, end, [&](const BroadcastIndexer::Offsets& off, int64_t o, int64_t count) {
      BinaryRun(a + off[0], sa, b + off[1], sb, out + o, count, op);
    });
  });
}

}  // namespace kiln::kernels
