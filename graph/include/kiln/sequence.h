// ONNX sequences (seq(tensor)) and optionals at kiln's boundary. A Tensor of
// dtype DType::kSequence carries either a sequence of tensors or the absent
// value of an optional ("None"), so that Session::Run's NamedTensor inputs
// and outputs serve these ONNX types without a second API. An optional that
// holds something is just that thing: a tensor or a sequence.
//
// A sequence is immutable once made: ops that insert or erase make a new
// sequence sharing the elements they keep. Copies (Tensor::Clone, copying
// the Tensor object) share the elements too.
#pragma once

#include <vector>

#include "kiln/export.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

// A sequence of `elements`, each of dtype `element_dtype` (their dims may
// differ; none may be a sequence). Elements that borrow memory
// (Tensor::is_view) are copied; the others are shared. Fails on an
// element of another dtype, an undefined element dtype, or when memory runs
// out for a copy.
KILN_API StatusOr<Tensor> MakeSequence(DType element_dtype, std::vector<Tensor> elements);

// The absent value of an ONNX optional.
KILN_API Tensor NoneOptional();

// True for a sequence made by MakeSequence (or a copy or view of one).
KILN_API bool IsSequence(const Tensor& t);
// True for NoneOptional() (or a copy of it).
KILN_API bool IsNoneOptional(const Tensor& t);

// The elements of sequence `t`, or null when `t` is not a sequence. Valid as
// long as `t`, or the sequence it views, lives.
KILN_API const std::vector<Tensor>* SequenceElements(const Tensor& t);
// The element dtype of sequence `t`; kUndefined when `t` is not a sequence.
KILN_API DType SequenceElementDType(const Tensor& t);

// A sequence or None of its own from `t` (which may be a view of one),
// sharing the elements; what Tensor::Clone does for dtype kSequence.
KILN_API StatusOr<Tensor> CopySequence(const Tensor& t);

}  // namespace kiln
