#include "runtime/value_kind_check.h"

#include <string>

#include "kiln/sequence.h"

namespace kiln::runtime {
namespace {

std::string Describe(const Tensor& t) {
  if (IsNoneOptional(t)) return "an empty optional";
  if (IsSequence(t)) return std::string("a sequence of ") + DTypeName(SequenceElementDType(t));
  return std::string("a ") + DTypeName(t.dtype()) + " tensor " + DimsToString(t.dims());
}

}  // namespace

Status CheckValueOfKind(const graph::Value& v, const Tensor& t) {
  const bool optional = v.kind == graph::ValueKind::kOptionalTensor || v.kind == graph::ValueKind::kOptionalSequence;
  const bool sequence = v.kind == graph::ValueKind::kSequence || v.kind == graph::ValueKind::kOptionalSequence;
  if (IsNoneOptional(t)) {
    if (optional) return Status::Ok();
  } else if (sequence == IsSequence(t)) {
    const DType dtype = sequence ? SequenceElementDType(t) : t.dtype();
    if (v.dtype == DType::kUndefined || dtype == v.dtype) return Status::Ok();
  }
  const std::string elements = v.dtype == DType::kUndefined ? "?" : DTypeName(v.dtype);
  return InvalidArgument("'", v.name, "' is declared a ", graph::ValueKindName(v.kind), " of ", elements,
                         " but receives ", Describe(t));
}

}  // namespace kiln::runtime
