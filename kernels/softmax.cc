// Softmax, LogSoftmax and Hardmax.
//
// Before opset 13 the input is coerced to 2-D at `axis` (default 1) and the
// op normalises over everything from `axis` on; from 13 it normalises along
// the single `axis` (default -1). Both become [outer, n, inner] with the
// normalised elements strided by `inner`. The row maximum is subtracted before
// exponentiating, so large inputs neither overflow nor lose precision.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>

#include "kernels/fast_math.h"
#include "kernels/reduction_common.h"

namespace kiln::kernels {
namespace {

enum class SoftmaxKind { kSoftmax, kLogSoftmax, kHardmax };

const char* KindName(SoftmaxKind k) {
  switch (k) {
    case SoftmaxKind::kSoftmax: return "Softmax";
    case SoftmaxKind::kLogSoftmax: return "LogSoftmax";
    case SoftmaxKind::kHardmax: return "Hardmax";
  }
  return "Softmax";
}

template <typename T>
inline T Exp(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return FastExp(x);
  } else {
    return std::exp(x);
  }
}

// One contiguous row of n elements.
template <SoftmaxKind K, typename T>
void SoftmaxRow(const T* __restrict x, T* __restrict y, int64_t n) {
  const T max = ReduceRow<MaxReducer<T>>(x, n, T(0));
  if constexpr (K == SoftmaxKind::kHardmax) {
    std::fill(y, y + n, T(0));
    // The first maximum wins, as numpy's argmax.
    const int64_t index = std::find(x, x + n, max) - x;
    y[index < n ? index : 0] = T(1);
    return;
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = Exp(x[i] - max);
    const T sum = ReduceRow<PlainSumReducer<T>>(y, n, T(0));
    if constexpr (K == SoftmaxKind::kSoftmax) {
      const T scale = T(1) / sum;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) y[i] *= scale;
    } else {
      const T offset = max + std::log(sum);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] - offset;
    }
  }
}

// A block of `len` columns (stride `inner`) of an [n, inner] slice.
template <SoftmaxKind K, typename T>
void SoftmaxColumns(const T* __restrict x, T* __restrict y, int64_t n, int64_t inner, int64_t len, T* max, T* sum) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) max[i] = x[i];
  for (int64_t r = 1; r < n; ++r) {
    const T* row = x + r * inner;
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) max[i] = MaxOf(max[i], row[i]);
  }
  if constexpr (K == SoftmaxKind::kHardmax) {
    for (int64_t r = 0; r < n; ++r) {
      const T* row = x + r * inner;
      T* out = y + r * inner;
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) {
        // sum[i] marks a column whose maximum was already taken.
        if (r == 0) sum[i] = T(0);
        const bool hit = row[i] == max[i] && sum[i] == T(0);
        out[i] = hit ? T(1) : T(0);
        sum[i] = hit ? T(1) : sum[i];
      }
    }
    return;
  } else {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) sum[i] = T(0);
    for (int64_t r = 0; r < n; ++r) {
      const T* row = x + r * inner;
      T* out = y + r * inner;
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) {
        out[i] = Exp(row[i] - max[i]);
        sum[i] += out[i];
      }
    }
    if constexpr (K == SoftmaxKind::kSoftmax) {
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) sum[i] = T(1) / sum[i];
      for (int64_t r = 0; r < n; ++r) {
        T* out = y + r * inner;
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) out[i] *= sum[i];
      }
    } else {
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) sum[i] = max[i] + std::log(sum[i]);
      for (int64_t r = 0; r < n; ++r) {
        const T* row = x + r * inner;
        T* out = y + r * inner;
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) out[i] = row[i] - sum[i];
      }
    }
  }
}

template <SoftmaxKind K, typename T>
void SoftmaxTyped(const ParallelRunner& parallel, const T* x, T* y, const AxisView& v) {
  const int64_t n = v.axis;
  if (n == 0) return;
  if (v.inner == 1) {
    ParallelItems(parallel, v.outer, 3 * n, [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) SoftmaxRow<K>(x + o * n, y + o * n, n);
    });
    return;
  }
  constexpr int64_t kBlock = 256;
  const int64_t inner = v.inner;
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  ParallelItems(parallel, v.outer * blocks, 3 * n * std::min(inner, kBlock), [&](int64_t begin, int64_t end) {
    T max[kBlock];
    T sum[kBlock];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t o = task / blocks;
      const int64_t b0 = (task % blocks) * kBlock;
      const int64_t offset = o * n * inner + b0;
      SoftmaxColumns<K>(x + offset, y + offset, n, inner, std::min(kBlock, inner - b0), max, sum);
    }
  });
}

class SoftmaxKernel final : public OpKernel {
 public:
  SoftmaxKernel(SoftmaxKind kind, int64_t axis, bool coerce_2d) : kind_(kind), axis_(axis), coerce_2d_(coerce_2d) {}

  Status Compute(KernelContext& ctx) const override {
    const char* name = KindName(kind_);
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument(name, ": missing input");
    const int64_t rank = x->rank();
    AxisView view;
    if (coerce_2d_) {
      // Coercion to 2-D also accepts axis == rank (a [N, 1] matrix).
      if (axis_ < -rank || axis_ > rank) {
        return InvalidArgument(name, ": axis ", axis_, " is out of range for rank ", rank, " (valid: [", -rank, ", ",
                               rank, "])");
      }
      const int64_t axis = axis_ < 0 ? axis_ + rank : axis_;
      view = MakeAxisView(x->dims(), axis, rank);
    } else {
      KILN_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(name, axis_, rank));
      view = MakeAxisView(x->dims(), axis, axis + 1);
    }
    return DispatchDType(FloatTypes{}, x->dtype(), name, [&](auto tag) -> Status {
      using T = typename decltype(tag)::type;
      KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x->dtype(), x->dims()));
      const T* in = x->data<T>();
      T* out = y->data<T>();
      switch (kind_) {
        case SoftmaxKind::kSoftmax: SoftmaxTyped<SoftmaxKind::kSoftmax>(ctx.parallel(), in, out, view); break;
        case SoftmaxKind::kLogSoftmax: SoftmaxTyped<SoftmaxKind::kLogSoftmax>(ctx.parallel(), in, out, view); break;
        case SoftmaxKind::kHardmax: SoftmaxTyped<SoftmaxKind::kHardmax>(ctx.parallel(), in, out, view); break;
      }
      return Status::Ok();
    });
  }

 private:
  SoftmaxKind kind_;
  int64_t axis_;
  bool coerce_2d_;
};

KernelFactory SoftmaxFactory(SoftmaxKind kind, bool coerce_2d) {
  return [kind, coerce_2d](const graph::Node& node) -> StatusOr<std::unique_ptr<OpKernel>> {
    KILN_ASSIGN_OR_RETURN(int64_t axis, node.GetInt("axis", coerce_2d ? 1 : -1));
    return std::unique_ptr<OpKernel>(new SoftmaxKernel(kind, axis, coerce_2d));
  };
}

}  // namespace

void RegisterSoftmaxOps(KernelRegistry& r) {
  for (SoftmaxKind kind : {SoftmaxKind::kSoftmax, SoftmaxKind::kLogSoftmax, SoftmaxKind::kHardmax}) {
    r.Register(KernelDef{KindName(kind), "", 1, 12, SoftmaxFactory(kind, true)});
    r.Register(KernelDef{KindName(kind), "", 13, kNoMaxOpset, SoftmaxFactory(kind, false)});
  }
}

}  // namespace kiln::kernels
