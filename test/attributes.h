// graph::Attribute values in one call each, for tests that build nodes by
// hand (graph passes, kernels, JIT code generation). Tests that build ONNX
// protobufs use OnnxModelBuilder's attribute setters instead.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"
#include "kiln/tensor.h"

namespace kiln::testing {

inline graph::Attribute IntAttr(int64_t v) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kInt;
  a.i = v;
  return a;
}
inline graph::Attribute IntsAttr(std::vector<int64_t> v) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}
inline graph::Attribute FloatAttr(float v) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kFloat;
  a.f = v;
  return a;
}
inline graph::Attribute FloatsAttr(std::vector<float> v) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kFloats;
  a.floats = std::move(v);
  return a;
}
inline graph::Attribute StringAttr(std::string v) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kString;
  a.s = std::move(v);
  return a;
}
inline graph::Attribute TensorAttr(Tensor t) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kTensor;
  a.t = std::move(t);
  return a;
}

}  // namespace kiln::testing
