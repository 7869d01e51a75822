// A small model with one region of each of the two commonest kinds, for
// tests of what happens to compiled code across sessions (the code cache,
// the hot set): a GEMM region (MatMul + bias + Relu epilogue) and an
// elementwise region (Tanh * 0.5 + 1) after it, over a [16, 64] input.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "kiln/session.h"
#include "test/model_builder.h"

namespace kiln::testing {

// `weight_scale` sets the weight's values (so two models can share every
// shape and op and differ in their constants).
inline std::shared_ptr<const Model> MlpModel(float weight_scale = 0.01f) {
  OnnxModelBuilder b;
  std::vector<float> w(64 * 48), bias(48);
  for (size_t i = 0; i < w.size(); ++i) w[i] = weight_scale * static_cast<float>(static_cast<int>(i % 23) - 11);
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.1f * static_cast<float>(i % 7);
  b.Input("x", onnx::TensorProto::FLOAT, {16, 64}).FloatInit("w", {64, 48}, w).FloatInit("b", {48}, bias);
  b.FloatInit("half", {}, {0.5f}).FloatInit("one", {}, {1.0f}).Output("y");
  b.Node("MatMul", {"x", "w"}, {"mm"});
  b.Node("Add", {"mm", "b"}, {"biased"});
  b.Node("Relu", {"biased"}, {"h"});
  b.Node("Tanh", {"h"}, {"t"});
  b.Node("Mul", {"t", "half"}, {"s"});
  b.Node("Add", {"s", "one"}, {"y"});
  const std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

// The model's input "x".
inline Tensor MlpInput() {
  Tensor x = *Tensor::Allocate(DType::kFloat32, {16, 64});
  for (int64_t i = 0; i < x.num_elements(); ++i) x.data<float>()[i] = 0.03f * static_cast<float>(i % 37) - 0.5f;
  return x;
}

}  // namespace kiln::testing
