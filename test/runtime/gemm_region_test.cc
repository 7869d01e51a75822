// GEMM regions end to end: MatMul, Gemm and fused MatMul/Gemm nodes with a
// constant weight run through JIT-compiled GEMM code and match the
// interpreter on awkward shapes (odd M, N, K; K not a multiple of the
// vector; N below one vector; M = 1; batched A), with every epilogue the
// fusion writes, and a symbolic M served by one shape-generic version.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/session.h"
#include "test/model_builder.h"
#include "test/tensors.h"
#include "test/tolerance.h"

namespace kiln {
namespace {

using testing::OnnxModelBuilder;
using testing::RandomFloats;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

std::shared_ptr<const Model> Load(const OnnxModelBuilder& b) {
  const std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

std::unique_ptr<Session> MakeSession(std::shared_ptr<const Model> model, TierPolicy tier, int threads = 1) {
  SessionOptions options;
  options.tier = tier;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  options.intra_op_threads = threads;
  auto session = Session::Create(std::move(model), options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  return session.ok() ? std::move(session).value() : nullptr;
}

std::vector<float> RunOnce(const Session& session, const std::vector<NamedTensor>& inputs) {
  auto out = session.Run(inputs);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return {};
  const Tensor& y = (*out)[0].tensor;
  return std::vector<float>(y.data<float>(), y.data<float>() + y.num_elements());
}

// Runs `model` interpreted and twice through the JIT tier (the first call
// compiles), at 1 and 2 threads, and expects equal outputs and a compiled
// GEMM region. `k` scales the tolerance: float sums of K products.
void ExpectJitMatchesInterpreter(const OnnxModelBuilder& b, const std::vector<NamedTensor>& inputs, int64_t k) {
  std::shared_ptr<const Model> model = Load(b);
  ASSERT_NE(model, nullptr);
  auto interp = MakeSession(model, TierPolicy::kInterpreter);
  const std::vector<float> expected = RunOnce(*interp, inputs);
  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    auto jit = MakeSession(model, TierPolicy::kJit, threads);
    RunOnce(*jit, inputs);
    const std::vector<float> compiled = RunOnce(*jit, inputs);
    testing::ExpectNearScaled(compiled, expected, 1e-6 * std::sqrt(static_cast<double>(k)) + 1e-6);
    int gemm_regions = 0;
    for (const RegionStats& r : jit->stats().regions) {
      if (r.kind != "gemm") continue;
      ++gemm_regions;
      EXPECT_EQ(r.tier, "jit") << r.description;
      EXPECT_EQ(r.compiled_calls, 1) << r.description;
      EXPECT_GT(r.packed_weight_bytes, 0);
      EXPECT_GT(r.compiled_flops, 0);
    }
    EXPECT_EQ(gemm_regions, 1);
  }
}

struct Shape {
  std::vector<int64_t> a;  // A's dims; the last is K
  int64_t n;
};

class MatMulShapes : public ::testing::TestWithParam<Shape> {};

TEST_P(MatMulShapes, MatchesInterpreter) {
  const Shape& s = GetParam();
  const int64_t k = s.a.back();
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, s.a).FloatInit("w", {k, s.n}, RandomFloats(static_cast<size_t>(k * s.n), 3)).Output("y");
  b.Node("MatMul", {"x", "w"}, {"y"});
  int64_t count = 1;
  for (int64_t d : s.a) count *= d;
  std::vector<float> x = RandomFloats(static_cast<size_t>(count), 5);
  ExpectJitMatchesInterpreter(b, {{"x", Tensor::View(DType::kFloat32, s.a, x.data())}}, k);
}

INSTANTIATE_TEST_SUITE_P(OddShapes, MatMulShapes,
                         ::testing::Values(Shape{{1, 64}, 64},       // GEMV
                                           Shape{{1, 37}, 200},      // GEMV, odd K and N
                                           Shape{{7, 13}, 5},        // N below one vector
                                           Shape{{37, 70}, 200},     // edges in M and N
                                           Shape{{33, 129}, 96},     // K not a multiple of the vector
                                           Shape{{2, 5, 48}, 33},    // batched A, flattened into M
                                           Shape{{64, 256}, 256}));  // whole tiles

TEST(GemmRegion, GemmWithTransposedWeightAlphaBetaAndBias) {
  const int64_t m = 9, k = 40, n = 50;
  OnnxModelBuilder b(13);
  b.Input("a", kFloat, {m, k})
      .FloatInit("w", {n, k}, RandomFloats(static_cast<size_t>(n * k), 7))
      .FloatInit("c", {n}, RandomFloats(static_cast<size_t>(n), 8))
      .Output("y");
  onnx::NodeProto& gemm = b.Node("Gemm", {"a", "w", "c"}, {"y"});
  OnnxModelBuilder::IntAttr(gemm, "transB", 1);
  OnnxModelBuilder::FloatAttr(gemm, "alpha", 0.5f);
  OnnxModelBuilder::FloatAttr(gemm, "beta", 2.0f);
  std::vector<float> a = RandomFloats(static_cast<size_t>(m * k), 9);
  ExpectJitMatchesInterpreter(b, {{"a", Tensor::View(DType::kFloat32, {m, k}, a.data())}}, k);
}

class FusedEpilogues : public ::testing::TestWithParam<std::string> {};

// MatMul -> Add(bias) -> Add(residual) -> activation: the load-time fusion
// makes one kiln.FusedMatMul, which the GEMM region applies per tile.
TEST_P(FusedEpilogues, MatchInterpreter) {
  const std::string activation = GetParam();
  const int64_t m = 21, k = 35, n = 70;
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {m, k})
      .Input("r", kFloat, {m, n})
      .FloatInit("w", {k, n}, RandomFloats(static_cast<size_t>(k * n), 11))
      .FloatInit("bias", {n}, RandomFloats(static_cast<size_t>(n), 12))
      .Output("y");
  b.Node("MatMul", {"x", "w"}, {"mm"});
  b.Node("Add", {"mm", "bias"}, {"biased"});
  b.Node("Add", {"biased", "r"}, {"summed"});
  if (activation == "Clip") {
    b.FloatInit("lo", {}, {-0.5f}).FloatInit("hi", {}, {0.7f});
    b.Node("Clip", {"summed", "lo", "hi"}, {"y"});
  } else {
    b.Node(activation, {"summed"}, {"y"});
  }
  std::vector<float> x = RandomFloats(static_cast<size_t>(m * k), 13, -2.f, 2.f);
  std::vector<float> r = RandomFloats(static_cast<size_t>(m * n), 14);
  ExpectJitMatchesInterpreter(
      b,
      {{"x", Tensor::View(DType::kFloat32, {m, k}, x.data())}, {"r", Tensor::View(DType::kFloat32, {m, n}, r.data())}},
      k);
}

INSTANTIATE_TEST_SUITE_P(Activations, FusedEpilogues,
                         ::testing::Values("Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "Elu",
                                           "Clip"));

TEST(GemmRegion, SymbolicBatchCompilesOneGenericVersion) {
  const int64_t k = 48, n = 40;
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {-1, k}, {"batch"})
      .FloatInit("w", {k, n}, RandomFloats(static_cast<size_t>(k * n), 21))
      .Output("y");
  b.Node("MatMul", {"x", "w"}, {"y"});
  std::shared_ptr<const Model> model = Load(b);
  ASSERT_NE(model, nullptr);
  auto interp = MakeSession(model, TierPolicy::kInterpreter);
  auto jit = MakeSession(model, TierPolicy::kJit, 2);
  for (int64_t batch : {3, 3, 1, 17, 64, 5}) {
    std::vector<float> x = RandomFloats(static_cast<size_t>(batch * k), static_cast<unsigned>(batch));
    const std::vector<NamedTensor> inputs = {{"x", Tensor::View(DType::kFloat32, {batch, k}, x.data())}};
    testing::ExpectNearScaled(RunOnce(*jit, inputs), RunOnce(*interp, inputs), 1e-5);
  }
  const std::vector<RegionStats> regions = jit->stats().regions;
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].kind, "gemm");
  EXPECT_EQ(regions[0].specializations, 1);  // the generic version, compiled at the first call
  EXPECT_EQ(regions[0].compiled_calls, 5);
  EXPECT_EQ(regions[0].deopts, 0);
}

