#include "kiln/sequence.h"

#include <memory>
#include <utility>

namespace kiln {
namespace {

// What the data pointer of a kSequence tensor points to. Only this file
// makes one, and Tensor::Allocate refuses kSequence, so a kSequence tensor
// with data always points to one of these.
struct SequenceData {
  DType element_dtype = DType::kUndefined;
  std::vector<Tensor> elements;
};

const SequenceData* DataOf(const Tensor& t) {
  if (t.dtype() != DType::kSequence || t.raw_data() == nullptr) return nullptr;
  return static_cast<const SequenceData*>(t.raw_data());
}

Tensor Box(DType element_dtype, std::vector<Tensor> elements) {
  auto data = std::make_shared<SequenceData>();
  data->element_dtype = element_dtype;
  data->elements = std::move(elements);
  void* raw = data.get();
  return Tensor::Shared(DType::kSequence, {}, std::move(data), raw);
}

}  // namespace

StatusOr<Tensor> MakeSequence(DType element_dtype, std::vector<Tensor> elements) {
  if (element_dtype == DType::kUndefined || element_dtype == DType::kSequence) {
    return InvalidArgument("a sequence's element dtype must be a tensor element type, not ", DTypeName(element_dtype));
  }
  for (size_t i = 0; i < elements.size(); ++i) {
    Tensor& e = elements[i];
    if (e.dtype() != element_dtype) {
      return InvalidArgument("sequence element ", i, " is ", DTypeName(e.dtype()), " in a sequence of ",
                             DTypeName(element_dtype));
    }
    if (e.is_view()) {
      KILN_ASSIGN_OR_RETURN(e, e.Clone());
    }
  }
  return Box(element_dtype, std::move(elements));
}

Tensor NoneOptional() { return Tensor::View(DType::kSequence, {}, nullptr); }

bool IsSequence(const Tensor& t) { return DataOf(t) != nullptr; }

bool IsNoneOptional(const Tensor& t) { return t.dtype() == DType::kSequence && t.raw_data() == nullptr; }

const std::vector<Tensor>* SequenceElements(const Tensor& t) {
  const SequenceData* data = DataOf(t);
  return data != nullptr ? &data->elements : nullptr;
}

DType SequenceElementDType(const Tensor& t) {
  const SequenceData* data = DataOf(t);
  return data != nullptr ? data->element_dtype : DType::kUndefined;
}

StatusOr<Tensor> CopySequence(const Tensor& t) {
  if (IsNoneOptional(t)) return NoneOptional();
  const SequenceData* data = DataOf(t);
  if (data == nullptr) return InvalidArgument("not a sequence: a ", DTypeName(t.dtype()), " tensor");
  return Box(data->element_dtype, data->elements);
}

}  // namespace kiln
