// ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1,
// ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare.
//
// The reduced axes come from the `axes` attribute before opset 13 (ReduceSum)
// or 18 (the others) and from the optional second input afterwards. The
// problem is first simplified by dropping size-1 axes and merging adjacent
// axes that are all reduced or all kept. Most reductions then have one
// reduced block and take one of two vectorised paths:
//   [outer, R]        each output is a contiguous row, folded by ReduceRow;
//   [outer, R, inner] rows of `inner` outputs are accumulated element-wise.
// Any other pattern (e.g. axes {0, 2} of a 3-D tensor) enumerates the
// offsets of the reduced elements once and folds contiguous runs.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels/fast_math.h"
#include "kernels/reduction_common.h"

namespace kiln::kernels {
namespace {

enum class ReduceOp { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

template <typename T>
inline T AbsOf(T x) {
  if constexpr (std::is_integral_v<T>) {
    return x < T(0) ? WrapSub(T(0), x) : x;
  } else {
    return std::fabs(x);
  }
}

template <typename T>
inline T ExpOf(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return FastExp(x);
  } else {
    return std::exp(x);
  }
}

// Each reducer: Init (the identity), Update (fold one element in), Combine
// (merge two partial accumulators), Finalize (partial -> output, given the
// number of reduced elements). kShifted reducers want the maximum of the
// reduced elements as `shift` (LogSumExp, for numerical stability).
template <typename T>
struct SumR {
  static constexpr bool kShifted = false;
  static T Init() { return T(0); }
  static T Update(T a, T x, T) { return WrapAdd(a, x); }
  static T Combine(T a, T b) { return WrapAdd(a, b); }
  static T Finalize(T a, int64_t, T) { return a; }
};
template <typename T>
struct MeanR : SumR<T> {
  static T Finalize(T a, int64_t n, T) {
    if constexpr (std::is_integral_v<T>) {
      return n == 0 ? T(0) : static_cast<T>(a / static_cast<T>(n));
    } else {
      return a / static_cast<T>(n);  // 0/0 = NaN for an empty reduction
    }
  }
};
template <typename T>
struct MaxR : MaxReducer<T> {
  static constexpr bool kShifted = false;
  static T Finalize(T a, int64_t, T) { return a; }
};
template <typename T>
struct MinR {
  static constexpr bool kShifted = false;
  static T Init() {
    return std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity() : std::numeric_limits<T>::max();
  }
  static T Update(T a, T x, T) { return MinOf(a, x); }
  static T Combine(T a, T b) { return MinOf(a, b); }
  static T Finalize(T a, int64_t, T) { return a; }
};
template <typename T>
struct ProdR {
  static constexpr bool kShifted = false;
  static T Init() { return T(1); }
  static T Update(T a, T x, T) { return WrapMul(a, x); }
  static T Combine(T a, T b) { return WrapMul(a, b); }
  static T Finalize(T a, int64_t, T) { return a; }
};
template <typename T>
struct L1R : SumR<T> {
  static T Update(T a, T x, T) { return WrapAdd(a, AbsOf(x)); }
};
template <typename T>
struct SumSquareR : SumR<T> {
  static T Update(T a, T x, T) { return WrapAdd(a, WrapMul(x, x)); }
};
template <typename T>
struct L2R : SumSquareR<T> {
  static T Finalize(T a, int64_t, T) { return std::sqrt(a); }
};
template <typename T>
struct LogSumR : SumR<T> {
  static T Finalize(T a, int64_t, T) { return std::log(a); }
};
template <typename T>
struct LogSumExpR : SumR<T> {
  static constexpr bool kShifted = true;
  static T Update(T a, T x, T shift) { return a + ExpOf(x - shift); }
  static T Finalize(T a, int64_t, T shift) { return std::log(a) + shift; }
};

// A non-finite maximum (all -inf, or +inf present) would turn x - shift into
// NaN; shifting by 0 then gives the right -inf / +inf.
template <typename T>
inline T SafeShift(T m) {
  return std::isfinite(m) ? m : T(0);
}

// The reduction after merging axes: groups of adjacent axes, each entirely
// reduced or entirely kept, with no size-1 groups.
struct Group {
  int64_t size;
  bool reduced;
};

template <typename R, typename T>
void ReduceRows(const ParallelRunner& parallel, const T* x, T* y, int64_t outer, int64_t n) {
  ParallelItems(parallel, outer, n, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const T* row = x + o * n;
      T shift = T(0);
      if constexpr (R::kShifted) shift = SafeShift(ReduceRow<MaxReducer<T>>(row, n, T(0)));
      y[o] = R::Finalize(ReduceRow<R>(row, n, shift), n, shift);
    }
  });
}