struct PointwiseConv {
  Dims x;  // NCHW
  int64_t filters;
  int64_t stride;
  bool residual;
  const char* activation;  // "" for none
};

class PointwiseConvs : public ::testing::TestWithParam<PointwiseConv> {};

// A 1x1 convolution in a channels-last island is a GEMM over pixels
// (graph/gemm_pattern.h): with bias, residual and activation fused, the JIT
// region must match the NCHW interpreter. A strided one is no GEMM and
// stays a convolution.
TEST_P(PointwiseConvs, MatchNchwInterpreter) {
  const PointwiseConv& c = GetParam();
  const int64_t channels = c.x[1];
  Dims y = {c.x[0], c.filters, (c.x[2] - 1) / c.stride + 1, (c.x[3] - 1) / c.stride + 1};
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, c.x)
      .FloatInit("w", {c.filters, channels, 1, 1}, RandomFloats(static_cast<size_t>(c.filters * channels), 31))
      .FloatInit("bias", {c.filters}, RandomFloats(static_cast<size_t>(c.filters), 32))
      .Output("y");
  if (c.residual) b.Input("r", kFloat, y);
  onnx::NodeProto& conv = b.Node("Conv", {"x", "w", "bias"}, {"conv"});
  OnnxModelBuilder::IntsAttr(conv, "strides", {c.stride, c.stride});
  std::string last = "conv";
  if (c.residual) {
    b.Node("Add", {last, "r"}, {"summed"});
    last = "summed";
  }
  if (*c.activation != 0) {
    b.Node(c.activation, {last}, {"activated"});
    last = "activated";
  }
  b.Node("Identity", {last}, {"y"});
  const std::string bytes = b.Serialize();
  LoadOptions nchw, nhwc;
  nchw.channels_last = ChannelsLast::kOff;
  nhwc.channels_last = ChannelsLast::kOn;
  auto reference_model = Model::LoadFromBytes(bytes.data(), bytes.size(), "", nchw);
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size(), "", nhwc);
  ASSERT_TRUE(reference_model.ok() && model.ok());

  std::vector<float> x = RandomFloats(static_cast<size_t>(testing::ElementCount(c.x)), 33, -2.f, 2.f);
  std::vector<float> r = RandomFloats(static_cast<size_t>(testing::ElementCount(y)), 34);
  std::vector<NamedTensor> inputs = {{"x", Tensor::View(DType::kFloat32, c.x, x.data())}};
  if (c.residual) inputs.push_back({"r", Tensor::View(DType::kFloat32, y, r.data())});
  const std::vector<float> expected = RunOnce(*MakeSession(*reference_model, TierPolicy::kInterpreter), inputs);
  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    auto jit = MakeSession(*model, TierPolicy::kJit, threads);
    RunOnce(*jit, inputs);
    testing::ExpectNearScaled(RunOnce(*jit, inputs), expected, 1e-5);
    int gemm_regions = 0;
    for (const RegionStats& region : jit->stats().regions) {
      if (region.kind != "gemm") continue;
      ++gemm_regions;
      EXPECT_EQ(region.tier, "jit") << region.description;
      EXPECT_NE(region.description.find("FusedConv"), std::string::npos) << region.description;
    }
    EXPECT_EQ(gemm_regions, c.stride == 1 ? 1 : 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, PointwiseConvs,
                         ::testing::Values(PointwiseConv{{1, 13, 7, 9}, 21, 1, true, "HardSwish"},
                                           PointwiseConv{{2, 64, 14, 14}, 40, 1, false, "Relu"},
                                           PointwiseConv{{1, 96, 1, 1}, 24, 1, false, "HardSigmoid"},
                                           PointwiseConv{{1, 5, 3, 3}, 7, 1, true, ""},
                                           PointwiseConv{{1, 16, 9, 9}, 8, 2, false, "Relu"}));

TEST(GemmRegion, MatMulOfTwoActivationsStaysInterpreted) {
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {4, 8}).Input("w", kFloat, {8, 6}).Output("y");
  b.Node("MatMul", {"x", "w"}, {"y"});
  std::shared_ptr<const Model> model = Load(b);
  ASSERT_NE(model, nullptr);
  auto jit = MakeSession(model, TierPolicy::kJit);
  EXPECT_TRUE(jit->stats().regions.empty());
}

}  // namespace
}  // namespace kiln
