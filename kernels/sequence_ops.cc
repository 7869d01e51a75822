// The sequence ops (ONNX opset 11+) and the optional ops (opset 15+). A
// sequence is immutable (kiln/sequence.h): every op that changes one makes
// a new sequence sharing the elements it keeps, so inserting costs a copy
// of the element pointers, not of their data. Tensors entering a sequence
// are copied into memory of their own: a kernel's inputs may live in the
// interpreter's planned buffers, which later nodes overwrite.
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "graph/onnx_dtype.h"
#include "kernels/axis.h"
#include "kernels/families.h"
#include "kernels/kernel.h"
#include "kernels/tensor_ops_common.h"
#include "kiln/sequence.h"

namespace kiln::kernels {
namespace {

// Input `i` as a sequence; an error naming `op` when it is absent or not one.
StatusOr<const std::vector<Tensor>*> SequenceInput(const KernelContext& ctx, const char* op, int i) {
  const Tensor* t = ctx.input(i);
  if (t == nullptr) return InvalidArgument(op, ": input ", i, " (a sequence) is missing");
  const std::vector<Tensor>* elements = SequenceElements(*t);
  if (elements == nullptr) {
    return InvalidArgument(
        op, ": input ", i, " must be a sequence, got ",
        IsNoneOptional(*t) ? std::string("an empty optional") : std::string("a ") + DTypeName(t->dtype()) + " tensor");
  }
  return elements;
}

// A tensor input that is a tensor (not a sequence or None).
StatusOr<const Tensor*> TensorInput(const KernelContext& ctx, const char* op, int i) {
  const Tensor* t = ctx.input(i);
  if (t == nullptr) return InvalidArgument(op, ": input ", i, " is missing");
  if (t->dtype() == DType::kSequence) return InvalidArgument(op, ": input ", i, " must be a tensor, got a sequence");
  return t;
}

// `position` normalised into [0, size) (or [0, size] when `end_allowed`,
// SequenceInsert's range), from the optional scalar input `i`;
// `default_position` when the input is absent.
StatusOr<int64_t> ReadPosition(const KernelContext& ctx, const char* op, int i, int64_t size, bool end_allowed,
                               int64_t default_position) {
  const Tensor* t = ctx.input(i);
  if (t == nullptr) return default_position;
  // The spec asks for a scalar; exporters (and ONNX's own tests) also
  // give a 1-element 1-D tensor, which ONNX's reference accepts.
  if (t->rank() > 1) {
    return InvalidArgument(op, ": position must be a scalar, got shape ", DimsToString(t->dims()));
  }
  KILN_ASSIGN_OR_RETURN(int64_t position, ReadIndexScalar(op, "position", *t));
  const int64_t upper = end_allowed ? size : size - 1;
  if (position < -size || position > upper) {
    return InvalidArgument(op, ": position ", position, " is out of range [", -size, ", ", upper,
                           "] for a sequence of ", size, " tensors");
  }
  return position < 0 ? position + size : position;
}

// A copy of `t` in memory of its own, admitted by the run's allocation
// hook first.
StatusOr<Tensor> OwnedCopy(const KernelContext& ctx, const Tensor& t) {
  KILN_RETURN_IF_ERROR(ctx.AdmitAllocation(t.byte_size()));
  return t.Clone();
}

DType SequenceDType(const KernelContext& ctx, int i) { return SequenceElementDType(*ctx.input(i)); }

Status CheckElementDType(const char* op, DType sequence_dtype, const Tensor& t) {
  if (t.dtype() != sequence_dtype) {
    return InvalidArgument(op, ": the tensor is ", DTypeName(t.dtype()), " but the sequence holds ",
                           DTypeName(sequence_dtype), " tensors");
  }
  return Status::Ok();
}

class SequenceEmptyKernel final : public OpKernel {
 public:
  explicit SequenceEmptyKernel(DType dtype) : dtype_(dtype) {}
  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(Tensor sequence, MakeSequence(dtype_, {}));
    return ctx.SetOutput(0, std::move(sequence));
  }

