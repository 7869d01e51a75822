// RunOptions: deadlines, cancellation from another thread, output
// selection, caller-bound outputs and the trace tag.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "kiln/session.h"
#include "test/model_builder.h"

namespace kiln {
namespace {

using testing::OnnxModelBuilder;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

std::shared_ptr<const Model> Load(const OnnxModelBuilder& b) {
  const std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

std::unique_ptr<Session> Create(std::shared_ptr<const Model> model, SessionOptions options = {}) {
  options.tier = TierPolicy::kInterpreter;
  auto session = Session::Create(std::move(model), options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  return session.ok() ? std::move(session).value() : nullptr;
}

// x [64, 256] through `layers` MatMuls with a [256, 256] weight, each
// followed by Tanh so nothing folds: long enough (tens of milliseconds and
// 2 * layers kernels) that a deadline or a cancellation lands inside it.
OnnxModelBuilder LongChain(int layers) {
  OnnxModelBuilder b;
  std::vector<float> w(256 * 256);
  for (size_t i = 0; i < w.size(); ++i) w[i] = ((i * 37) % 101) / 1010.0f - 0.05f;
  b.Input("x", kFloat, {64, 256}).FloatInit("w", {256, 256}, w).Output("y");
  std::string prev = "x";
  for (int l = 0; l < layers; ++l) {
    const std::string mm = "mm" + std::to_string(l), act = l + 1 == layers ? "y" : "t" + std::to_string(l);
    b.Node("MatMul", {prev, "w"}, {mm});
    b.Node("Tanh", {mm}, {act});
    prev = act;
  }
  return b;
}

Tensor Filled(const Dims& dims, float value) {
  Tensor t = *Tensor::Allocate(DType::kFloat32, dims);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = value;
  return t;
}

// "after N of M kernels" from a stopped run's message.
std::pair<int, int> UnitsDone(const Status& status) {
  int done = -1, total = -1;
  const auto at = status.message().find("after ");
  if (at != std::string::npos) std::sscanf(status.message().c_str() + at, "after %d of %d", &done, &total);
  return {done, total};
}

TEST(RunOptions, DeadlineStopsALongRunBetweenKernels) {
  auto session = Create(Load(LongChain(200)));
  ASSERT_NE(session, nullptr);
  const Tensor x = Filled({64, 256}, 0.5f);
  // A first run sets the frame and the output memory up; without it, a slow
  // build (ThreadSanitizer) could pass the deadline before the first kernel.
  ASSERT_TRUE(session->Run({{"x", x}}).ok());
  RunOptions options;
  options.deadline = RunOptions::DeadlineIn(2);
  auto out = session->Run({{"x", x}}, options);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kDeadlineExceeded) << out.status().ToString();
  const auto [done, total] = UnitsDone(out.status());
  EXPECT_GE(done, 1) << out.status().ToString();
  EXPECT_LT(done, total) << out.status().ToString();
  // The session still serves runs without a deadline.
  EXPECT_TRUE(session->Run({{"x", x}}).ok());
}

TEST(RunOptions, DeadlineAlreadyPassedRunsNothing) {
  auto session = Create(Load(LongChain(2)));
  ASSERT_NE(session, nullptr);
  RunOptions options;
  options.deadline = RunOptions::Clock::now() - std::chrono::milliseconds(1);
  auto out = session->Run({{"x", Filled({64, 256}, 0.5f)}}, options);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kDeadlineExceeded);
}

// The run's thread blocks in its first allocation until another thread
// has set the flag, so the cancellation provably lands mid-run.
TEST(RunOptions, CancelFromAnotherThreadStopsTheRun) {
  std::mutex mu;
  std::condition_variable cv;
  bool run_started = false, flag_set = false;
  std::atomic<bool> cancel{false};
  SessionOptions so;
  so.before_allocate_hook = [&](size_t) {
    std::unique_lock<std::mutex> lock(mu);
    if (!run_started) {
      run_started = true;
      cv.notify_all();
      cv.wait(lock, [&] { return flag_set; });
    }
    return Status::Ok();
  };
  auto session = Create(Load(LongChain(50)), so);
  ASSERT_NE(session, nullptr);
  std::thread canceller([&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return run_started; });
    cancel.store(true);
    flag_set = true;
    cv.notify_all();
  });
  RunOptions options;
  options.cancel = &cancel;
  auto out = session->Run({{"x", Filled({64, 256}, 0.5f)}}, options);
  canceller.join();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kCancelled) << out.status().ToString();
  const auto [done, total] = UnitsDone(out.status());
  EXPECT_GE(done, 1);
  EXPECT_LT(done, total);
}

// x -> Relu -> "pos"; x -> Neg -> Exp -> "e"; x -> Sigmoid -> "s".
OnnxModelBuilder ThreeOutputs() {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {2, 3}).Output("pos").Output("e").Output("s");
  b.Node("Relu", {"x"}, {"pos"}, "relu");
  b.Node("Neg", {"x"}, {"n"}, "neg");
  b.Node("Exp", {"n"}, {"e"}, "exp");
  b.Node("Sigmoid", {"x"}, {"s"}, "sigmoid");
  return b;
}

