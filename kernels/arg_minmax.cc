// ArgMax and ArgMin: the int64 index of the largest (smallest) element along
// one axis. Ties go to the first index, or the last with select_last_index
// (opset 12+). The tensor is viewed as [outer, n, inner]; with inner == 1
// each output scans a contiguous row, otherwise a block of `inner` running
// best values is updated row by row so the inner loop stays contiguous.
#include <algorithm>
#include <cstdint>
#include <memory>

#include "kernels/reduction_common.h"

namespace kiln::kernels {
namespace {

// Better(candidate, best): whether the candidate replaces the current best.
template <typename T, bool kMax, bool kLast>
inline bool Better(T v, T best) {
  if constexpr (kMax) {
    return kLast ? v >= best : v > best;
  } else {
    return kLast ? v <= best : v < best;
  }
}

template <typename T, bool kMax, bool kLast>
void ArgTyped(const ParallelRunner& parallel, const T* x, int64_t* y, const AxisView& v) {
  const int64_t n = v.axis;
  const int64_t inner = v.inner;
  if (inner == 1) {
    ParallelItems(parallel, v.outer, n, [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) {
        const T* row = x + o * n;
        T best = row[0];
        int64_t index = 0;
        for (int64_t i = 1; i < n; ++i) {
          if (Better<T, kMax, kLast>(row[i], best)) {
            best = row[i];
            index = i;
          }
        }
        y[o] = index;
      }
    });
    return;
  }
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  ParallelItems(parallel, v.outer * blocks, n * std::min(inner, kBlock), [&](int64_t begin, int64_t end) {
    T best[kBlock];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t o = task / blocks;
      const int64_t b0 = (task % blocks) * kBlock;
      const int64_t len = std::min(kBlock, inner - b0);
      const T* base = x + o * n * inner + b0;
      int64_t* index = y + o * inner + b0;
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) {
        best[i] = base[i];
        index[i] = 0;
      }
      for (int64_t r = 1; r < n; ++r) {
        const T* row = base + r * inner;
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) {
          const bool take = Better<T, kMax, kLast>(row[i], best[i]);
          best[i] = take ? row[i] : best[i];
          index[i] = take ? r : index[i];
        }
      }
    }
  });
}

class ArgKernel final : public OpKernel {
 public:
  ArgKernel(bool is_max, int64_t axis, bool keepdims, bool select_last)
      : is_max_(is_max), axis_(axis), keepdims_(keepdims), select_last_(select_last) {}

  Status Compute(KernelContext& ctx) const override {
    const char* name = is_max_ ? "ArgMax" : "ArgMin";
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument(name, ": missing input");
    const int64_t rank = x->rank();
    KILN_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(name, axis_, rank));
    if (x->dim(axis) == 0) return InvalidArgument(name, ": axis ", axis_, " has size 0");
    Dims out_dims;
    for (int64_t i = 0; i < rank; ++i) {
      if (i != axis) {
        out_dims.push_back(x->dim(i));
      } else if (keepdims_) {
        out_dims.push_back(1);
      }
    }
    return DispatchDType(
        TypeList<float, double, int64_t, int32_t, int8_t, uint8_t>{}, x->dtype(), name, [&](auto tag) -> Status {
          using T = typename decltype(tag)::type;
          KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kInt64, out_dims));
          const AxisView v = MakeAxisView(x->dims(), axis, axis + 1);
          const T* in = x->data<T>();
          int64_t* out = y->data<int64_t>();
          const ParallelRunner& p = ctx.parallel();
          if (is_max_) {
            select_last_ ? ArgTyped<T, true, true>(p, in, out, v) : ArgTyped<T, true, false>(p, in, out, v);
          } else {
            select_last_ ? ArgTyped<T, false, true>(p, in, out, v) : ArgTyped<T, false, false>(p, in, out, v);
          }
          return Status::Ok();
        });
  }

 private:
  bool is_max_;
  int64_t axis_;
  bool keepdims_;
  bool select_last_;
};

KernelFactory ArgFactory(bool is_max) {
  return [is_max](const graph::Node& node) -> StatusOr<std::unique_ptr<OpKernel>> {
    KILN_ASSIGN_OR_RETURN(int64_t axis, node.GetInt("axis", 0));
    KILN_ASSIGN_OR_RETURN(int64_t keepdims, node.GetInt("keepdims", 1));
    KILN_ASSIGN_OR_RETURN(int64_t select_last, node.GetInt("select_last_index", 0));
    return std::unique_ptr<OpKernel>(new ArgKernel(is_max, axis, keepdims != 0, select_last != 0));
  };
}

}  // namespace

void RegisterArgMinMaxOps(KernelRegistry& r) {
  // Opset 11 added negative axes and 12 select_last_index; both are
  // compatible extensions of the opset 1 behaviour.
  r.Register(KernelDef{"ArgMax", "", 1, kNoMaxOpset, ArgFactory(true)});
  r.Register(KernelDef{"ArgMin", "", 1, kNoMaxOpset, ArgFactory(false)});
}

}  // namespace kiln::kernels
