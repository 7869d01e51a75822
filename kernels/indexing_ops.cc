// The rest of the shape family: Trilu, NonZero, TopK, CumSum, OneHot,
// DepthToSpace, SpaceToDepth and Compress. DepthToSpace and SpaceToDepth are
// fixed reshape-transpose-reshape patterns, so they reuse StridedCopy.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <optional>

#include "kernels/elementwise_common.h"
#include "kernels/tensor_ops_common.h"

namespace kiln::kernels {
namespace {

// ------------------------------------------------------------------ Trilu

class TriluKernel final : public OpKernel {
 public:
  explicit TriluKernel(bool upper) : upper_(upper) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    if (in == nullptr) return InvalidArgument("Trilu: input is missing");
    if (in->rank() < 2) return InvalidArgument("Trilu: input must have rank >= 2, got ", DimsToString(in->dims()));
    int64_t k = 0;
    if (const Tensor* kt = ctx.input(1)) {
      KILN_ASSIGN_OR_RETURN(k, ReadIndexScalar("Trilu", "k", *kt));
    }
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, in->dtype(), in->dims()));
    const int64_t rows = in->dim(in->rank() - 2);
    const int64_t cols = in->dim(in->rank() - 1);
    if (out->num_elements() == 0) return Status::Ok();
    const int64_t matrices = in->num_elements() / (rows * cols);
    const int64_t es = static_cast<int64_t>(DTypeSize(in->dtype()));
    const char* src = static_cast<const char*>(in->raw_data());
    char* dst = static_cast<char*>(out->raw_data());
    const bool upper = upper_;
    ctx.parallel().For(
        matrices * rows, std::max<int64_t>(1, kCopyGrainBytes / (cols * es)), [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; ++r) {
            const int64_t i = r % rows;
            // Kept columns: j - i >= k (upper) or j - i <= k (lower).
            const int64_t bound = std::clamp<int64_t>(i + k + (upper ? 0 : 1), 0, cols);
            const int64_t keep_begin = upper ? bound : 0;
            const int64_t keep_end = upper ? cols : bound;
            char* d = dst + r * cols * es;
            const char* s = src + r * cols * es;
            // Zero bits are the zero value of every kiln dtype.
            std::memset(d, 0, static_cast<size_t>(cols * es));
            std::memcpy(d + keep_begin * es, s + keep_begin * es, static_cast<size_t>((keep_end - keep_begin) * es));
          }
        });
    return Status::Ok();
  }

 private:
  bool upper_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateTrilu(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t upper, node.GetInt("upper", 1));
  return std::unique_ptr<OpKernel>(new TriluKernel(upper != 0));
}

// ---------------------------------------------------------------- NonZero

class NonZeroKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    if (in == nullptr) return InvalidArgument("NonZero: input is missing");
    return DispatchDType(AllTypes{}, in->dtype(), "NonZero", [&](auto tag) -> Status {
      using T = typename decltype(tag)::type;
      const T* x = in->data<T>();
      const int64_t n = in->num_elements();
      std::vector<int64_t> positions;
      for (int64_t i = 0; i < n; ++i) {
        if (x[i] != T(0)) positions.push_back(i);
      }
      const int64_t rank = in->rank();
      const int64_t nnz = static_cast<int64_t>(positions.size());
      // A scalar is treated as rank 1 (ONNX Runtime and numpy agree).
      const int64_t out_rank = std::max<int64_t>(rank, 1);
      KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kInt64, {out_rank, nnz}));
      int64_t* o = out->data<int64_t>();
      for (int64_t j = 0; j < nnz; ++j) {
        int64_t p = positions[static_cast<size_t>(j)];
        for (int64_t a = out_rank; a-- > 0;) {
          const int64_t d = rank == 0 ? 1 : in->dim(a);
          o[a * nnz + j] = p % d;
          p /= d;
        }
      }
      return Status::Ok();
    });
  }
};

// ------------------------------------------------------------------- TopK

// NaN-aware ordering: NaN counts as larger than every number, so the sort
// has a strict weak order whatever the data.
template <typename T>
bool ValueLess(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
  }
  return a < b;
}