template <typename R, typename T>
void ReduceColumns(const ParallelRunner& parallel, const T* x, T* y, int64_t outer, int64_t n, int64_t inner) {
  // Blocks of `inner` keep the accumulators in L1 while the n rows stream by.
  constexpr int64_t kBlock = 512;
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  ParallelItems(parallel, outer * blocks, n * std::min(inner, kBlock), [&](int64_t begin, int64_t end) {
    T shift[kBlock];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t o = task / blocks;
      const int64_t b0 = (task % blocks) * kBlock;
      const int64_t len = std::min(kBlock, inner - b0);
      const T* __restrict base = x + o * n * inner + b0;
      T* __restrict acc = y + o * inner + b0;
      if constexpr (R::kShifted) {
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) shift[i] = MaxReducer<T>::Init();
        for (int64_t r = 0; r < n; ++r) {
          const T* __restrict row = base + r * inner;
#pragma omp simd
          for (int64_t i = 0; i < len; ++i) shift[i] = MaxOf(shift[i], row[i]);
        }
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) shift[i] = SafeShift(shift[i]);
      }
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) acc[i] = R::Init();
      for (int64_t r = 0; r < n; ++r) {
        const T* __restrict row = base + r * inner;
        if constexpr (R::kShifted) {
#pragma omp simd
          for (int64_t i = 0; i < len; ++i) acc[i] = R::Update(acc[i], row[i], shift[i]);
        } else {
#pragma omp simd
          for (int64_t i = 0; i < len; ++i) acc[i] = R::Update(acc[i], row[i], T(0));
        }
      }
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) acc[i] = R::Finalize(acc[i], n, R::kShifted ? shift[i] : T(0));
    }
  });
}

// Any pattern of reduced groups: contiguous runs (the last group when it is
// reduced, else single elements) at precomputed offsets.
template <typename R, typename T>
void ReduceGeneral(const ParallelRunner& parallel, const T* x, T* y, const std::vector<Group>& groups) {
  const size_t m = groups.size();
  std::vector<int64_t> stride(m);
  int64_t s = 1;
  for (size_t g = m; g-- > 0;) {
    stride[g] = s;
    s *= groups[g].size;
  }
  const bool last_reduced = groups.back().reduced;
  const int64_t run = last_reduced ? groups.back().size : 1;
  const size_t offset_groups = last_reduced ? m - 1 : m;

  // Offsets of every run: the odometer over the reduced groups before the
  // last one.
  std::vector<int64_t> offsets{0};
  for (size_t g = 0; g < offset_groups; ++g) {
    if (!groups[g].reduced) continue;
    std::vector<int64_t> next;
    next.reserve(offsets.size() * static_cast<size_t>(groups[g].size));
    for (int64_t off : offsets) {
      for (int64_t i = 0; i < groups[g].size; ++i) next.push_back(off + i * stride[g]);
    }
    offsets.swap(next);
  }
  std::vector<Group> kept;
  std::vector<int64_t> kept_stride;
  int64_t num_out = 1;
  for (size_t g = 0; g < m; ++g) {
    if (groups[g].reduced) continue;
    kept.push_back(groups[g]);
    kept_stride.push_back(stride[g]);
    num_out *= groups[g].size;
  }
  const int64_t n = run * static_cast<int64_t>(offsets.size());

  ParallelItems(parallel, num_out, n, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      int64_t base = 0;
      int64_t rest = o;
      for (size_t k = kept.size(); k-- > 0;) {
        base += (rest % kept[k].size) * kept_stride[k];
        rest /= kept[k].size;
      }
      T shift = T(0);
      if constexpr (R::kShifted) {
        T m = MaxReducer<T>::Init();
        for (int64_t off : offsets) m = MaxOf(m, ReduceRow<MaxReducer<T>>(x + base + off, run, T(0)));
        shift = SafeShift(m);
      }
      T acc = R::Init();
      for (int64_t off : offsets) acc = R::Combine(acc, ReduceRow<R>(x + base + off, run, shift));
      y[o] = R::Finalize(acc, n, shift);
    }
  });
}