 private:
  DType dtype_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateSequenceEmpty(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t code, node.GetInt("dtype", 1));
  std::optional<DType> dtype = graph::DTypeFromOnnxCode(code);
  if (!dtype) return Unsupported("SequenceEmpty: dtype ", code, " is not a tensor element type kiln supports");
  return std::unique_ptr<OpKernel>(new SequenceEmptyKernel(*dtype));
}

class SequenceConstructKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    if (ctx.num_inputs() == 0) return InvalidArgument("SequenceConstruct: needs at least one tensor");
    std::vector<Tensor> elements;
    DType dtype = DType::kUndefined;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      KILN_ASSIGN_OR_RETURN(const Tensor* t, TensorInput(ctx, "SequenceConstruct", i));
      if (i == 0) dtype = t->dtype();
      if (t->dtype() != dtype) {
        return InvalidArgument("SequenceConstruct: input ", i, " is ", DTypeName(t->dtype()), " but input 0 is ",
                               DTypeName(dtype));
      }
      KILN_ASSIGN_OR_RETURN(Tensor copy, OwnedCopy(ctx, *t));
      elements.push_back(std::move(copy));
    }
    KILN_ASSIGN_OR_RETURN(Tensor sequence, MakeSequence(dtype, std::move(elements)));
    return ctx.SetOutput(0, std::move(sequence));
  }
};

class SequenceInsertKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* in, SequenceInput(ctx, "SequenceInsert", 0));
    KILN_ASSIGN_OR_RETURN(const Tensor* t, TensorInput(ctx, "SequenceInsert", 1));
    const DType dtype = SequenceDType(ctx, 0);
    KILN_RETURN_IF_ERROR(CheckElementDType("SequenceInsert", dtype, *t));
    const auto size = static_cast<int64_t>(in->size());
    KILN_ASSIGN_OR_RETURN(int64_t position, ReadPosition(ctx, "SequenceInsert", 2, size, true, size));
    KILN_ASSIGN_OR_RETURN(Tensor copy, OwnedCopy(ctx, *t));
    std::vector<Tensor> elements;
    elements.reserve(in->size() + 1);
    elements.insert(elements.end(), in->begin(), in->begin() + position);
    elements.push_back(std::move(copy));
    elements.insert(elements.end(), in->begin() + position, in->end());
    KILN_ASSIGN_OR_RETURN(Tensor sequence, MakeSequence(dtype, std::move(elements)));
    return ctx.SetOutput(0, std::move(sequence));
  }
};

class SequenceEraseKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* in, SequenceInput(ctx, "SequenceErase", 0));
    const auto size = static_cast<int64_t>(in->size());
    if (size == 0) return InvalidArgument("SequenceErase: the sequence is empty");
    KILN_ASSIGN_OR_RETURN(int64_t position, ReadPosition(ctx, "SequenceErase", 1, size, false, size - 1));
    std::vector<Tensor> elements = *in;
    elements.erase(elements.begin() + position);
    KILN_ASSIGN_OR_RETURN(Tensor sequence, MakeSequence(SequenceDType(ctx, 0), std::move(elements)));
    return ctx.SetOutput(0, std::move(sequence));
  }
};

class SequenceAtKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* in, SequenceInput(ctx, "SequenceAt", 0));
    if (ctx.input(1) == nullptr) return InvalidArgument("SequenceAt: position is missing");
    const auto size = static_cast<int64_t>(in->size());
    KILN_ASSIGN_OR_RETURN(int64_t position, ReadPosition(ctx, "SequenceAt", 1, size, false, 0));
    const Tensor& element = (*in)[static_cast<size_t>(position)];
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, element.dtype(), element.dims()));
    ParallelCopy(ctx.parallel(), out->raw_data(), element.raw_data(), element.byte_size());
    return Status::Ok();
  }
};

class SequenceLengthKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* in, SequenceInput(ctx, "SequenceLength", 0));
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kInt64, {}));
    *out->data<int64_t>() = static_cast<int64_t>(in->size());
    return Status::Ok();
  }
};

// Copies `rows` rows of `row_bytes` from `src` (rows `src_stride` bytes
// apart) to `dst` (`dst_stride` apart).
void CopyRows(char* dst, size_t dst_stride, const char* src, size_t src_stride, int64_t rows, size_t row_bytes) {
  if (row_bytes == 0) return;
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst + static_cast<size_t>(r) * dst_stride, src + static_cast<size_t>(r) * src_stride, row_bytes);
  }
}