class TopKKernel final : public OpKernel {
 public:
  TopKKernel(int opset, int64_t k_attr, int64_t axis, bool largest)
      : opset_(opset), k_attr_(k_attr), axis_(axis), largest_(largest) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument("TopK: input is missing");
    if (x->rank() == 0) return InvalidArgument("TopK: input must have rank >= 1");
    int64_t k = k_attr_;
    if (opset_ >= 10) {
      if (ctx.input(1) == nullptr) return InvalidArgument("TopK: K is missing");
      KILN_ASSIGN_OR_RETURN(k, ReadIndexScalar("TopK", "K", *ctx.input(1)));
    }
    KILN_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis("TopK", axis_, x->rank()));
    const int64_t dim = x->dim(axis);
    if (k < 0 || k > dim) return InvalidArgument("TopK: K = ", k, " is outside [0, ", dim, "] for axis ", axis);
    Dims out_dims = x->dims();
    out_dims[static_cast<size_t>(axis)] = k;
    const int64_t outer = DimProduct(x->dims(), 0, static_cast<size_t>(axis));
    const int64_t inner = DimProduct(x->dims(), static_cast<size_t>(axis) + 1, x->dims().size());
    return DispatchDType(TypeList<float, double, int64_t, int32_t, int16_t, int8_t, uint8_t>{}, x->dtype(), "TopK",
                         [&](auto tag) -> Status {
                           using T = typename decltype(tag)::type;
                           KILN_ASSIGN_OR_RETURN(Tensor * values, ctx.Output(0, x->dtype(), out_dims));
                           Tensor* indices = nullptr;
                           if (ctx.num_outputs() > 1) {
                             KILN_ASSIGN_OR_RETURN(indices, ctx.Output(1, DType::kInt64, out_dims));
                           }
                           Run<T>(ctx.parallel(), x->data<T>(), values->data<T>(),
                                  indices ? indices->data<int64_t>() : nullptr, outer, dim, inner, k);
                           return Status::Ok();
                         });
  }

 private:
  template <typename T>
  void Run(const ParallelRunner& parallel, const T* x, T* values, int64_t* indices, int64_t outer, int64_t dim,
           int64_t inner, int64_t k) const {
    if (k == 0) return;
    const bool largest = largest_;
    // Ties keep the lower index first, as ONNX specifies.
    const auto before = [largest](T a, int64_t ia, T b, int64_t ib) {
      if (largest ? ValueLess(b, a) : ValueLess(a, b)) return true;
      if (largest ? ValueLess(a, b) : ValueLess(b, a)) return false;
      return ia < ib;
    };
    // Elements per parallel chunk; lower than the elementwise grain because
    // each element is sorted (log dim comparisons), not just copied.
    constexpr int64_t kChunkElements = 4096;
    const int64_t lines_per_chunk = std::max<int64_t>(1, kChunkElements / std::max<int64_t>(dim, 1));
    parallel.For(outer * inner, lines_per_chunk, [&](int64_t begin, int64_t end) {
      std::vector<int64_t> order(static_cast<size_t>(dim));
      for (int64_t line = begin; line < end; ++line) {
        const int64_t o = line / inner;
        const int64_t i = line % inner;
        const T* base = x + o * dim * inner + i;
        std::iota(order.begin(), order.end(), int64_t{0});
        const auto cmp = [&](int64_t a, int64_t b) { return before(base[a * inner], a, base[b * inner], b); };
        if (k < dim) {
          std::nth_element(order.begin(), order.begin() + (k - 1), order.end(), cmp);
          // nth_element leaves the k best in front, unordered.
        }
        // Always sorted: sorted=0 allows any order, and sorted is one of them.
        std::sort(order.begin(), order.begin() + k, cmp);
        T* vo = values + o * k * inner + i;
        for (int64_t j = 0; j < k; ++j) vo[j * inner] = base[order[static_cast<size_t>(j)] * inner];
        if (indices != nullptr) {
          int64_t* io = indices + o * k * inner + i;
          for (int64_t j = 0; j < k; ++j) io[j * inner] = order[static_cast<size_t>(j)];
        }
      }
    });
  }

  int opset_;
  int64_t k_attr_;
  int64_t axis_;
  bool largest_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateTopK(const graph::Node& node) {
  int64_t k = 0;
  if (node.opset < 10) {
    if (node.FindAttribute("k") == nullptr) return InvalidArgument("TopK: attribute 'k' is required");
    KILN_ASSIGN_OR_RETURN(k, node.GetInt("k", 0));
  }
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.GetInt("axis", -1));
  KILN_ASSIGN_OR_RETURN(int64_t largest, node.GetInt("largest", 1));
  return std::unique_ptr<OpKernel>(new TopKKernel(node.opset, k, axis, largest != 0));
}

// ----------------------------------------------------------------- CumSum