TEST(RunOptions, OutputNamesSelectAndOrderOutputsAndSkipUnneededNodes) {
  SessionOptions so;
  so.enable_profiling = true;
  auto session = Create(Load(ThreeOutputs()), so);
  ASSERT_NE(session, nullptr);
  RunOptions options;
  options.output_names = {"e", "pos"};
  auto out = session->Run({{"x", Filled({2, 3}, -1.0f)}}, options);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].name, "e");
  EXPECT_EQ((*out)[1].name, "pos");
  EXPECT_NEAR((*out)[0].tensor.data<float>()[0], std::exp(1.0f), 1e-5);
  EXPECT_EQ((*out)[1].tensor.data<float>()[0], 0.0f);
  for (const NodeProfile& node : session->stats().nodes) {
    EXPECT_EQ(node.calls, node.node_name == "sigmoid" ? 0 : 1) << node.node_name;
  }
}

TEST(RunOptions, UnknownOrRepeatedOutputNameIsAnError) {
  auto session = Create(Load(ThreeOutputs()));
  ASSERT_NE(session, nullptr);
  RunOptions options;
  options.output_names = {"nope"};
  auto out = session->Run({{"x", Filled({2, 3}, 1.0f)}}, options);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("'nope'"), std::string::npos) << out.status().message();
  options.output_names = {"s", "s"};
  out = session->Run({{"x", Filled({2, 3}, 1.0f)}}, options);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("more than once"), std::string::npos) << out.status().message();
}

TEST(RunOptions, BoundOutputsAreWrittenInPlace) {
  auto session = Create(Load(ThreeOutputs()));
  ASSERT_NE(session, nullptr);
  std::vector<float> sig(6, -7.0f);
  RunOptions options;
  options.bound_outputs = {{"s", Tensor::View(DType::kFloat32, {2, 3}, sig.data())}};
  for (int run = 0; run < 2; ++run) {
    auto out = session->Run({{"x", Filled({2, 3}, 0.0f)}}, options);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ASSERT_EQ(out->size(), 3u);
    EXPECT_EQ((*out)[2].tensor.raw_data(), sig.data());
    for (float v : sig) EXPECT_FLOAT_EQ(v, 0.5f);
  }
}

TEST(RunOptions, BoundOutputOfAViewOutputIsCopiedIn) {
  // y = Reshape(x): the kernel may return a view of x rather than write.
  OnnxModelBuilder b;
  b.Input("x", kFloat, {2, 3}).Int64Init("shape", {2}, {3, 2}).Output("y");
  b.Node("Reshape", {"x", "shape"}, {"y"});
  auto session = Create(Load(b));
  ASSERT_NE(session, nullptr);
  std::vector<float> y(6, 0.0f);
  RunOptions options;
  options.bound_outputs = {{"y", Tensor::View(DType::kFloat32, {3, 2}, y.data())}};
  Tensor x = Filled({2, 3}, 0.0f);
  for (int i = 0; i < 6; ++i) x.data<float>()[i] = static_cast<float>(i);
  auto out = session->Run({{"x", x}}, options);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].tensor.raw_data(), y.data());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[static_cast<size_t>(i)], static_cast<float>(i));
}

TEST(RunOptions, BoundOutputWithWrongShapeOrDtypeIsAnError) {
  auto session = Create(Load(ThreeOutputs()));
  ASSERT_NE(session, nullptr);
  std::vector<float> wrong(4);
  RunOptions options;
  options.bound_outputs = {{"s", Tensor::View(DType::kFloat32, {2, 2}, wrong.data())}};
  auto out = session->Run({{"x", Filled({2, 3}, 0.0f)}}, options);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("'s'"), std::string::npos) << out.status().message();

  std::vector<int64_t> ints(6);
  options.bound_outputs = {{"s", Tensor::View(DType::kInt64, {2, 3}, ints.data())}};
  out = session->Run({{"x", Filled({2, 3}, 0.0f)}}, options);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("int64"), std::string::npos) << out.status().message();

  options.bound_outputs = {{"nope", Tensor::View(DType::kFloat32, {2, 3}, wrong.data())}};
  out = session->Run({{"x", Filled({2, 3}, 0.0f)}}, options);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("'nope'"), std::string::npos) << out.status().message();

  // Bound, but not among the outputs asked for.
  options.output_names = {"pos"};
  options.bound_outputs = {{"s", Tensor::View(DType::kFloat32, {2, 3}, wrong.data())}};
  out = session->Run({{"x", Filled({2, 3}, 0.0f)}}, options);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("output_names"), std::string::npos) << out.status().message();
}

TEST(RunOptions, TagNamesTheRunInTheTrace) {
  SessionOptions so;
  so.enable_tracing = true;
  auto session = Create(Load(ThreeOutputs()), so);
  ASSERT_NE(session, nullptr);
  RunOptions options;
  options.tag = "request-42";
  ASSERT_TRUE(session->Run({{"x", Filled({2, 3}, 0.0f)}}, options).ok());
  const std::string path = ::testing::TempDir() + "/run_options_trace.json";
  ASSERT_TRUE(session->WriteTrace(path).ok());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("run request-42"), std::string::npos);
}

}  // namespace
}  // namespace kiln
