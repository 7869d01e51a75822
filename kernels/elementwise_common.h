// Shared plumbing of the elementwise kernel family: dtype dispatch, the
// parallel grain, a parallel loop over flat element ranges, and the
// per-file registration entry points that elementwise_family.cc calls.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/kernel.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::kernels {

// Elements per parallel task. Elementwise work is memory bound, so a task
// must be large enough that scheduling it costs much less than running it;
// tensors below one grain always run inline.
inline constexpr int64_t kElementwiseGrain = 16 * 1024;

template <typename T>
struct TypeTag {
  using type = T;
};

template <typename... Ts>
struct TypeList {};

using FloatTypes = TypeList<float, double>;
using SignedTypes = TypeList<float, double, int64_t, int32_t, int16_t, int8_t>;
using NumericTypes = TypeList<float, double, int64_t, int32_t, int16_t, int8_t, uint8_t>;
using IntegerTypes = TypeList<int64_t, int32_t, int16_t, int8_t, uint8_t>;
using AllTypes = TypeList<float, double, int64_t, int32_t, int16_t, int8_t, uint8_t, bool>;

// Calls fn(TypeTag<T>{}) for the T in the list whose DType is `dtype` and
// returns its Status; kUnsupported naming `op` when none matches.
template <typename Fn, typename... Ts>
Status DispatchDType(TypeList<Ts...>, DType dtype, const char* op, Fn&& fn) {
  Status result;
  const bool matched = ((DTypeOf<Ts>() == dtype ? (result = fn(TypeTag<Ts>{}), true) : false) || ...);
  // Formatted only on a miss: every elementwise call dispatches here, and a
  // loop body makes that once per node per iteration.
  if (!matched) return Unsupported(op, ": dtype ", DTypeName(dtype), " is not supported");
  return result;
}

// Runs body(begin, end) over [0, n): inline when small, else split across the
// runtime's threads in chunks of at least kElementwiseGrain elements.
template <typename Body>
void ParallelElements(const ParallelRunner& parallel, int64_t n, const Body& body) {
  if (n <= 0) return;
  if (n <= kElementwiseGrain || parallel.num_threads() <= 1) {
    body(int64_t{0}, n);
    return;
  }
  parallel.For(n, kElementwiseGrain, [&body](int64_t begin, int64_t end) { body(begin, end); });
}

// out[i] = op(in[i]) for every element; the loop is written so that the
// compiler vectorises it once `op` is inlined.
template <typename TI, typename TO, typename Op>
void ApplyUnary(const ParallelRunner& parallel, const TI* in, TO* out, int64_t n, const Op& op) {
  // flatten: GCC's -O2 inliner keeps the helpers of larger functors
  // (FastTanh, FastExp) out of line, and a call keeps the loop scalar.
  const auto run = [&](int64_t begin, int64_t end) __attribute__((flatten)) {
    // No __restrict: the runtime may run a kernel in place (in == out), which
    // is safe here because element i is read before it is written. GCC's
    // -O2 cost model does not vectorise loops of unknown trip count; the
    // pragma (the library builds with -fopenmp) asks for it explicitly.
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) out[i] = op(in[i]);
  };
  ParallelElements(parallel, n, run);
}

// Integer arithmetic that wraps around like two's complement hardware
// instead of overflowing (undefined behaviour for signed types). Narrow types
// already compute in int, whose conversion back wraps by definition.
template <typename T>
inline T WrapAdd(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<std::common_type_t<T, unsigned>>;
    return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}
template <typename T>
inline T WrapSub(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<std::common_type_t<T, unsigned>>;
    return static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
  } else {
    return a - b;
  }
}
template <typename T>
inline T WrapMul(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<std::common_type_t<T, unsigned>>;
    return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
  } else {
    return a * b;
  }
}

// Value conversion as Cast defines it, without undefined behaviour: to bool
// is `!= 0`; float to integer truncates toward zero, saturates at the target's
// range and maps NaN to 0; integer to integer wraps; everything else is the
// plain C++ conversion.
template <typename TO, typename TI>
inline TO ConvertValue(TI x) {
  if constexpr (std::is_same_v<TO, bool>) {
    return x != TI(0);
  } else if constexpr (std::is_floating_point_v<TI> && std::is_integral_v<TO>) {
    const double d = static_cast<double>(x);
    constexpr double kMin = static_cast<double>(std::numeric_limits<TO>::min());
    // max + 1 is a power of two, exact in double; anything at or above it
    // does not fit.
    constexpr double kMaxPlusOne = static_cast<double>(std::numeric_limits<TO>::max() / 2 + 1) * 2.0;
    if (!(d == d)) return TO(0);
    if (d <= kMin) return std::numeric_limits<TO>::min();
    if (d >= kMaxPlusOne) return std::numeric_limits<TO>::max();
    return static_cast<TO>(d);
  } else {
    return static_cast<TO>(x);
  }
}

// Registration of each file of the family; see elementwise_family.cc.
void RegisterUnaryOps(KernelRegistry& registry);
void RegisterBinaryOps(KernelRegistry& registry);
void RegisterVariadicOps(KernelRegistry& registry);
void RegisterCompareLogicOps(KernelRegistry& registry);
void RegisterCastOps(KernelRegistry& registry);
void RegisterWhereOp(KernelRegistry& registry);
void RegisterClipOp(KernelRegistry& registry);

}  // namespace kiln::kernels
