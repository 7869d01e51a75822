// Index-driven data movement: Gather, GatherElements, GatherND,
// ScatterElements and ScatterND. Every index is normalised (negative counts
// from the end) and bounds-checked in a serial pre-pass, before any output
// is written, so the copy loops need no error path and can run in parallel.
#include <algorithm>
#include <cstring>
#include <memory>

#include "kernels/tensor_ops_common.h"

namespace kiln::kernels {
namespace {

// The indices of `t` (int32 or int64, any shape), each normalised against
// `dim`; OutOfRange naming the first bad one.
StatusOr<std::vector<int64_t>> ReadCheckedIndices(const char* op, const Tensor& t, int64_t dim, int64_t axis) {
  const int64_t n = t.num_elements();
  std::vector<int64_t> out(static_cast<size_t>(n));
  if (t.dtype() == DType::kInt64) {
    std::copy(t.data<int64_t>(), t.data<int64_t>() + n, out.begin());
  } else if (t.dtype() == DType::kInt32) {
    std::copy(t.data<int32_t>(), t.data<int32_t>() + n, out.begin());
  } else {
    return InvalidArgument(op, ": indices must be int32 or int64, got ", DTypeName(t.dtype()));
  }
  for (int64_t i = 0; i < n; ++i) {
    int64_t& v = out[static_cast<size_t>(i)];
    if (v < -dim || v >= dim) {
      return OutOfRange(op, ": index ", v, " (at flat position ", i, ") is out of range for axis ", axis, " of size ",
                        dim);
    }
    if (v < 0) v += dim;
  }
  return out;
}

// ----------------------------------------------------------------- Gather

class GatherKernel final : public OpKernel {
 public:
  explicit GatherKernel(int64_t axis) : axis_(axis) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* data = ctx.input(0);
    const Tensor* indices = ctx.input(1);
    if (data == nullptr || indices == nullptr) return InvalidArgument("Gather: expects data and indices");
    if (data->rank() == 0) return InvalidArgument("Gather: data must have rank >= 1");
    KILN_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis("Gather", axis_, data->rank()));
    const int64_t dim = data->dim(axis);
    KILN_ASSIGN_OR_RETURN(const std::vector<int64_t> idx, ReadCheckedIndices("Gather", *indices, dim, axis));
    const Dims& dd = data->dims();
    Dims out_dims(dd.begin(), dd.begin() + axis);
    out_dims.insert(out_dims.end(), indices->dims().begin(), indices->dims().end());
    out_dims.insert(out_dims.end(), dd.begin() + axis + 1, dd.end());
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, data->dtype(), out_dims));
    if (out->num_elements() == 0) return Status::Ok();

    const int64_t outer = DimProduct(dd, 0, static_cast<size_t>(axis));
    const int64_t inner = DimProduct(dd, static_cast<size_t>(axis) + 1, dd.size());
    const int64_t n = static_cast<int64_t>(idx.size());
    const size_t es = DTypeSize(data->dtype());
    const int64_t chunk = inner * static_cast<int64_t>(es);  // bytes per gathered slice
    const int64_t grain = std::max<int64_t>(1, kCopyGrainBytes / chunk);
    if (inner == 1) {
      // Single elements: a typed loop beats a memcpy call per element.
      DispatchElementSize(es, [&](auto tag) {
        using U = decltype(tag);
        const U* src = static_cast<const U*>(data->raw_data());
        U* dst = static_cast<U*>(out->raw_data());
        ctx.parallel().For(outer * n, grain, [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; ++r) dst[r] = src[(r / n) * dim + idx[static_cast<size_t>(r % n)]];
        });
      });
      return Status::Ok();
    }
    const char* src = static_cast<const char*>(data->raw_data());
    char* dst = static_cast<char*>(out->raw_data());
    ctx.parallel().For(outer * n, grain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t o = r / n;
        const int64_t j = r % n;
        std::memcpy(dst + r * chunk, src + (o * dim + idx[static_cast<size_t>(j)]) * chunk, static_cast<size_t>(chunk));
      }
    });
    return Status::Ok();
  }

 private:
  int64_t axis_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateGather(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.GetInt("axis", 0));
  return std::unique_ptr<OpKernel>(new GatherKernel(axis));
}

// -------------------------------------------- GatherElements, ScatterElements

// Shared checks: data and indices of the same rank, indices no larger than
// data on the non-axis dims.
Status CheckElementsShapes(const char* op, const Tensor& data, const Tensor& indices, int64_t axis) {
  if (indices.rank() != data.rank()) {
    return InvalidArgument(op, ": indices ", DimsToString(indices.dims()), " and data ", DimsToString(data.dims()),
                           " must have the same rank");
  }
  for (int64_t i = 0; i < data.rank(); ++i) {
    if (i != axis && indices.dim(i) > data.dim(i)) {
      return InvalidArgument(op, ": indices ", DimsToString(indices.dims()), " exceed data ", DimsToString(data.dims()),
                             " on axis ", i);
    }
  }
  return Status::Ok();
}

