// Reads ONNX models (protobuf, via libonnx's generated classes) into kiln's
// graph IR. The loader validates structure (names, references, attribute
// types against ONNX's schemas, tensor sizes, external-data paths) so that
// later stages can trust the graph; it does not require every op to have a
// kiln kernel (the session reports those).
#pragma once

#include <cstddef>
#include <string>

#include "graph/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::graph {

// The newest default-domain opset kiln accepts.
inline constexpr int kMaxSupportedOpset = 18;
// The oldest default-domain opset kiln accepts.
inline constexpr int kMinSupportedOpset = 7;
// How deeply If/Loop/Scan bodies may nest (a body of a body is depth 2).
// Real models nest two or three deep; the limit keeps the loader's and
// ONNX inference's recursion bounded on hostile models.
inline constexpr int kMaxSubgraphDepth = 16;

struct LoadOptions {
  // Folder that external data paths are resolved against; empty forbids
  // external data.
  std::string base_dir;
  // Run ONNX's shape inference to fill in intermediate value shapes.
  bool infer_shapes = true;
};

// Parses and converts a serialized ModelProto.
StatusOr<Graph> LoadOnnxModel(const void* data, size_t size, const LoadOptions& options);
// Reads `path` and loads it with base_dir = the file's folder.
StatusOr<Graph> LoadOnnxFile(const std::string& path);

// A tensor read from a serialized TensorProto (the ONNX test-data format).
struct NamedProtoTensor {
  std::string name;
  Tensor tensor;
};
StatusOr<NamedProtoTensor> LoadTensorProtoFile(const std::string& path);
// A value of kind `kind` read from the ONNX test-data format: a TensorProto
// for kTensor, a SequenceProto of tensors for kSequence, an OptionalProto
// for the optional kinds. Sequences and None come back as DType::kSequence
// tensors (kiln/sequence.h); `element_dtype` is an empty sequence's element
// dtype, which the file does not say.
StatusOr<NamedProtoTensor> LoadValueProtoFile(const std::string& path, ValueKind kind, DType element_dtype);

// Reads a whole file; NotFound when it cannot be opened.
StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace kiln::graph
