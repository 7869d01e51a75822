// LayerNormalization (opset 17): normalises each row formed by the axes from
// `axis` on, Y = (X - mean) / sqrt(var + epsilon) * Scale + B. Scale and B
// broadcast to the normalised shape. The optional Mean and InvStdDev outputs
// (shape dims[:axis] followed by ones) are written only when the node has
// them. Statistics are computed in two passes (mean, then the mean of
// squared deviations), which stays accurate when |mean| >> stddev.
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/reduction_common.h"

namespace kiln::kernels {
namespace {

// `t` (Scale or B) broadcast to `norm_dims` as n contiguous values: the
// tensor's own data when it already has that layout, else a copy in
// `storage`.
template <typename T>
StatusOr<const T*> BroadcastToRow(const char* what, const Tensor& t, const Dims& norm_dims, int64_t n,
                                  std::vector<T>& storage) {
  const int64_t rank = static_cast<int64_t>(norm_dims.size());
  if (t.rank() > rank) {
    return InvalidArgument("LayerNormalization: ", what, " of shape ", DimsToString(t.dims()),
                           " does not broadcast to ", DimsToString(norm_dims));
  }
  const int64_t lead = rank - t.rank();
  bool same = t.num_elements() == n;
  for (int64_t i = 0; i < t.rank(); ++i) {
    const int64_t d = t.dim(i);
    const int64_t want = norm_dims[static_cast<size_t>(lead + i)];
    if (d != want && d != 1) {
      return InvalidArgument("LayerNormalization: ", what, " of shape ", DimsToString(t.dims()),
                             " does not broadcast to ", DimsToString(norm_dims));
    }
  }
  if (same) return t.data<T>();
  // Strides of `t` laid over the normalised shape (0 where broadcast).
  std::vector<int64_t> stride(static_cast<size_t>(rank), 0);
  int64_t s = 1;
  for (int64_t i = t.rank(); i-- > 0;) {
    stride[static_cast<size_t>(lead + i)] = t.dim(i) == 1 ? 0 : s;
    s *= t.dim(i);
  }
  storage.resize(static_cast<size_t>(n));
  const T* src = t.data<T>();
  for (int64_t j = 0; j < n; ++j) {
    int64_t rest = j;
    int64_t off = 0;
    for (int64_t i = rank; i-- > 0;) {
      off += (rest % norm_dims[static_cast<size_t>(i)]) * stride[static_cast<size_t>(i)];
      rest /= norm_dims[static_cast<size_t>(i)];
    }
    storage[static_cast<size_t>(j)] = src[off];
  }
  return static_cast<const T*>(storage.data());
}

template <typename T>
struct SquaredDeviation {
  static T Init() { return T(0); }
  static T Update(T acc, T x, T mean) { return acc + (x - mean) * (x - mean); }
  static T Combine(T a, T b) { return a + b; }
};

class LayerNormKernel final : public OpKernel {
 public:
  LayerNormKernel(int64_t axis, float epsilon) : axis_(axis), epsilon_(epsilon) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* scale = ctx.input(1);
    const Tensor* bias = ctx.input(2);
    if (x == nullptr || scale == nullptr) return InvalidArgument("LayerNormalization: missing X or Scale");
    const int64_t rank = x->rank();
    KILN_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis("LayerNormalization", axis_, rank));
    for (const Tensor* t : {scale, bias}) {
      if (t != nullptr && t->dtype() != x->dtype()) {
        return InvalidArgument("LayerNormalization: Scale and B must have X's dtype ", DTypeName(x->dtype()), ", got ",
                               DTypeName(t->dtype()));
      }
    }
    const AxisView v = MakeAxisView(x->dims(), axis, rank);
    const Dims norm_dims(x->dims().begin() + axis, x->dims().end());
    Dims stat_dims(x->dims().begin(), x->dims().begin() + axis);
    stat_dims.resize(static_cast<size_t>(rank), 1);

    return DispatchDType(FloatTypes{}, x->dtype(), "LayerNormalization", [&](auto tag) -> Status {
      using T = typename decltype(tag)::type;
      std::vector<T> scale_storage, bias_storage;
      KILN_ASSIGN_OR_RETURN(const T* gamma, BroadcastToRow<T>("Scale", *scale, norm_dims, v.axis, scale_storage));
      const T* beta = nullptr;
      if (bias != nullptr) {
        KILN_ASSIGN_OR_RETURN(beta, BroadcastToRow<T>("B", *bias, norm_dims, v.axis, bias_storage));
      }
      KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x->dtype(), x->dims()));
      // The statistics are in the stash type, float32.
      float* mean_out = nullptr;
      float* inv_out = nullptr;
      if (ctx.num_outputs() > 1) {
        KILN_ASSIGN_OR_RETURN(Tensor * m, ctx.Output(1, DType::kFloat32, stat_dims));
        mean_out = m->data<float>();
      }
      if (ctx.num_outputs() > 2) {
        KILN_ASSIGN_OR_RETURN(Tensor * s, ctx.Output(2, DType::kFloat32, stat_dims));
        inv_out = s->data<float>();
      }
      const int64_t n = v.axis;
      const T* in = x->data<T>();
      T* out = y->data<T>();
      const T eps = static_cast<T>(epsilon_);
      ParallelItems(ctx.parallel(), v.outer, 3 * n, [&](int64_t begin, int64_t end) {
        for (int64_t o = begin; o < end; ++o) {
          const T* __restrict row = in + o * n;
          T* __restrict dst = out + o * n;
          const T mean = ReduceRow<PlainSumReducer<T>>(row, n, T(0)) / static_cast<T>(n);
          const T var = ReduceRow<SquaredDeviation<T>>(row, n, mean) / static_cast<T>(n);
          const T inv = T(1) / std::sqrt(var + eps);
          if (beta != nullptr) {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) dst[i] = (row[i] - mean) * inv * gamma[i] + beta[i];
          } else {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) dst[i] = (row[i] - mean) * inv * gamma[i];
          }
          if (mean_out != nullptr) mean_out[o] = static_cast<float>(mean);
          if (inv_out != nullptr) inv_out[o] = static_cast<float>(inv);
        }
      });
      return Status::Ok();
    });
  }

 private:
  int64_t axis_;
  float epsilon_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateLayerNorm(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.GetInt("axis", -1));
  KILN_ASSIGN_OR_RETURN(float epsilon, node.GetFloat("epsilon", 1e-5f));
  KILN_ASSIGN_OR_RETURN(int64_t stash_type, node.GetInt("stash_type", 1));
  // Only float32 statistics (the default, and the only stash type exporters
  // write) are implemented.
  if (stash_type != 1) return Unsupported("LayerNormalization: stash_type ", stash_type, " is not supported");
  return std::unique_ptr<OpKernel>(new LayerNormKernel(axis, epsilon));
}

}  // namespace

void RegisterLayerNormOp(KernelRegistry& r) {
  r.Register(KernelDef{"LayerNormalization", "", 17, kNoMaxOpset, CreateLayerNorm});
}

}  // namespace kiln::kernels