// Flat data offsets, one per element of `indices`: the element's own
// coordinates except on `axis`, where the index value is used.
std::vector<int64_t> ElementOffsets(const Dims& data_dims, const Dims& index_dims, const std::vector<int64_t>& idx,
                                    int64_t axis) {
  std::vector<int64_t> strides = ContiguousStrides(data_dims);
  const int64_t axis_stride = strides[static_cast<size_t>(axis)];
  strides[static_cast<size_t>(axis)] = 0;
  std::vector<int64_t> offsets(idx.size());
  if (idx.empty()) return offsets;  // the odometer needs non-empty dims
  Odometer odo(index_dims, strides, 0);
  for (size_t i = 0; i < idx.size(); ++i, odo.Next()) offsets[i] = odo.offset() + idx[i] * axis_stride;
  return offsets;
}

class GatherElementsKernel final : public OpKernel {
 public:
  explicit GatherElementsKernel(int64_t axis) : axis_(axis) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* data = ctx.input(0);
    const Tensor* indices = ctx.input(1);
    if (data == nullptr || indices == nullptr) return InvalidArgument("GatherElements: expects data and indices");
    if (data->rank() == 0) return InvalidArgument("GatherElements: data must have rank >= 1");
    KILN_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis("GatherElements", axis_, data->rank()));
    KILN_RETURN_IF_ERROR(CheckElementsShapes("GatherElements", *data, *indices, axis));
    KILN_ASSIGN_OR_RETURN(const std::vector<int64_t> idx,
                          ReadCheckedIndices("GatherElements", *indices, data->dim(axis), axis));
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, data->dtype(), indices->dims()));
    if (out->num_elements() == 0) return Status::Ok();
    const std::vector<int64_t> offsets = ElementOffsets(data->dims(), indices->dims(), idx, axis);
    DispatchElementSize(DTypeSize(data->dtype()), [&](auto tag) {
      using U = decltype(tag);
      const U* src = static_cast<const U*>(data->raw_data());
      U* dst = static_cast<U*>(out->raw_data());
      ctx.parallel().For(static_cast<int64_t>(offsets.size()), 16384, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) dst[i] = src[offsets[static_cast<size_t>(i)]];
      });
    });
    return Status::Ok();
  }

 private:
  int64_t axis_;
};

// ScatterElements (and its deprecated alias Scatter): a copy of data with
// updates written at the indexed positions, in order, optionally reduced.
enum class ScatterReduction { kNone, kAdd, kMul, kMax, kMin };

StatusOr<ScatterReduction> ParseReduction(const graph::Node& node, const char* op) {
  KILN_ASSIGN_OR_RETURN(std::string r, node.GetString("reduction", "none"));
  if (r == "none") return ScatterReduction::kNone;
  if (r == "add") return ScatterReduction::kAdd;
  if (r == "mul") return ScatterReduction::kMul;
  if (r == "max") return ScatterReduction::kMax;
  if (r == "min") return ScatterReduction::kMin;
  return Unsupported(op, ": reduction '", r, "' is not supported");
}

template <typename T>
void ApplyScatter(T* dst, const T* updates, const std::vector<int64_t>& offsets, int64_t slice, ScatterReduction red) {
  for (size_t i = 0; i < offsets.size(); ++i) {
    T* d = dst + offsets[i];
    const T* u = updates + static_cast<int64_t>(i) * slice;
    for (int64_t k = 0; k < slice; ++k) {
      switch (red) {
        case ScatterReduction::kNone: d[k] = u[k]; break;
        case ScatterReduction::kAdd: d[k] = static_cast<T>(d[k] + u[k]); break;
        case ScatterReduction::kMul: d[k] = static_cast<T>(d[k] * u[k]); break;
        case ScatterReduction::kMax: d[k] = std::max(d[k], u[k]); break;
        case ScatterReduction::kMin: d[k] = std::min(d[k], u[k]); break;
      }
    }
  }
}