class CumSumKernel final : public OpKernel {
 public:
  CumSumKernel(bool exclusive, bool reverse) : exclusive_(exclusive), reverse_(reverse) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* axis_t = ctx.input(1);
    if (x == nullptr || axis_t == nullptr) return InvalidArgument("CumSum: expects x and axis");
    if (x->rank() == 0) return InvalidArgument("CumSum: input must have rank >= 1");
    KILN_ASSIGN_OR_RETURN(int64_t axis, ReadIndexScalar("CumSum", "axis", *axis_t));
    KILN_ASSIGN_OR_RETURN(axis, NormalizeAxis("CumSum", axis, x->rank()));
    const int64_t outer = DimProduct(x->dims(), 0, static_cast<size_t>(axis));
    const int64_t dim = x->dim(axis);
    const int64_t inner = DimProduct(x->dims(), static_cast<size_t>(axis) + 1, x->dims().size());
    return DispatchDType(TypeList<float, double, int64_t, int32_t>{}, x->dtype(), "CumSum", [&](auto tag) -> Status {
      using T = typename decltype(tag)::type;
      KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x->dtype(), x->dims()));
      const T* src = x->data<T>();
      T* dst = out->data<T>();
      const bool exclusive = exclusive_;
      const bool reverse = reverse_;
      ctx.parallel().For(outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(dim * inner, 1)),
                         [&](int64_t begin, int64_t end) {
                           std::vector<T> acc(static_cast<size_t>(inner));
                           for (int64_t o = begin; o < end; ++o) {
                             std::fill(acc.begin(), acc.end(), T(0));
                             for (int64_t s = 0; s < dim; ++s) {
                               const int64_t a = reverse ? dim - 1 - s : s;
                               const T* xs = src + (o * dim + a) * inner;
                               T* ys = dst + (o * dim + a) * inner;
                               // Integer sums wrap rather than overflow (UB).
                               if (exclusive) {
                                 for (int64_t i = 0; i < inner; ++i) {
                                   ys[i] = acc[static_cast<size_t>(i)];
                                   acc[static_cast<size_t>(i)] = WrapAdd(acc[static_cast<size_t>(i)], xs[i]);
                                 }
                               } else {
                                 for (int64_t i = 0; i < inner; ++i) {
                                   acc[static_cast<size_t>(i)] = WrapAdd(acc[static_cast<size_t>(i)], xs[i]);
                                   ys[i] = acc[static_cast<size_t>(i)];
                                 }
                               }
                             }
                           }
                         });
      return Status::Ok();
    });
  }

 private:
  bool exclusive_;
  bool reverse_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateCumSum(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t exclusive, node.GetInt("exclusive", 0));
  KILN_ASSIGN_OR_RETURN(int64_t reverse, node.GetInt("reverse", 0));
  return std::unique_ptr<OpKernel>(new CumSumKernel(exclusive != 0, reverse != 0));
}

// ----------------------------------------------------------------- OneHot

// The value of element i of a numeric tensor as double (indices and depth
// may be any numeric type in OneHot).
StatusOr<std::vector<double>> ReadNumeric(const char* op, const char* what, const Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.num_elements()));
  Status s = DispatchDType(NumericTypes{}, t.dtype(), op, [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(t.data<T>()[i]);
    return Status::Ok();
  });
  if (!s.ok()) return Unsupported(op, ": ", what, " of dtype ", DTypeName(t.dtype()), " is not supported");
  return out;
}