class ConcatFromSequenceKernel final : public OpKernel {
 public:
  ConcatFromSequenceKernel(int64_t axis, bool new_axis) : axis_(axis), new_axis_(new_axis) {}

  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* in, SequenceInput(ctx, "ConcatFromSequence", 0));
    if (in->empty()) return InvalidArgument("ConcatFromSequence: the sequence is empty");
    const Tensor& first = in->front();
    const int64_t rank = first.rank();
    // With new_axis the elements are stacked along an axis inserted at
    // `axis`, which may then also be `rank` (after the last).
    const int64_t out_rank = new_axis_ ? rank + 1 : rank;
    if (out_rank == 0) return InvalidArgument("ConcatFromSequence: cannot concatenate scalars without new_axis");
    KILN_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis("ConcatFromSequence", axis_, out_rank));
    Dims out_dims = first.dims();
    if (new_axis_) {
      out_dims.insert(out_dims.begin() + axis, 0);
    } else {
      out_dims[static_cast<size_t>(axis)] = 0;
    }
    for (size_t i = 0; i < in->size(); ++i) {
      const Tensor& t = (*in)[i];
      bool fits = t.rank() == rank;
      for (int64_t d = 0; fits && d < rank; ++d) {
        fits = (!new_axis_ && d == axis) || t.dim(d) == first.dim(d);
      }
      if (!fits) {
        return InvalidArgument(
            "ConcatFromSequence: element ", i, " has shape ", DimsToString(t.dims()), " but element 0 has ",
            DimsToString(first.dims()),
            new_axis_ ? "; stacked elements must have equal shapes" : "; they may differ only along the axis");
      }
      out_dims[static_cast<size_t>(axis)] += new_axis_ ? 1 : t.dim(axis);
    }
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, first.dtype(), out_dims));
    // Every element is [outer, its length along the axis, inner].
    const int64_t outer = DimProduct(out_dims, 0, static_cast<size_t>(axis));
    const size_t inner_bytes =
        static_cast<size_t>(DimProduct(out_dims, static_cast<size_t>(axis) + 1, out_dims.size())) *
        DTypeSize(first.dtype());
    const size_t out_row = static_cast<size_t>(out_dims[static_cast<size_t>(axis)]) * inner_bytes;
    size_t offset = 0;
    for (const Tensor& t : *in) {
      const size_t row = static_cast<size_t>(new_axis_ ? 1 : t.dim(axis)) * inner_bytes;
      CopyRows(static_cast<char*>(out->raw_data()) + offset, out_row, static_cast<const char*>(t.raw_data()), row,
               outer, row);
      offset += row;
    }
    return Status::Ok();
  }

 private:
  int64_t axis_;
  bool new_axis_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateConcatFromSequence(const graph::Node& node) {
  if (node.FindAttribute("axis") == nullptr) return InvalidModel("ConcatFromSequence: attribute 'axis' is required");
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int64_t new_axis, node.GetInt("new_axis", 0));
  if (new_axis != 0 && new_axis != 1) {
    return InvalidModel("ConcatFromSequence: new_axis must be 0 or 1, got ", new_axis);
  }
  return std::unique_ptr<OpKernel>(new ConcatFromSequenceKernel(axis, new_axis == 1));
}

class SplitToSequenceKernel final : public OpKernel {
 public:
  SplitToSequenceKernel(int64_t axis, bool keepdims) : axis_(axis), keepdims_(keepdims) {}

  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(const Tensor* in, TensorInput(ctx, "SplitToSequence", 0));
    if (in->rank() == 0) return InvalidArgument("SplitToSequence: cannot split a scalar");
    KILN_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis("SplitToSequence", axis_, in->rank()));
    const int64_t length = in->dim(axis);
    std::vector<int64_t> lengths;
    const Tensor* split = ctx.input(1);
    if (split == nullptr) {
      lengths.assign(static_cast<size_t>(length), 1);
    } else if (split->rank() == 0) {
      KILN_ASSIGN_OR_RETURN(int64_t chunk, ReadIndexScalar("SplitToSequence", "split", *split));
      if (chunk <= 0) return InvalidArgument("SplitToSequence: split must be positive, got ", chunk);
      // Equal chunks; the last is smaller when the length is no multiple.
      for (int64_t start = 0; start < length; start += chunk) lengths.push_back(std::min(chunk, length - start));
    } else {
      KILN_ASSIGN_OR_RETURN(lengths, ReadIndexVector("SplitToSequence", "split", *split));
      int64_t total = 0;
      for (int64_t l : lengths) {
        if (l < 0) return InvalidArgument("SplitToSequence: split lengths must not be negative, got ", l);
        total += l;
      }
      if (total != length) {
        return InvalidArgument("SplitToSequence: split lengths add up to ", total, " but axis ", axis, " has length ",
                               length);
      }
    }
    // keepdims applies only when split is absent (chunks of length 1).
    const bool drop_axis = split == nullptr && !keepdims_;
    const int64_t outer = DimProduct(in->dims(), 0, static_cast<size_t>(axis));
    const size_t inner_bytes =
        static_cast<size_t>(DimProduct(in->dims(), static_cast<size_t>(axis) + 1, in->dims().size())) *
        DTypeSize(in->dtype());
    const size_t in_row = static_cast<size_t>(length) * inner_bytes;
    KILN_RETURN_IF_ERROR(ctx.AdmitAllocation(in->byte_size()));
    std::vector<Tensor> elements;
    elements.reserve(lengths.size());
    int64_t start = 0;
    for (int64_t l : lengths) {
      Dims dims = in->dims();
      if (drop_axis) {
        dims.erase(dims.begin() + axis);
      } else {
        dims[static_cast<size_t>(axis)] = l;
      }
      KILN_ASSIGN_OR_RETURN(Tensor piece, Tensor::Allocate(in->dtype(), std::move(dims)));
      const size_t row = static_cast<size_t>(l) * inner_bytes;
      CopyRows(static_cast<char*>(piece.raw_data()), row,
               static_cast<const char*>(in->raw_data()) + static_cast<size_t>(start) * inner_bytes, in_row, outer, row);
      elements.push_back(std::move(piece));
      start += l;
    }
    KILN_ASSIGN_OR_RETURN(Tensor sequence, MakeSequence(in->dtype(), std::move(elements)));
    return ctx.SetOutput(0, std::move(sequence));
  }

 private:
  int64_t axis_;
  bool keepdims_;
};