// Runs the scatter on `out` (already a copy of data): typed when reducing,
// by element size otherwise.
Status ScatterInto(const char* op, Tensor& out, const Tensor& updates, const std::vector<int64_t>& offsets,
                   int64_t slice, ScatterReduction red) {
  if (red == ScatterReduction::kNone) {
    DispatchElementSize(DTypeSize(out.dtype()), [&](auto tag) {
      using U = decltype(tag);
      ApplyScatter(out.data<U>(), updates.data<U>(), offsets, slice, red);
    });
    return Status::Ok();
  }
  switch (out.dtype()) {
    case DType::kFloat32: ApplyScatter(out.data<float>(), updates.data<float>(), offsets, slice, red); break;
    case DType::kFloat64: ApplyScatter(out.data<double>(), updates.data<double>(), offsets, slice, red); break;
    case DType::kInt64: ApplyScatter(out.data<int64_t>(), updates.data<int64_t>(), offsets, slice, red); break;
    case DType::kInt32: ApplyScatter(out.data<int32_t>(), updates.data<int32_t>(), offsets, slice, red); break;
    default: return Unsupported(op, ": reduction on dtype ", DTypeName(out.dtype()), " is not supported");
  }
  return Status::Ok();
}

class ScatterElementsKernel final : public OpKernel {
 public:
  ScatterElementsKernel(int64_t axis, ScatterReduction red) : axis_(axis), red_(red) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* data = ctx.input(0);
    const Tensor* indices = ctx.input(1);
    const Tensor* updates = ctx.input(2);
    if (data == nullptr || indices == nullptr || updates == nullptr) {
      return InvalidArgument("ScatterElements: expects data, indices and updates");
    }
    if (data->rank() == 0) return InvalidArgument("ScatterElements: data must have rank >= 1");
    if (updates->dtype() != data->dtype() || updates->dims() != indices->dims()) {
      return InvalidArgument("ScatterElements: updates (", DTypeName(updates->dtype()), " ",
                             DimsToString(updates->dims()), ") must match indices' shape ",
                             DimsToString(indices->dims()), " and data's dtype ", DTypeName(data->dtype()));
    }
    KILN_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis("ScatterElements", axis_, data->rank()));
    KILN_RETURN_IF_ERROR(CheckElementsShapes("ScatterElements", *data, *indices, axis));
    KILN_ASSIGN_OR_RETURN(const std::vector<int64_t> idx,
                          ReadCheckedIndices("ScatterElements", *indices, data->dim(axis), axis));
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, data->dtype(), data->dims()));
    ParallelCopy(ctx.parallel(), out->raw_data(), data->raw_data(), data->byte_size());
    const std::vector<int64_t> offsets = ElementOffsets(data->dims(), indices->dims(), idx, axis);
    return ScatterInto("ScatterElements", *out, *updates, offsets, 1, red_);
  }

 private:
  int64_t axis_;
  ScatterReduction red_;
};

template <typename K>
StatusOr<std::unique_ptr<OpKernel>> CreateAxisKernel(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.GetInt("axis", 0));
  return std::unique_ptr<OpKernel>(new K(axis));
}

StatusOr<std::unique_ptr<OpKernel>> CreateScatterElements(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(ScatterReduction red, ParseReduction(node, "ScatterElements"));
  return std::unique_ptr<OpKernel>(new ScatterElementsKernel(axis, red));
}

// ----------------------------------------------------- GatherND, ScatterND

// The flat data offset of every index tuple of `indices` (last dim = tuple
// length m) with `batch_dims` leading batch dims; slice = elements per tuple.
struct NdPlan {
  std::vector<int64_t> offsets;
  int64_t slice = 1;
  Dims out_dims;  // GatherND's output shape (= ScatterND's updates shape)
};

StatusOr<NdPlan> PlanNd(const char* op, const Tensor& data, const Tensor& indices, int64_t batch_dims) {
  const int64_t r = data.rank();
  const int64_t q = indices.rank();
  if (r < 1 || q < 1) return InvalidArgument(op, ": data and indices must have rank >= 1");
  if (batch_dims < 0 || batch_dims >= std::min(r, q)) {
    return InvalidArgument(op, ": batch_dims ", batch_dims, " must be in [0, min(rank(data), rank(indices)))");
  }
  const int64_t m = indices.dim(q - 1);
  if (m < 1 || m > r - batch_dims) {
    return InvalidArgument(op, ": index tuples of length ", m, " do not fit data ", DimsToString(data.dims()),
                           " with batch_dims ", batch_dims);
  }
  for (int64_t i = 0; i < batch_dims; ++i) {
    if (data.dim(i) != indices.dim(i)) {
      return InvalidArgument(op, ": batch dim ", i, " differs between data ", DimsToString(data.dims()),
                             " and indices ", DimsToString(indices.dims()));
    }
  }
  KILN_ASSIGN_OR_RETURN(const std::vector<int64_t> raw,
                        ReadIndexVector(op, "indices", indices.Reshaped({indices.num_elements()})));
  const Dims& dd = data.dims();
  const std::vector<int64_t> strides = ContiguousStrides(dd);
  const size_t b = static_cast<size_t>(batch_dims);
  NdPlan plan;
  plan.slice = DimProduct(dd, b + static_cast<size_t>(m), dd.size());
  const int64_t batch_size = DimProduct(dd, b, dd.size());  // data elements per batch
  const int64_t tuples = m == 0 ? 0 : indices.num_elements() / m;
  const int64_t tuples_per_batch = DimProduct(indices.dims(), b, static_cast<size_t>(q - 1));
  plan.offsets.resize(static_cast<size_t>(tuples));
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t off = (tuples_per_batch == 0 ? 0 : t / tuples_per_batch) * batch_size;
    for (int64_t k = 0; k < m; ++k) {
      const int64_t dim = dd[b + static_cast<size_t>(k)];
      int64_t v = raw[static_cast<size_t>(t * m + k)];
      if (v < -dim || v >= dim) {
        return OutOfRange(op, ": index ", v, " (tuple ", t, ", component ", k, ") is out of range for axis ",
                          batch_dims + k, " of size ", dim);
      }
      if (v < 0) v += dim;
      off += v * strides[b + static_cast<size_t>(k)];
    }
    plan.offsets[static_cast<size_t>(t)] = off;
  }
  plan.out_dims.assign(indices.dims().begin(), indices.dims().end() - 1);
  plan.out_dims.insert(plan.out_dims.end(), dd.begin() + batch_dims + m, dd.end());
  return plan;
}

