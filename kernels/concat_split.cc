// Concat and Split. Both view the tensors as [outer, axis * inner] rows, so
// every copy moves the longest contiguous run there is: one row-chunk per
// (outer index, tensor).
#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "kernels/tensor_ops_common.h"

namespace kiln::kernels {
namespace {

// ----------------------------------------------------------------- Concat

class ConcatKernel final : public OpKernel {
 public:
  explicit ConcatKernel(int64_t axis) : axis_(axis) {}

  Status Compute(KernelContext& ctx) const override {
    const int n = ctx.num_inputs();
    if (n == 0 || ctx.input(0) == nullptr) return InvalidArgument("Concat: needs at least one input");
    const Tensor& first = *ctx.input(0);
    const int64_t rank = first.rank();
    if (rank == 0) return InvalidArgument("Concat: inputs must have rank >= 1, got a scalar");
    KILN_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis("Concat", axis_, rank));
    Dims out_dims = first.dims();
    out_dims[static_cast<size_t>(axis)] = 0;
    for (int i = 0; i < n; ++i) {
      const Tensor* t = ctx.input(i);
      if (t == nullptr) return InvalidArgument("Concat: input ", i, " is missing");
      if (t->dtype() != first.dtype()) {
        return InvalidArgument("Concat: input ", i, " is ", DTypeName(t->dtype()), " but input 0 is ",
                               DTypeName(first.dtype()));
      }
      bool compatible = t->rank() == rank;
      for (int64_t d = 0; compatible && d < rank; ++d) compatible = d == axis || t->dim(d) == first.dim(d);
      if (!compatible) {
        return InvalidArgument("Concat: input ", i, " has shape ", DimsToString(t->dims()),
                               ", which does not match input 0 ", DimsToString(first.dims()), " outside axis ", axis);
      }
      out_dims[static_cast<size_t>(axis)] += t->dim(axis);
    }
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, first.dtype(), out_dims));
    if (out->num_elements() == 0) return Status::Ok();

    const int64_t es = static_cast<int64_t>(DTypeSize(first.dtype()));
    const int64_t outer = DimProduct(out_dims, 0, static_cast<size_t>(axis));
    const int64_t inner = DimProduct(out_dims, static_cast<size_t>(axis) + 1, out_dims.size());
    std::vector<const char*> srcs(static_cast<size_t>(n));
    std::vector<int64_t> chunk(static_cast<size_t>(n));  // bytes per outer row of input i
    for (int i = 0; i < n; ++i) {
      srcs[static_cast<size_t>(i)] = static_cast<const char*>(ctx.input(i)->raw_data());
      chunk[static_cast<size_t>(i)] = ctx.input(i)->dim(axis) * inner * es;
    }
    const int64_t row_bytes = out_dims[static_cast<size_t>(axis)] * inner * es;
    char* dst = static_cast<char*>(out->raw_data());
    if (outer == 1) {
      // Concatenation along the outermost non-trivial axis: one big copy per
      // input, each split across threads.
      int64_t offset = 0;
      for (int i = 0; i < n; ++i) {
        ParallelCopy(ctx.parallel(), dst + offset, srcs[static_cast<size_t>(i)],
                     static_cast<size_t>(chunk[static_cast<size_t>(i)]));
        offset += chunk[static_cast<size_t>(i)];
      }
      return Status::Ok();
    }
    const int64_t grain = std::max<int64_t>(1, kCopyGrainBytes / row_bytes);
    ctx.parallel().For(outer, grain, [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) {
        char* d = dst + o * row_bytes;
        for (int i = 0; i < n; ++i) {
          const int64_t c = chunk[static_cast<size_t>(i)];
          std::memcpy(d, srcs[static_cast<size_t>(i)] + o * c, static_cast<size_t>(c));
          d += c;
        }
      }
    });
    return Status::Ok();
  }

 private:
  int64_t axis_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateConcat(const graph::Node& node) {
  // Concat-1 made the axis optional (default 1); from opset 4 it is required.
  if (node.opset >= 4 && node.FindAttribute("axis") == nullptr) {
    return InvalidArgument("Concat: attribute 'axis' is required");
  }
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.GetInt("axis", 1));
  if (axis < 0 && node.opset < 11) return InvalidArgument("Concat: negative axis needs opset 11");
  return std::unique_ptr<OpKernel>(new ConcatKernel(axis));
}

// ------------------------------------------------------------------ Split

