#include "kiln/session.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "test/model_builder.h"

namespace kiln {
namespace {

using testing::OnnxModelBuilder;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

std::shared_ptr<const Model> LoadOrDie(const OnnxModelBuilder& b) {
  std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

// y = Relu(x + b) * 2, with a symbolic batch dim.
OnnxModelBuilder AddReluScale() {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {-1, 4}, {"batch"}).FloatInit("b", {4}, {1, -2, 3, -4}).FloatInit("two", {}, {2}).Output("y");
  b.Node("Add", {"x", "b"}, {"t0"});
  b.Node("Relu", {"t0"}, {"t1"});
  b.Node("Mul", {"t1", "two"}, {"y"});
  return b;
}

StatusOr<Tensor> FloatTensor(const Dims& dims, const std::vector<float>& values) {
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Allocate(DType::kFloat32, dims));
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

TEST(Session, RunsAndReturnsNamedOutputs) {
  auto session = Session::Create(LoadOrDie(AddReluScale()));
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  auto x = FloatTensor({2, 4}, {0, 0, 0, 0, 1, 1, -10, 10});
  ASSERT_TRUE(x.ok());
  auto out = (*session)->Run({{"x", *x}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].name, "y");
  EXPECT_EQ((*out)[0].tensor.dims(), (Dims{2, 4}));
  const float* y = (*out)[0].tensor.data<float>();
  const std::vector<float> expected = {2, 0, 6, 0, 4, 0, 0, 12};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_FLOAT_EQ(y[i], expected[i]) << i;
}

TEST(Session, AcceptsZeroCopyViewsAndDoesNotWriteThem) {
  auto session = Session::Create(LoadOrDie(AddReluScale()));
  ASSERT_TRUE(session.ok());
  std::vector<float> caller = {1, 2, 3, 4};
  Tensor view = Tensor::View(DType::kFloat32, {1, 4}, caller.data());
  auto out = (*session)->Run({{"x", view}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(caller, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_FLOAT_EQ((*out)[0].tensor.data<float>()[2], 12.f);
}

// Conv weights that arrive as a run-time input may change between runs at
// the same address (a caller reusing its buffer); only graph constants may be
// packed once and cached.
TEST(Session, ConvWeightsFromAnInputAreReadOnEveryRun) {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {1, 2, 8, 8}).Input("w", kFloat, {4, 2, 3, 3}).Output("y");
  auto& conv = b.Node("Conv", {"x", "w"}, {"y"});
  OnnxModelBuilder::IntsAttr(conv, "pads", {1, 1, 1, 1});
  auto session = Session::Create(LoadOrDie(b));
  ASSERT_TRUE(session.ok()) << session.status().ToString();

  std::vector<float> x(2 * 8 * 8, 1.0f);
  std::vector<float> w(4 * 2 * 3 * 3, 1.0f);
  Tensor x_view = Tensor::View(DType::kFloat32, {1, 2, 8, 8}, x.data());
  Tensor w_view = Tensor::View(DType::kFloat32, {4, 2, 3, 3}, w.data());
  // The centre pixel sees all 2*3*3 taps.
  const size_t centre = 3 * 8 + 3;
  for (float scale : {1.0f, 2.0f, -0.5f}) {
    std::fill(w.begin(), w.end(), scale);
    auto out = (*session)->Run({{"x", x_view}, {"w", w_view}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    const float* y = (*out)[0].tensor.data<float>();
    for (int oc = 0; oc < 4; ++oc) EXPECT_FLOAT_EQ(y[oc * 64 + centre], 18.0f * scale) << "scale " << scale;
  }
}

// Graph outputs come from a pool: once the caller drops a run's outputs,
// the next run reuses their memory (no fresh pages to fault in); outputs
// still held are never written by later runs.
TEST(Session, ReusesOutputMemoryTheCallerReleased) {
  auto session = Session::Create(LoadOrDie(AddReluScale()));
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  auto x = FloatTensor({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  ASSERT_TRUE(x.ok());
  const void* released = nullptr;
  {
    auto out = (*session)->Run({{"x", *x}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    released = (*out)[0].tensor.raw_data();
    EXPECT_EQ((*session)->stats().pooled_output_bytes, 0);  // the caller still holds it
  }
  EXPECT_EQ((*session)->stats().pooled_output_bytes, 64);  // 8 floats, in one 64-byte aligned buffer
  auto held = (*session)->Run({{"x", *x}});
  ASSERT_TRUE(held.ok());
  EXPECT_EQ((*held)[0].tensor.raw_data(), released);
  EXPECT_EQ((*session)->stats().pooled_output_bytes, 0);

  auto y = FloatTensor({2, 4}, {-8, -7, -6, -5, -4, -3, -2, -1});
  ASSERT_TRUE(y.ok());
  auto next = (*session)->Run({{"x", *y}});
  ASSERT_TRUE(next.ok());
  EXPECT_NE((*next)[0].tensor.raw_data(), (*held)[0].tensor.raw_data());
  const std::vector<float> want_held = {4, 0, 12, 0, 12, 8, 20, 8};  // Relu(x + b) * 2
  const std::vector<float> want_next = {0, 0, 0, 0, 0, 0, 2, 0};
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ((*held)[0].tensor.data<float>()[i], want_held[i]) << i;
    EXPECT_EQ((*next)[0].tensor.data<float>()[i], want_next[i]) << i;
  }
}

// A trace that cannot be written (its folder does not exist) is an I/O
// error; the session and its recorded trace stay usable.
TEST(Session, TraceWriteFailureIsAnIoError) {
  SessionOptions options;
  options.enable_tracing = true;
  auto session = Session::Create(LoadOrDie(AddReluScale()), options);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  auto x = FloatTensor({1, 4}, {1, 2, 3, 4});
  ASSERT_TRUE(x.ok());
  ASSERT_TRUE((*session)->Run({{"x", *x}}).ok());
  const std::string dir = ::testing::TempDir();
  Status bad = (*session)->WriteTrace(dir + "/no/such/folder/trace.json");
  EXPECT_EQ(bad.code(), StatusCode::kIoError) << bad.ToString();
  EXPECT_NE(bad.message().find("trace.json"), std::string::npos) << bad.message();
  EXPECT_TRUE((*session)->WriteTrace(dir + "/session_trace.json").ok());
}

TEST(Session, InputErrorsNameTheProblem) {
  auto session = Session::Create(LoadOrDie(AddReluScale()));
  ASSERT_TRUE(session.ok());
  auto good = *FloatTensor({1, 4}, {1, 2, 3, 4});
  struct Case {
    std::vector<NamedTensor> inputs;
    std::string expect_in_message;
  } cases[] = {
      {{}, "missing input 'x'"},
      {{{"z", good}}, "unknown input 'z'"},
      {{{"x", good}, {"x", good}}, "given more than once"},
      {{{"x", *Tensor::Allocate(DType::kInt64, {1, 4})}}, "dtype int64, expected float32"},
      {{{"x", *FloatTensor({4}, {1, 2, 3, 4})}}, "rank 1"},
      {{{"x", *FloatTensor({1, 3}, {1, 2, 3})}}, "dim 1 must be 4"},
  };
  for (const Case& c : cases) {
    auto out = (*session)->Run(c.inputs);
    ASSERT_FALSE(out.ok()) << c.expect_in_message;
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(out.status().message().find(c.expect_in_message), std::string::npos) << out.status().message();
  }
  // The session is still usable after rejected requests.
  EXPECT_TRUE((*session)->Run({{"x", good}}).ok());
}

TEST(Session, SymbolicDimsMustAgreeAcrossInputs) {
  OnnxModelBuilder b;
  b.Input("a", kFloat, {-1, 2}, {"batch"}).Input("c", kFloat, {-1, 2}, {"batch"}).Output("y");
  b.Node("Add", {"a", "c"}, {"y"});
  auto session = Session::Create(LoadOrDie(b));
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  auto out = (*session)->Run({{"a", *FloatTensor({1, 2}, {1, 2})}, {"c", *FloatTensor({2, 2}, {1, 2, 3, 4})}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("dimension 'batch'"), std::string::npos) << out.status().message();
}

TEST(Session, UnsupportedOpsAreListedAtCreate) {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {2}).Output("y");
  b.Node("Relu", {"x"}, {"t"});
  b.Node("NoSuchOp", {"t"}, {"u"});
  b.Node("AlsoMissing", {"u"}, {"y"});
  std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto session = Session::Create(*model);
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(session.status().message().find("NoSuchOp"), std::string::npos);
  EXPECT_NE(session.status().message().find("AlsoMissing"), std::string::npos);
}

TEST(Session, ConcurrentRunsOnOneSessionAreCorrect) {
  SessionOptions options;
  options.intra_op_threads = 2;
  auto session = Session::Create(LoadOrDie(AddReluScale()), options);
  ASSERT_TRUE(session.ok());
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 200; ++rep) {
        const int64_t batch = 1 + (t + rep) % 5;
        std::vector<float> x(static_cast<size_t>(batch * 4), static_cast<float>(t));
        auto out = (*session)->Run({{"x", Tensor::View(DType::kFloat32, {batch, 4}, x.data())}});
        if (!out.ok() || (*out)[0].tensor.dims() != Dims{batch, 4}) {
          ++wrong;
          continue;
        }
        const float* y = (*out)[0].tensor.data<float>();
        const float expect[4] = {2.f * std::max(0.f, t + 1.f), 2.f * std::max(0.f, t - 2.f),
                                 2.f * std::max(0.f, t + 3.f), 2.f * std::max(0.f, t - 4.f)};
        for (int64_t i = 0; i < batch * 4; ++i) {
          if (y[i] != expect[i % 4]) ++wrong;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ((*session)->stats().runs, 8 * 200);
}

TEST(Session, MemoryPlanReusesBuffersAlongAChain) {
  // A chain of 8 unary ops on 1 MiB: without reuse 7 intermediates, with the
  // plan two buffers ping-pong.
  OnnxModelBuilder b;
  b.Input("x", kFloat, {256, 1024}).Output("y");
  std::string prev = "x";
  for (int i = 0; i < 8; ++i) {
    std::string next = i == 7 ? "y" : "t" + std::to_string(i);
    b.Node(i % 2 ? "Relu" : "Neg", {prev}, {next});
    prev = next;
  }
  SessionOptions options;
  options.enable_profiling = true;
  auto session = Session::Create(LoadOrDie(b), options);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  std::vector<float> x(256 * 1024, 1.f);
  ASSERT_TRUE((*session)->Run({{"x", Tensor::View(DType::kFloat32, {256, 1024}, x.data())}}).ok());
  SessionStats stats = (*session)->stats();
  EXPECT_EQ(stats.peak_planned_bytes, 2 * 256 * 1024 * 4);
  EXPECT_EQ(stats.unplanned_bytes, 7 * 256 * 1024 * 4);
  ASSERT_EQ(stats.nodes.size(), 8u);
  EXPECT_EQ(stats.nodes[0].calls, 1);
  EXPECT_EQ(stats.nodes[0].op_type, "Neg");
}

}  // namespace
}  // namespace kiln
