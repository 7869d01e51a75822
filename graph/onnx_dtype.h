// The mapping between ONNX's TensorProto.DataType codes (as they appear in
// models and in attributes such as Cast's `to`) and kiln's DType.
#pragma once

#include <cstdint>
#include <optional>

#include "kiln/tensor.h"

namespace kiln::graph {

// kiln's dtype for an ONNX data-type code, or nullopt for the types kiln
// has no tensors of (string, float16, bfloat16, unsigned 16-64 bit,
// complex, unknown codes).
inline std::optional<DType> DTypeFromOnnxCode(int64_t code) {
  switch (code) {
    case 1: return DType::kFloat32;
    case 2: return DType::kUint8;
    case 3: return DType::kInt8;
    case 5: return DType::kInt16;
    case 6: return DType::kInt32;
    case 7: return DType::kInt64;
    case 9: return DType::kBool;
    case 11: return DType::kFloat64;
    default: return std::nullopt;
  }
}

}  // namespace kiln::graph