class SplitKernel final : public OpKernel {
 public:
  // `split_attr` is set when the sizes come from an attribute (opset < 13);
  // `num_outputs_attr` > 0 when opset 18's num_outputs is given.
  SplitKernel(int opset, int64_t axis, std::optional<std::vector<int64_t>> split_attr, int64_t num_outputs_attr)
      : opset_(opset), axis_(axis), split_attr_(std::move(split_attr)), num_outputs_attr_(num_outputs_attr) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    if (in == nullptr) return InvalidArgument("Split: input is missing");
    if (in->rank() == 0) return InvalidArgument("Split: input must have rank >= 1");
    KILN_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis("Split", axis_, in->rank()));
    const int64_t dim = in->dim(axis);
    const int n = ctx.num_outputs();
    if (n < 1) return InvalidArgument("Split: needs at least one output");

    std::vector<int64_t> sizes;
    if (split_attr_ && !split_attr_->empty()) {
      sizes = *split_attr_;
    } else if (ctx.input(1) != nullptr) {  // opset 13+, and Split-1's optional input
      KILN_ASSIGN_OR_RETURN(sizes, ReadIndexVector("Split", "split", *ctx.input(1)));
    }
    if (!sizes.empty()) {
      if (static_cast<int>(sizes.size()) != n) {
        return InvalidArgument("Split: split has ", sizes.size(), " entries for ", n, " outputs");
      }
      int64_t sum = 0;
      for (int64_t s : sizes) {
        if (s < 0) return InvalidArgument("Split: negative split size ", s);
        sum += s;
      }
      if (sum != dim) {
        return InvalidArgument("Split: split sizes ", DimsToString(sizes), " sum to ", sum, " but axis ", axis, " of ",
                               DimsToString(in->dims()), " has size ", dim);
      }
    } else if (num_outputs_attr_ > 0) {
      // Opset 18: chunks of ceil(dim / n); the last one takes what is left.
      if (num_outputs_attr_ != n) {
        return InvalidArgument("Split: num_outputs is ", num_outputs_attr_, " but the node has ", n, " outputs");
      }
      const int64_t chunk = (dim + n - 1) / n;
      if (chunk * (n - 1) > dim) {
        return InvalidArgument("Split: axis of size ", dim, " cannot be split into ", n, " outputs");
      }
      sizes.assign(static_cast<size_t>(n), chunk);
      sizes.back() = dim - chunk * (n - 1);
    } else {
      if (dim % n != 0) {
        return InvalidArgument("Split: axis ", axis, " of ", DimsToString(in->dims()), " (size ", dim,
                               ") does not split evenly into ", n, " outputs");
      }
      sizes.assign(static_cast<size_t>(n), dim / n);
    }

    const size_t es = DTypeSize(in->dtype());
    const int64_t outer = DimProduct(in->dims(), 0, static_cast<size_t>(axis));
    const int64_t inner = DimProduct(in->dims(), static_cast<size_t>(axis) + 1, in->dims().size());
    std::vector<Tensor*> outs(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      Dims d = in->dims();
      d[static_cast<size_t>(axis)] = sizes[static_cast<size_t>(i)];
      KILN_ASSIGN_OR_RETURN(outs[static_cast<size_t>(i)], ctx.Output(i, in->dtype(), d));
    }
    // -- No failure past this point.
    const char* src = static_cast<const char*>(in->raw_data());
    int64_t offset = 0;  // elements into the axis
    for (int i = 0; i < n; ++i) {
      const int64_t size = sizes[static_cast<size_t>(i)];
      // Output i is the slice [offset, offset + size) of the axis: rows of
      // size * inner contiguous elements, dim * inner apart in the source.
      StridedCopy(ctx.parallel(), es, outs[static_cast<size_t>(i)]->raw_data(),
                  src + offset * inner * static_cast<int64_t>(es), {outer, size * inner}, {dim * inner, 1});
      offset += size;
    }
    return Status::Ok();
  }

 private:
  int opset_;
  int64_t axis_;
  std::optional<std::vector<int64_t>> split_attr_;
  int64_t num_outputs_attr_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateSplit(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.GetInt("axis", 0));
  if (axis < 0 && node.opset < 11) return InvalidArgument("Split: negative axis needs opset 11");
  std::optional<std::vector<int64_t>> split_attr;
  if (node.opset < 13) {
    KILN_ASSIGN_OR_RETURN(split_attr, node.GetInts("split"));
  }
  int64_t num_outputs = 0;
  if (node.opset >= 18) {
    KILN_ASSIGN_OR_RETURN(num_outputs, node.GetInt("num_outputs", 0));
    if (node.FindAttribute("num_outputs") != nullptr && num_outputs < 1) {
      return InvalidArgument("Split: num_outputs must be >= 1, got ", num_outputs);
    }
  }
  return std::unique_ptr<OpKernel>(new SplitKernel(node.opset, axis, std::move(split_attr), num_outputs));
}

}  // namespace

void RegisterConcatSplitOps(KernelRegistry& r) {
  r.Register(KernelDef{"Concat", "", 1, kNoMaxOpset, CreateConcat});
  r.Register(KernelDef{"Split", "", 1, kNoMaxOpset, CreateSplit});
}

}  // namespace kiln::kernels
