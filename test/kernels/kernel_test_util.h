// Helpers to run one kernel on hand-made tensors, without a model or a
// session: build a node, create its kernel from the default registry, run it
// serially with plain allocation.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "kernels/kernel.h"
#include "kiln/tensor.h"

namespace kiln::testing {

template <typename T>
Tensor MakeTensor(const Dims& dims, const std::vector<T>& values) {
  auto t = Tensor::Allocate(DTypeOf<T>(), dims);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(static_cast<size_t>(t->num_elements()), values.size()) << "MakeTensor: value count != shape";
  T* out = t->template data<T>();
  for (size_t i = 0; i < values.size(); ++i) out[i] = values[i];
  return std::move(t).value();
}

template <typename T>
std::vector<T> ToVector(const Tensor& t) {
  const T* p = t.data<T>();
  return std::vector<T>(p, p + t.num_elements());
}

inline graph::Attribute IntAttr(int64_t v) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kInt;
  a.i = v;
  return a;
}
inline graph::Attribute FloatAttr(float v) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kFloat;
  a.f = v;
  return a;
}
inline graph::Attribute StringAttr(std::string v) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kString;
  a.s = std::move(v);
  return a;
}
inline graph::Attribute IntsAttr(std::vector<int64_t> v) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}
inline graph::Attribute FloatsAttr(std::vector<float> v) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kFloats;
  a.floats = std::move(v);
  return a;
}
inline graph::Attribute TensorAttr(Tensor t) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kTensor;
  a.t = std::move(t);
  return a;
}

class PlainAllocator final : public kernels::OutputAllocator {
 public:
  StatusOr<Tensor> AllocateOutput(int, DType dtype, const Dims& dims) override {
    return Tensor::Allocate(dtype, dims);
  }
};

// Runs `node` on `inputs` (a null entry is an omitted optional input) with
// `runner` as its thread pool and returns its `num_outputs` outputs.
inline StatusOr<std::vector<Tensor>> RunNode(const graph::Node& node, const std::vector<const Tensor*>& inputs,
                                             const kernels::ParallelRunner& runner, int num_outputs = 1) {
  KILN_ASSIGN_OR_RETURN(auto kernel, kernels::DefaultKernelRegistry().Create(node));
  std::vector<Tensor> outputs(static_cast<size_t>(num_outputs));
  PlainAllocator allocator;
  kernels::KernelContext ctx(inputs, outputs, allocator, runner);
  KILN_RETURN_IF_ERROR(kernel->Compute(ctx));
  return outputs;
}

// Runs `op_type` at `opset` on `inputs`, serially.
inline StatusOr<std::vector<Tensor>> RunOp(const std::string& op_type, const std::vector<const Tensor*>& inputs,
                                           std::map<std::string, graph::Attribute> attributes = {},
                                           int opset = 17, int num_outputs = 1) {
  graph::Node node;
  node.name = "test_" + op_type;
  node.op_type = op_type;
  node.opset = opset;
  node.attributes = std::move(attributes);
  return RunNode(node, inputs, kernels::SerialRunner(), num_outputs);
}

// Element-wise comparison with ONNX's default test tolerances.
inline void ExpectNear(const std::vector<float>& actual, const std::vector<float>& expected, float rtol = 1e-3f,
                       float atol = 1e-6f) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(expected[i])) {
      EXPECT_TRUE(std::isnan(actual[i])) << "at " << i;
      continue;
    }
    EXPECT_NEAR(actual[i], expected[i], atol + rtol * std::fabs(expected[i])) << "at " << i;
  }
}

}  // namespace kiln::testing