StatusOr<std::unique_ptr<OpKernel>> CreateSplitToSequence(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int64_t keepdims, node.GetInt("keepdims", 1));
  if (keepdims != 0 && keepdims != 1) return InvalidModel("SplitToSequence: keepdims must be 0 or 1, got ", keepdims);
  return std::unique_ptr<OpKernel>(new SplitToSequenceKernel(axis, keepdims == 1));
}

// Optional(x) wraps x; with no input it makes None (its `type` attribute
// names the type; the loader refuses type-valued attributes, so that form
// never reaches here).
class OptionalKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    if (in == nullptr) return ctx.SetOutput(0, NoneOptional());
    if (in->dtype() == DType::kSequence) {
      KILN_ASSIGN_OR_RETURN(Tensor copy, CopySequence(*in));
      return ctx.SetOutput(0, std::move(copy));
    }
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, in->dtype(), in->dims()));
    ParallelCopy(ctx.parallel(), out->raw_data(), in->raw_data(), in->byte_size());
    return Status::Ok();
  }
};

class OptionalHasElementKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    // Opset 18 lets the input itself be omitted: that is None too.
    const Tensor* in = ctx.input(0);
    const bool has = in != nullptr && in->defined() && !IsNoneOptional(*in);
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kBool, {}));
    *out->data<bool>() = has;
    return Status::Ok();
  }
};

class OptionalGetElementKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    if (in == nullptr || IsNoneOptional(*in)) {
      return InvalidArgument("OptionalGetElement: the optional is empty");
    }
    if (in->dtype() == DType::kSequence) {
      KILN_ASSIGN_OR_RETURN(Tensor copy, CopySequence(*in));
      return ctx.SetOutput(0, std::move(copy));
    }
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, in->dtype(), in->dims()));
    ParallelCopy(ctx.parallel(), out->raw_data(), in->raw_data(), in->byte_size());
    return Status::Ok();
  }
};

}  // namespace

void RegisterSequenceKernels(KernelRegistry& r) {
  r.Register(KernelDef{"SequenceEmpty", "", 11, kNoMaxOpset, CreateSequenceEmpty});
  r.Register(KernelDef{"SequenceConstruct", "", 11, kNoMaxOpset, MakeFactory<SequenceConstructKernel>()});
  r.Register(KernelDef{"SequenceInsert", "", 11, kNoMaxOpset, MakeFactory<SequenceInsertKernel>()});
  r.Register(KernelDef{"SequenceErase", "", 11, kNoMaxOpset, MakeFactory<SequenceEraseKernel>()});
  r.Register(KernelDef{"SequenceAt", "", 11, kNoMaxOpset, MakeFactory<SequenceAtKernel>()});
  r.Register(KernelDef{"SequenceLength", "", 11, kNoMaxOpset, MakeFactory<SequenceLengthKernel>()});
  r.Register(KernelDef{"ConcatFromSequence", "", 11, kNoMaxOpset, CreateConcatFromSequence});
  r.Register(KernelDef{"SplitToSequence", "", 11, kNoMaxOpset, CreateSplitToSequence});
  r.Register(KernelDef{"Optional", "", 15, kNoMaxOpset, MakeFactory<OptionalKernel>()});
  r.Register(KernelDef{"OptionalHasElement", "", 15, kNoMaxOpset, MakeFactory<OptionalHasElementKernel>()});
  r.Register(KernelDef{"OptionalGetElement", "", 15, kNoMaxOpset, MakeFactory<OptionalGetElementKernel>()});
}

}  // namespace kiln::kernels
