// Constant weights are packed on a background thread (OpKernel::
// TakePreparation, Interpreter's preparation queue) while runs go ahead on
// the unpacked weights. Whenever a run lands (before, during or after the
// packing), its outputs are the same bits and match a node-by-node
// reference; runs from several threads at once while packing is in flight
// agree; and destroying a session or interpreter whose packing is queued or
// running is clean (this test is in the ThreadSanitizer set).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "graph/onnx_loader.h"
#include "kernels/kernel.h"
#include "kiln/session.h"
#include "runtime/interpreter.h"
#include "test/control_flow_models.h"
#include "test/model_builder.h"
#include "test/runtime/reference_run_util.h"
#include "test/tensors.h"
#include "test/tolerance.h"

namespace kiln {
namespace {

using testing::OnnxModelBuilder;
using testing::RandomFloats;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

// x [8, 512] -> MatMul [512, 1024] -> Relu -> Gemm with a transposed
// [256, 1024] weight and a bias -> y [8, 256], then `extra` MatMuls with
// [256, 256] weights: weights big enough that packing takes a while.
std::string MlpBytes(int extra = 0) {
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {8, 512})
      .FloatInit("w1", {512, 1024}, RandomFloats(512 * 1024, 1, -0.05f, 0.05f))
      .FloatInit("w2", {256, 1024}, RandomFloats(256 * 1024, 2, -0.05f, 0.05f))
      .FloatInit("b2", {256}, RandomFloats(256, 3))
      .Output("y");
  b.Node("MatMul", {"x", "w1"}, {"h"});
  b.Node("Relu", {"h"}, {"r"});
  OnnxModelBuilder::IntAttr(b.Node("Gemm", {"r", "w2", "b2"}, {extra > 0 ? "g0" : "y"}), "transB", 1);
  for (int i = 0; i < extra; ++i) {
    const std::string w = "w_extra" + std::to_string(i);
    b.FloatInit(w, {256, 256}, RandomFloats(256 * 256, 10 + i, -0.1f, 0.1f));
    b.Node("MatMul", {"g" + std::to_string(i), w}, {i + 1 == extra ? "y" : "g" + std::to_string(i + 1)});
  }
  return b.Serialize();
}

Tensor Input(std::vector<float>& storage) {
  storage = RandomFloats(8 * 512, 7);
  return Tensor::View(DType::kFloat32, {8, 512}, storage.data());
}

bool SameBits(const Tensor& a, const Tensor& b) {
  return a.dims() == b.dims() && std::memcmp(a.raw_data(), b.raw_data(), a.byte_size()) == 0;
}

std::shared_ptr<const Model> LoadModel(const std::string& bytes) {
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

TEST(BackgroundPreparation, EveryRunGivesTheSameBitsAsTheReferenceAllows) {
  const std::string bytes = MlpBytes();
  std::vector<float> x;
  const Tensor input = Input(x);
  auto reference = testing::RunUnoptimizedReference(bytes, {{"x", input}});
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  std::shared_ptr<const Model> model = LoadModel(bytes);
  ASSERT_NE(model, nullptr);
  for (int threads : {1, 2}) {
    SCOPED_TRACE(::testing::Message() << threads << " threads");
    SessionOptions options;
    options.tier = TierPolicy::kInterpreter;
    options.intra_op_threads = threads;
    auto session = Session::Create(model, options);
    ASSERT_TRUE(session.ok()) << session.status().ToString();
    // The first run comes straight after Create, most likely before the
    // weights are packed; later ones after.
    std::vector<Tensor> outputs;
    for (int run = 0; run < 20; ++run) {
      auto out = (*session)->Run({{"x", input}});
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      outputs.push_back((*out)[0].tensor);
      if (run == 10) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    testing::ExpectNearScaled(testing::ToVector<float>(outputs[0]), testing::ToVector<float>(*reference), 1e-4f);
    for (size_t run = 1; run < outputs.size(); ++run) {
      EXPECT_TRUE(SameBits(outputs[0], outputs[run])) << "run " << run << " differs from the first";
    }
  }
}

TEST(BackgroundPreparation, InterpreterRunsEqualBeforeAndAfterPreparation) {
  const std::string bytes = MlpBytes(2);
  auto graph = graph::LoadOnnxModel(bytes.data(), bytes.size(), {});
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  std::vector<float> x;
  const Tensor input = Input(x);
  auto reference = testing::RunUnoptimizedReference(bytes, {{"x", input}});
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  auto interp = runtime::Interpreter::Create(*graph, kernels::DefaultKernelRegistry());
  ASSERT_TRUE(interp.ok()) << interp.status().ToString();
  auto frame = (*interp)->NewFrame();
  kernels::SerialRunner serial;
  std::vector<Tensor> first, after;
  ASSERT_TRUE((*interp)->Run(*frame, {&input}, first, serial).ok());
  (*interp)->WaitForPreparation();
  ASSERT_TRUE((*interp)->Run(*frame, {&input}, after, serial).ok());
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_TRUE(SameBits(first[0], after[0]));
  testing::ExpectNearScaled(testing::ToVector<float>(after[0]), testing::ToVector<float>(*reference), 1e-4f);
}

TEST(BackgroundPreparation, ConcurrentFirstRunsAgree) {
  std::shared_ptr<const Model> model = LoadModel(MlpBytes(4));
  ASSERT_NE(model, nullptr);
  std::vector<float> x;
  const Tensor input = Input(x);
  SessionOptions options;
  options.tier = TierPolicy::kInterpreter;
  options.intra_op_threads = 1;
  auto session = Session::Create(model, options);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  std::vector<std::vector<Tensor>> outputs(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int run = 0; run < 5; ++run) {
        auto out = (*session)->Run({{"x", input}});
        if (out.ok()) outputs[static_cast<size_t>(t)].push_back((*out)[0].tensor);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(outputs[0].size(), 5u);
  ASSERT_EQ(outputs[1].size(), 5u);
  for (const std::vector<Tensor>& per_thread : outputs) {
    for (const Tensor& y : per_thread) EXPECT_TRUE(SameBits(outputs[0][0], y));
  }
}

TEST(BackgroundPreparation, DestroyingWithPreparationPendingIsClean) {
  std::shared_ptr<const Model> model = LoadModel(MlpBytes(8));
  ASSERT_NE(model, nullptr);
  std::vector<float> x;
  const Tensor input = Input(x);
  SessionOptions options;
  options.tier = TierPolicy::kInterpreter;
  options.intra_op_threads = 1;
  for (int i = 0; i < 5; ++i) {
    // Destroyed at once: packing queued or running.
    auto idle = Session::Create(model, options);
    ASSERT_TRUE(idle.ok()) << idle.status().ToString();
    idle->reset();
    // Destroyed right after one run.
    auto used = Session::Create(model, options);
    ASSERT_TRUE(used.ok()) << used.status().ToString();
    auto out = (*used)->Run({{"x", input}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    used->reset();
    // The output outlives its session.
    EXPECT_EQ((*out)[0].tensor.dims(), (Dims{8, 256}));
  }
}

// A kernel whose preparation takes a while and whose output says whether it
// has run: 1 once it has, 0 before.
class SlowlyPreparedKernel final : public kernels::OpKernel {
 public:
  std::function<void()> TakePreparation(const std::vector<const Tensor*>&,
                                        const std::vector<std::optional<Dims>>&) override {
    return [this] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      prepared_.store(true, std::memory_order_release);
    };
  }
  Status Compute(kernels::KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kFloat32, {1}));
    y->data<float>()[0] = prepared_.load(std::memory_order_acquire) ? 1.f : 0.f;
    return Status::Ok();
  }

 private:
  std::atomic<bool> prepared_{false};
};

// WaitForPreparation covers the kernels inside If branches (and Loop/Scan
// bodies), which prepare on queues of their own: what a bitwise-equivalent
// session relies on before its first run.
TEST(BackgroundPreparation, WaitingCoversTheBodiesKernels) {
  OnnxModelBuilder b(13);
  b.Input("cond", testing::kCfBool, {}).Output("y");
  auto& node = b.Node("If", {"cond"}, {"y"}, "choose");
  testing::BodyBuilder then_branch(node, "then_branch");
  then_branch.Output("y_then", kFloat, {1});
  then_branch.Node("TestSlowlyPrepared", {}, {"y_then"});
  testing::BodyBuilder else_branch(node, "else_branch");
  else_branch.FloatInit("minus_one", {1}, {-1.f}).Output("minus_one", kFloat, {1});
  const std::string bytes = b.Serialize();
  auto graph = graph::LoadOnnxModel(bytes.data(), bytes.size(), {});
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  kernels::KernelRegistry registry = kernels::DefaultKernelRegistry();
  registry.Register({"TestSlowlyPrepared", "", 1, kernels::kNoMaxOpset, kernels::MakeFactory<SlowlyPreparedKernel>()});
  auto interp = runtime::Interpreter::Create(*graph, registry);
  ASSERT_TRUE(interp.ok()) << interp.status().ToString();
  (*interp)->WaitForPreparation();
  const Tensor cond = testing::MakeTensor<bool>({}, {true});
  auto frame = (*interp)->NewFrame();
  kernels::SerialRunner serial;
  std::vector<Tensor> outputs;
  ASSERT_TRUE((*interp)->Run(*frame, {&cond}, outputs, serial).ok());
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(testing::ToVector<float>(outputs[0]), std::vector<float>{1.f}) << "the branch ran unprepared";
}

// Records, by node name, the order its preparation runs in.
class OrderRecordingKernel final : public kernels::OpKernel {
 public:
  OrderRecordingKernel(std::string name, std::shared_ptr<std::vector<std::string>> order)
      : name_(std::move(name)), order_(std::move(order)) {}
  std::function<void()> TakePreparation(const std::vector<const Tensor*>&,
                                        const std::vector<std::optional<Dims>>&) override {
    // One queue thread runs the jobs, and WaitForPreparation orders them
    // before the test reads the log.
    return [this] { order_->push_back(name_); };
  }
  Status Compute(kernels::KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kFloat32, {1}));
    y->data<float>()[0] = ctx.input(0)->data<float>()[0] + 1.f;
    return Status::Ok();
  }

 private:
  std::string name_;
  std::shared_ptr<std::vector<std::string>> order_;
};

// The last node is prepared first: a first run starts at the first node, so
// the two meet in the middle instead of working on the same node.
TEST(BackgroundPreparation, TheLastNodeIsPreparedFirst) {
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {1}).Output("y");
  b.Node("TestOrderRecorded", {"x"}, {"h1"}, "first");
  b.Node("TestOrderRecorded", {"h1"}, {"h2"}, "second");
  b.Node("TestOrderRecorded", {"h2"}, {"y"}, "third");
  const std::string bytes = b.Serialize();
  auto graph = graph::LoadOnnxModel(bytes.data(), bytes.size(), {});
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  auto order = std::make_shared<std::vector<std::string>>();
  kernels::KernelRegistry registry = kernels::DefaultKernelRegistry();
  registry.Register({"TestOrderRecorded", "", 1, kernels::kNoMaxOpset,
                     [order](const graph::Node& node) -> StatusOr<std::unique_ptr<kernels::OpKernel>> {
                       return std::unique_ptr<kernels::OpKernel>(new OrderRecordingKernel(node.name, order));
                     }});
  auto interp = runtime::Interpreter::Create(*graph, registry);
  ASSERT_TRUE(interp.ok()) << interp.status().ToString();
  (*interp)->WaitForPreparation();
  EXPECT_EQ(*order, (std::vector<std::string>{"third", "second", "first"}));
  const Tensor x = testing::MakeTensor<float>({1}, {1.f});
  auto frame = (*interp)->NewFrame();
  kernels::SerialRunner serial;
  std::vector<Tensor> outputs;
  ASSERT_TRUE((*interp)->Run(*frame, {&x}, outputs, serial).ok());
  EXPECT_EQ(testing::ToVector<float>(outputs[0]), std::vector<float>{4.f});
}

}  // namespace
}  // namespace kiln