class OneHotKernel final : public OpKernel {
 public:
  explicit OneHotKernel(int64_t axis) : axis_(axis) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* indices = ctx.input(0);
    const Tensor* depth_t = ctx.input(1);
    const Tensor* values = ctx.input(2);
    if (indices == nullptr || depth_t == nullptr || values == nullptr) {
      return InvalidArgument("OneHot: expects indices, depth and values");
    }
    if (depth_t->num_elements() != 1) return InvalidArgument("OneHot: depth must be a scalar");
    if (values->num_elements() != 2) return InvalidArgument("OneHot: values must have 2 elements [off, on]");
    KILN_ASSIGN_OR_RETURN(const std::vector<double> depth_v, ReadNumeric("OneHot", "depth", *depth_t));
    const double depth_d = depth_v[0];
    if (!(depth_d >= 1) || depth_d > 1e12) return InvalidArgument("OneHot: depth ", depth_d, " must be >= 1");
    const int64_t depth = static_cast<int64_t>(depth_d);
    KILN_ASSIGN_OR_RETURN(const std::vector<double> idx, ReadNumeric("OneHot", "indices", *indices));
    const int64_t out_rank = indices->rank() + 1;
    KILN_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis("OneHot", axis_, out_rank));
    Dims out_dims = indices->dims();
    out_dims.insert(out_dims.begin() + axis, depth);
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, values->dtype(), out_dims));
    const int64_t outer = DimProduct(indices->dims(), 0, static_cast<size_t>(axis));
    const int64_t inner = DimProduct(indices->dims(), static_cast<size_t>(axis), indices->dims().size());
    DispatchElementSize(DTypeSize(values->dtype()), [&](auto tag) {
      using U = decltype(tag);
      const U off = values->data<U>()[0];
      const U on = values->data<U>()[1];
      U* o = out->data<U>();
      std::fill_n(o, out->num_elements(), off);
      for (int64_t a = 0; a < outer; ++a) {
        for (int64_t i = 0; i < inner; ++i) {
          int64_t v = static_cast<int64_t>(idx[static_cast<size_t>(a * inner + i)]);
          if (v < 0) v += depth;
          if (v < 0 || v >= depth) continue;  // out-of-range indices give an all-off row
          o[(a * depth + v) * inner + i] = on;
        }
      }
    });
    return Status::Ok();
  }

 private:
  int64_t axis_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateOneHot(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.GetInt("axis", -1));
  return std::unique_ptr<OpKernel>(new OneHotKernel(axis));
}

// ------------------------------------------- DepthToSpace, SpaceToDepth

// Both are reshape -> transpose -> reshape of an NCHW tensor; `view` is the
// 6-D reshape of the input and `perm` the transpose.
Status PermutedCopy(KernelContext& ctx, const Tensor& in, const Dims& view, const std::vector<int64_t>& perm,
                    const Dims& out_dims) {
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, in.dtype(), out_dims));
  if (out->num_elements() == 0) return Status::Ok();
  const std::vector<int64_t> strides = ContiguousStrides(view);
  Dims dims(perm.size());
  std::vector<int64_t> src_strides(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    dims[i] = view[static_cast<size_t>(perm[i])];
    src_strides[i] = strides[static_cast<size_t>(perm[i])];
  }
  StridedCopy(ctx.parallel(), DTypeSize(in.dtype()), out->raw_data(), in.raw_data(), dims, src_strides);
  return Status::Ok();
}

class DepthToSpaceKernel final : public OpKernel {
 public:
  DepthToSpaceKernel(int64_t block, bool crd) : block_(block), crd_(crd) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    if (in == nullptr) return InvalidArgument("DepthToSpace: input is missing");
    if (in->rank() != 4) return InvalidArgument("DepthToSpace: input must be 4-D, got ", DimsToString(in->dims()));
    const int64_t b = block_;
    const int64_t n = in->dim(0), c = in->dim(1), h = in->dim(2), w = in->dim(3);
    if (c % (b * b) != 0) {
      return InvalidArgument("DepthToSpace: channels ", c, " are not divisible by blocksize^2 = ", b * b);
    }
    const int64_t oc = c / (b * b);
    const Dims out_dims = {n, oc, h * b, w * b};
    if (crd_) return PermutedCopy(ctx, *in, {n, oc, b, b, h, w}, {0, 1, 4, 2, 5, 3}, out_dims);
    return PermutedCopy(ctx, *in, {n, b, b, oc, h, w}, {0, 3, 4, 1, 5, 2}, out_dims);
  }

 private:
  int64_t block_;
  bool crd_;
};

class SpaceToDepthKernel final : public OpKernel {
 public:
  explicit SpaceToDepthKernel(int64_t block) : block_(block) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    if (in == nullptr) return InvalidArgument("SpaceToDepth: input is missing");
    if (in->rank() != 4) return InvalidArgument("SpaceToDepth: input must be 4-D, got ", DimsToString(in->dims()));
    const int64_t b = block_;
    const int64_t n = in->dim(0), c = in->dim(1), h = in->dim(2), w = in->dim(3);
    if (h % b != 0 || w % b != 0) {
      return InvalidArgument("SpaceToDepth: spatial dims ", h, "x", w, " are not divisible by blocksize ", b);
    }
    return PermutedCopy(ctx, *in, {n, c, h / b, b, w / b, b}, {0, 3, 5, 1, 2, 4}, {n, c * b * b, h / b, w / b});
  }

 private:
  int64_t block_;
};

StatusOr<int64_t> ReadBlockSize(const graph::Node& node, const char* op) {
  if (node.FindAttribute("blocksize") == nullptr) return InvalidArgument(op, ": attribute 'blocksize' is required");
  KILN_ASSIGN_OR_RETURN(int64_t b, node.GetInt("blocksize", 1));
  if (b < 1) return InvalidArgument(op, ": blocksize must be >= 1, got ", b);
  return b;
}

