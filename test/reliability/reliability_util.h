// Shared pieces of the reliability tests (concurrency, fault injection,
// long runs): a small model with two JIT regions and a symbolic batch dim,
// reference outputs, a tolerance check, and a watchdog so that a hang fails
// the test instead of stalling until Bazel's timeout.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kiln/session.h"
#include "test/model_builder.h"
#include "test/tensors.h"
#include "test/tolerance.h"

namespace kiln::reliability {

// Inputs come from testing::RandomFloats in [-3, 3); compiled code may round
// differently from the interpreter's kernels (Erf, Sigmoid approximations),
// so outputs are compared with testing::AllCloseScaled at kRelTol (0 where
// a test wants bit equality).
using kiln::testing::AllCloseScaled;
using kiln::testing::RandomFloats;
constexpr double kRelTol = 1e-5;

// SiLU, a MatMul, then y = Erf(m) * m + 0.5 on [batch, width]: two
// elementwise regions (the MatMul splits them), so a run exercises
// interpreted nodes, both regions' dispatch and the memory plan. The MatMul
// output has two users and the tail matches no fusion pattern (GELU,
// epilogues), so graph passes leave both regions as they are.
inline std::shared_ptr<const Model> SiluMatMulErfModel(int64_t width = 64) {
  testing::OnnxModelBuilder b;
  std::vector<float> w(static_cast<size_t>(width * width));
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.37f * static_cast<float>(i)) * 0.1f;
  constexpr int32_t kFloat = onnx::TensorProto::FLOAT;
  b.Input("x", kFloat, {-1, width}, {"batch"})
      .FloatInit("w", {width, width}, w)
      .FloatInit("half", {}, {0.5f})
      .Output("y");
  b.Node("Sigmoid", {"x"}, {"s"});
  b.Node("Mul", {"x", "s"}, {"silu"});
  b.Node("MatMul", {"silu", "w"}, {"m"});
  b.Node("Erf", {"m"}, {"e"});
  b.Node("Mul", {"e", "m"}, {"g"});
  b.Node("Add", {"g", "half"}, {"y"});
  const std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

// Runs `session` on x = [batch, x.size() / batch] (a zero-copy view).
inline StatusOr<std::vector<float>> RunBatch(const Session& session, const std::vector<float>& x, int64_t batch) {
  const int64_t width = static_cast<int64_t>(x.size()) / batch;
  KILN_ASSIGN_OR_RETURN(
      std::vector<NamedTensor> out,
      session.Run({{"x", Tensor::View(DType::kFloat32, {batch, width}, const_cast<float*>(x.data()))}}));
  const Tensor& y = out[0].tensor;
  if (y.dims() != Dims{batch, width}) return Internal("output has shape ", DimsToString(y.dims()));
  return std::vector<float>(y.data<float>(), y.data<float>() + y.num_elements());
}

// Sanitizers slow everything down (tsan 5-15x), so hang timeouts are long:
// they only catch real deadlocks.
constexpr auto kHangTimeout = std::chrono::seconds(120);

// Runs `fn` on its own thread and waits at most `timeout`. A timeout means a
// hang: the thread cannot be cancelled and joining it would stall the test,
// so report and exit at once.
inline void RunWithWatchdog(const std::string& what, std::function<void()> fn,
                            std::chrono::milliseconds timeout = kHangTimeout) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  std::thread worker([fn = std::move(fn), done] {
    fn();
    done->set_value();
  });
  if (finished.wait_for(timeout) != std::future_status::ready) {
    std::fprintf(stderr, "HANG: %s did not finish within %lld ms\n", what.c_str(),
                 static_cast<long long>(timeout.count()));
    std::fflush(stderr);
    std::_Exit(1);
  }
  worker.join();
}

}  // namespace kiln::reliability