template <typename R, typename T>
void ReduceTyped(const ParallelRunner& parallel, const Tensor& x, Tensor& y, const std::vector<bool>& reduced) {
  const T* in = x.data<T>();
  T* out = y.data<T>();
  if (y.num_elements() == 0) return;
  if (x.num_elements() == 0) {
    // Every output reduces an empty set.
    for (int64_t i = 0; i < y.num_elements(); ++i) out[i] = R::Finalize(R::Init(), 0, T(0));
    return;
  }
  std::vector<Group> groups;
  for (size_t i = 0; i < reduced.size(); ++i) {
    const int64_t d = x.dims()[i];
    if (d == 1) continue;
    if (!groups.empty() && groups.back().reduced == reduced[i]) {
      groups.back().size *= d;
    } else {
      groups.push_back({d, reduced[i]});
    }
  }
  int reduced_groups = 0;
  for (const Group& g : groups) reduced_groups += g.reduced ? 1 : 0;

  if (reduced_groups == 0) {
    // Only size-1 axes are reduced: every output reduces one element.
    for (int64_t i = 0; i < y.num_elements(); ++i) {
      const T shift = R::kShifted ? SafeShift(in[i]) : T(0);
      out[i] = R::Finalize(R::Update(R::Init(), in[i], shift), 1, shift);
    }
    return;
  }
  if (reduced_groups == 1 && groups.size() <= 3) {
    int64_t outer = 1, n = 1, inner = 1;
    bool seen = false;
    for (const Group& g : groups) {
      if (g.reduced) {
        n = g.size;
        seen = true;
      } else if (seen) {
        inner = g.size;
      } else {
        outer = g.size;
      }
    }
    if (inner == 1) {
      ReduceRows<R>(parallel, in, out, outer, n);
    } else {
      ReduceColumns<R>(parallel, in, out, outer, n, inner);
    }
    return;
  }
  ReduceGeneral<R>(parallel, in, out, groups);
}

const char* OpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "ReduceSum";
    case ReduceOp::kMean: return "ReduceMean";
    case ReduceOp::kMax: return "ReduceMax";
    case ReduceOp::kMin: return "ReduceMin";
    case ReduceOp::kProd: return "ReduceProd";
    case ReduceOp::kL1: return "ReduceL1";
    case ReduceOp::kL2: return "ReduceL2";
    case ReduceOp::kLogSum: return "ReduceLogSum";
    case ReduceOp::kLogSumExp: return "ReduceLogSumExp";
    case ReduceOp::kSumSquare: return "ReduceSumSquare";
  }
  return "Reduce";
}

using ArithmeticTypes = TypeList<float, double, int64_t, int32_t>;
using OrderedTypes = TypeList<float, double, int64_t, int32_t, int8_t, uint8_t>;

template <template <typename> class R, typename List>
Status Dispatch(List list, const char* name, const ParallelRunner& parallel, const Tensor& x, Tensor& y,
                const std::vector<bool>& reduced) {
  return DispatchDType(list, x.dtype(), name, [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    ReduceTyped<R<T>, T>(parallel, x, y, reduced);
    return Status::Ok();
  });
}

Status CheckDType(ReduceOp op, DType dtype) {
  auto in = [dtype](std::initializer_list<DType> list) {
    return std::find(list.begin(), list.end(), dtype) != list.end();
  };
  bool ok = false;
  switch (op) {
    case ReduceOp::kMax:
    case ReduceOp::kMin:
      ok = in({DType::kFloat32, DType::kFloat64, DType::kInt64, DType::kInt32, DType::kInt8, DType::kUint8});
      break;
    case ReduceOp::kL2:
    case ReduceOp::kLogSum:
    case ReduceOp::kLogSumExp: ok = in({DType::kFloat32, DType::kFloat64}); break;
    default: ok = in({DType::kFloat32, DType::kFloat64, DType::kInt64, DType::kInt32});
  }
  if (!ok) return Unsupported(OpName(op), ": dtype ", DTypeName(dtype), " is not supported");
  return Status::Ok();
}

class ReduceKernel final : public OpKernel {
 public:
  ReduceKernel(ReduceOp op, bool axes_from_input, std::vector<int64_t> axes, bool keepdims, bool noop_with_empty_axes)
      : op_(op),
        axes_from_input_(axes_from_input),
        axes_attr_(std::move(axes)),
        keepdims_(keepdims),
        noop_with_empty_axes_(noop_with_empty_axes) {}