StatusOr<std::unique_ptr<OpKernel>> CreateDepthToSpace(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t b, ReadBlockSize(node, "DepthToSpace"));
  KILN_ASSIGN_OR_RETURN(std::string mode, node.GetString("mode", "DCR"));
  if (mode != "DCR" && mode != "CRD") return Unsupported("DepthToSpace: mode '", mode, "' is not supported");
  return std::unique_ptr<OpKernel>(new DepthToSpaceKernel(b, mode == "CRD"));
}

StatusOr<std::unique_ptr<OpKernel>> CreateSpaceToDepth(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t b, ReadBlockSize(node, "SpaceToDepth"));
  return std::unique_ptr<OpKernel>(new SpaceToDepthKernel(b));
}

// --------------------------------------------------------------- Compress

// Compress keeps the slices along `axis` (or the elements of the flattened
// input) whose condition entry is true; a shorter condition drops the rest.
class CompressKernel final : public OpKernel {
 public:
  explicit CompressKernel(std::optional<int64_t> axis) : axis_(axis) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    const Tensor* cond = ctx.input(1);
    if (in == nullptr || cond == nullptr) return InvalidArgument("Compress: expects input and condition");
    if (cond->dtype() != DType::kBool || cond->rank() != 1) {
      return InvalidArgument("Compress: condition must be a 1-D bool tensor");
    }
    Dims dims = in->dims();
    int64_t axis = 0;
    if (axis_) {
      KILN_ASSIGN_OR_RETURN(axis, NormalizeAxis("Compress", *axis_, in->rank()));
    } else {
      dims = {in->num_elements()};
    }
    const int64_t dim = dims[static_cast<size_t>(axis)];
    if (cond->num_elements() > dim) {
      return InvalidArgument("Compress: condition has ", cond->num_elements(), " entries for an axis of size ", dim);
    }
    std::vector<int64_t> kept;
    for (int64_t i = 0; i < cond->num_elements(); ++i) {
      if (cond->data<bool>()[i]) kept.push_back(i);
    }
    const int64_t outer = DimProduct(dims, 0, static_cast<size_t>(axis));
    const int64_t inner = DimProduct(dims, static_cast<size_t>(axis) + 1, dims.size());
    Dims out_dims = dims;
    out_dims[static_cast<size_t>(axis)] = static_cast<int64_t>(kept.size());
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, in->dtype(), out_dims));
    const int64_t chunk = inner * static_cast<int64_t>(DTypeSize(in->dtype()));
    const char* src = static_cast<const char*>(in->raw_data());
    char* dst = static_cast<char*>(out->raw_data());
    const int64_t n = static_cast<int64_t>(kept.size());
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t j = 0; j < n; ++j) {
        std::memcpy(dst + (o * n + j) * chunk, src + (o * dim + kept[static_cast<size_t>(j)]) * chunk,
                    static_cast<size_t>(chunk));
      }
    }
    return Status::Ok();
  }

 private:
  std::optional<int64_t> axis_;  // nullopt: flatten first
};

StatusOr<std::unique_ptr<OpKernel>> CreateCompress(const graph::Node& node) {
  std::optional<int64_t> axis;
  if (node.FindAttribute("axis") != nullptr) {
    KILN_ASSIGN_OR_RETURN(axis, node.GetInt("axis", 0));
  }
  return std::unique_ptr<OpKernel>(new CompressKernel(axis));
}

}  // namespace

void RegisterIndexingOps(KernelRegistry& r) {
  r.Register(KernelDef{"Trilu", "", 14, kNoMaxOpset, CreateTrilu});
  r.Register(KernelDef{"NonZero", "", 9, kNoMaxOpset, MakeFactory<NonZeroKernel>()});
  r.Register(KernelDef{"TopK", "", 1, kNoMaxOpset, CreateTopK});
  r.Register(KernelDef{"CumSum", "", 11, kNoMaxOpset, CreateCumSum});
  r.Register(KernelDef{"OneHot", "", 9, kNoMaxOpset, CreateOneHot});
  r.Register(KernelDef{"DepthToSpace", "", 1, kNoMaxOpset, CreateDepthToSpace});
  r.Register(KernelDef{"SpaceToDepth", "", 1, kNoMaxOpset, CreateSpaceToDepth});
  r.Register(KernelDef{"Compress", "", 9, kNoMaxOpset, CreateCompress});
}

}  // namespace kiln::kernels