class GatherNDKernel final : public OpKernel {
 public:
  explicit GatherNDKernel(int64_t batch_dims) : batch_dims_(batch_dims) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* data = ctx.input(0);
    const Tensor* indices = ctx.input(1);
    if (data == nullptr || indices == nullptr) return InvalidArgument("GatherND: expects data and indices");
    KILN_ASSIGN_OR_RETURN(const NdPlan plan, PlanNd("GatherND", *data, *indices, batch_dims_));
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, data->dtype(), plan.out_dims));
    if (out->num_elements() == 0) return Status::Ok();
    const int64_t chunk = plan.slice * static_cast<int64_t>(DTypeSize(data->dtype()));
    const char* src = static_cast<const char*>(data->raw_data());
    char* dst = static_cast<char*>(out->raw_data());
    ctx.parallel().For(static_cast<int64_t>(plan.offsets.size()), std::max<int64_t>(1, kCopyGrainBytes / chunk),
                       [&](int64_t begin, int64_t end) {
                         for (int64_t t = begin; t < end; ++t) {
                           std::memcpy(dst + t * chunk,
                                       src + plan.offsets[static_cast<size_t>(t)] * (chunk / plan.slice),
                                       static_cast<size_t>(chunk));
                         }
                       });
    return Status::Ok();
  }

 private:
  int64_t batch_dims_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateGatherND(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t batch_dims, node.GetInt("batch_dims", 0));
  return std::unique_ptr<OpKernel>(new GatherNDKernel(batch_dims));
}

class ScatterNDKernel final : public OpKernel {
 public:
  explicit ScatterNDKernel(ScatterReduction red) : red_(red) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* data = ctx.input(0);
    const Tensor* indices = ctx.input(1);
    const Tensor* updates = ctx.input(2);
    if (data == nullptr || indices == nullptr || updates == nullptr) {
      return InvalidArgument("ScatterND: expects data, indices and updates");
    }
    KILN_ASSIGN_OR_RETURN(const NdPlan plan, PlanNd("ScatterND", *data, *indices, 0));
    if (updates->dtype() != data->dtype() || updates->dims() != plan.out_dims) {
      return InvalidArgument("ScatterND: updates are ", DTypeName(updates->dtype()), " ", DimsToString(updates->dims()),
                             ", expected ", DTypeName(data->dtype()), " ", DimsToString(plan.out_dims));
    }
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, data->dtype(), data->dims()));
    ParallelCopy(ctx.parallel(), out->raw_data(), data->raw_data(), data->byte_size());
    return ScatterInto("ScatterND", *out, *updates, plan.offsets, plan.slice, red_);
  }

 private:
  ScatterReduction red_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateScatterND(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(ScatterReduction red, ParseReduction(node, "ScatterND"));
  return std::unique_ptr<OpKernel>(new ScatterNDKernel(red));
}

}  // namespace

void RegisterGatherOps(KernelRegistry& r) {
  r.Register(KernelDef{"Gather", "", 1, kNoMaxOpset, CreateGather});
  r.Register(KernelDef{"GatherElements", "", 11, kNoMaxOpset, CreateAxisKernel<GatherElementsKernel>});
  r.Register(KernelDef{"GatherND", "", 11, kNoMaxOpset, CreateGatherND});
  r.Register(KernelDef{"ScatterElements", "", 11, kNoMaxOpset, CreateScatterElements});
  r.Register(KernelDef{"Scatter", "", 9, 10, CreateScatterElements});
  r.Register(KernelDef{"ScatterND", "", 11, kNoMaxOpset, CreateScatterND});
}

}  // namespace kiln::kernels