  Status Compute(KernelContext& ctx) const override {
    const char* name = OpName(op_);
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument(name, ": missing input");
    KILN_RETURN_IF_ERROR(CheckDType(op_, x->dtype()));
    std::vector<int64_t> axes = axes_attr_;
    if (axes_from_input_ && ctx.input(1) != nullptr) {
      KILN_ASSIGN_OR_RETURN(axes, ReadInt64List(name, "axes", *ctx.input(1)));
    }
    const int64_t rank = x->rank();
    if (axes.empty() && noop_with_empty_axes_) {
      KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x->dtype(), x->dims()));
      if (x->byte_size() > 0) std::memcpy(y->raw_data(), x->raw_data(), x->byte_size());
      return Status::Ok();
    }
    std::vector<bool> reduced(static_cast<size_t>(rank), axes.empty());
    for (int64_t a : axes) {
      KILN_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(name, a, rank));
      if (reduced[static_cast<size_t>(axis)]) return InvalidArgument(name, ": axis ", a, " is repeated in axes");
      reduced[static_cast<size_t>(axis)] = true;
    }
    Dims out_dims;
    for (int64_t i = 0; i < rank; ++i) {
      if (!reduced[static_cast<size_t>(i)]) {
        out_dims.push_back(x->dim(i));
      } else if (keepdims_) {
        out_dims.push_back(1);
      }
    }
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x->dtype(), out_dims));
    const ParallelRunner& p = ctx.parallel();
    switch (op_) {
      case ReduceOp::kSum: return Dispatch<SumR>(ArithmeticTypes{}, name, p, *x, *y, reduced);
      case ReduceOp::kMean: return Dispatch<MeanR>(ArithmeticTypes{}, name, p, *x, *y, reduced);
      case ReduceOp::kMax: return Dispatch<MaxR>(OrderedTypes{}, name, p, *x, *y, reduced);
      case ReduceOp::kMin: return Dispatch<MinR>(OrderedTypes{}, name, p, *x, *y, reduced);
      case ReduceOp::kProd: return Dispatch<ProdR>(ArithmeticTypes{}, name, p, *x, *y, reduced);
      case ReduceOp::kL1: return Dispatch<L1R>(ArithmeticTypes{}, name, p, *x, *y, reduced);
      case ReduceOp::kL2: return Dispatch<L2R>(FloatTypes{}, name, p, *x, *y, reduced);
      case ReduceOp::kLogSum: return Dispatch<LogSumR>(FloatTypes{}, name, p, *x, *y, reduced);
      case ReduceOp::kLogSumExp: return Dispatch<LogSumExpR>(FloatTypes{}, name, p, *x, *y, reduced);
      case ReduceOp::kSumSquare: return Dispatch<SumSquareR>(ArithmeticTypes{}, name, p, *x, *y, reduced);
    }
    return Internal(name, ": unknown reduction");
  }

 private:
  ReduceOp op_;
  bool axes_from_input_;
  std::vector<int64_t> axes_attr_;
  bool keepdims_;
  bool noop_with_empty_axes_;
};

KernelFactory ReduceFactory(ReduceOp op, bool axes_from_input) {
  return [op, axes_from_input](const graph::Node& node) -> StatusOr<std::unique_ptr<OpKernel>> {
    KILN_ASSIGN_OR_RETURN(int64_t keepdims, node.GetInt("keepdims", 1));
    KILN_ASSIGN_OR_RETURN(int64_t noop, node.GetInt("noop_with_empty_axes", 0));
    std::vector<int64_t> axes;
    if (!axes_from_input) {
      KILN_ASSIGN_OR_RETURN(axes, node.GetInts("axes"));
    }
    return std::unique_ptr<OpKernel>(
        new ReduceKernel(op, axes_from_input, std::move(axes), keepdims != 0, axes_from_input && noop != 0));
  };
}

}  // namespace

void RegisterReduceOps(KernelRegistry& r) {
  const ReduceOp ops[] = {ReduceOp::kSum,       ReduceOp::kMean,     ReduceOp::kMax, ReduceOp::kMin,
                          ReduceOp::kProd,      ReduceOp::kL1,       ReduceOp::kL2,  ReduceOp::kLogSum,
                          ReduceOp::kLogSumExp, ReduceOp::kSumSquare};
  for (ReduceOp op : ops) {
    // ReduceSum took axes as an input from opset 13, the others from 18.
    const int input_since = op == ReduceOp::kSum ? 13 : 18;
    r.Register(KernelDef{OpName(op), "", 1, input_since - 1, ReduceFactory(op, false)});
    r.Register(KernelDef{OpName(op), "", input_since, kNoMaxOpset, ReduceFactory(op, true)});
  }
}

}  // namespace kiln::kernels
