// SessionOptions::jit_bitwise_equivalent: compiled code gives the
// interpreter's outputs bit for bit. Each op runs over a sweep of float bit
// patterns (normals of every exponent, denormals, zeros of both signs,
// infinities, NaNs) through an interpreter session and a bitwise JIT
// session, and the outputs are compared with memcmp. The default JIT, whose
// approximations are its own, is shown to differ on the same sweep, so the
// comparison can fail.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kiln/session.h"
#include "test/model_builder.h"

namespace kiln {
namespace {

using testing::OnnxModelBuilder;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

// Floats whose bit patterns step through all 2^32 with an odd stride, so
// every exponent and both signs appear, then the special values.
std::vector<float> BitPatternSweep(int64_t n, uint32_t offset) {
  std::vector<float> xs;
  const uint32_t stride = static_cast<uint32_t>((uint64_t{1} << 32) / static_cast<uint64_t>(n)) | 1u;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = offset + static_cast<uint32_t>(i) * stride;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    xs.push_back(f);
  }
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {0.0f, -0.0f, 1e-45f, -1e-45f, 0.25f, -0.25f, 0.5f, 1.0f, -1.0f, 3.92f, 4.0f, -89.0f, 88.7f, -104.0f,
                  inf, -inf, std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN()}) {
    xs.push_back(v);
  }
  // Values in the ranges where the approximations switch formula.
  for (int i = -4000; i <= 4000; ++i) xs.push_back(static_cast<float>(i) * 0.005f);
  return xs;
}

Tensor FloatTensor(const std::vector<float>& values) {
  Tensor t = Tensor::Allocate(DType::kFloat32, {static_cast<int64_t>(values.size())}).value();
  std::memcpy(t.data<float>(), values.data(), values.size() * sizeof(float));
  return t;
}

std::shared_ptr<const Model> Load(const OnnxModelBuilder& b) {
  const std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

SessionOptions JitOptions(bool bitwise) {
  SessionOptions options;
  options.tier = TierPolicy::kJit;
  options.jit_bitwise_equivalent = bitwise;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  options.jit_min_region_nodes = 1;      // single ops are regions too
  return options;
}

struct TierOutputs {
  std::vector<Tensor> interpreted;
  std::vector<Tensor> compiled;
  int64_t compiled_calls = 0;  // over all regions
  int64_t verify_failures = 0;
  std::vector<std::string> stayed_interpreted;  // descriptions of regions that never compiled
};

TierOutputs RunBothTiers(const OnnxModelBuilder& b, const std::vector<NamedTensor>& inputs, bool bitwise = true) {
  TierOutputs result;
  std::shared_ptr<const Model> model = Load(b);
  if (model == nullptr) return result;
  SessionOptions interp_options;
  interp_options.tier = TierPolicy::kInterpreter;
  auto interp = Session::Create(model, interp_options);
  EXPECT_TRUE(interp.ok()) << interp.status().ToString();
  auto jit = Session::Create(model, JitOptions(bitwise));
  EXPECT_TRUE(jit.ok()) << jit.status().ToString();
  if (!interp.ok() || !jit.ok()) return result;
  auto want = (*interp)->Run(inputs);
  EXPECT_TRUE(want.ok()) << want.status().ToString();
  // The first JIT run compiles (TierPolicy::kJit) and verifies; the second
  // is served by the compiled code.
  auto first = (*jit)->Run(inputs);
  EXPECT_TRUE(first.ok()) << first.status().ToString();
  auto got = (*jit)->Run(inputs);
  EXPECT_TRUE(got.ok()) << got.status().ToString();
  if (!want.ok() || !got.ok()) return result;
  for (auto& o : *want) result.interpreted.push_back(std::move(o.tensor));
  for (auto& o : *got) result.compiled.push_back(std::move(o.tensor));
  for (const RegionStats& r : (*jit)->stats().regions) {
    result.compiled_calls += r.compiled_calls;
    result.verify_failures += r.verify_failures;
    if (r.compiled_calls == 0) result.stayed_interpreted.push_back(r.description);
  }
  return result;
}

// Elements whose bits differ, with the first few described.
int64_t BitDifferences(const Tensor& got, const Tensor& want, const std::vector<float>* xs, std::string* first) {
  EXPECT_EQ(got.dims(), want.dims());
  EXPECT_EQ(got.dtype(), want.dtype());
  if (got.dims() != want.dims() || got.dtype() != want.dtype()) return -1;
  const size_t elem = got.byte_size() / static_cast<size_t>(std::max<int64_t>(1, got.num_elements()));
  int64_t differences = 0;
  for (int64_t i = 0; i < got.num_elements(); ++i) {
    const char* g = static_cast<const char*>(got.raw_data()) + static_cast<size_t>(i) * elem;
    const char* w = static_cast<const char*>(want.raw_data()) + static_cast<size_t>(i) * elem;
    if (std::memcmp(g, w, elem) == 0) continue;
    if (++differences <= 3 && first != nullptr && got.dtype() == DType::kFloat32) {
      char line[160];
      std::snprintf(line, sizeof line, "  x=%a: compiled %a, interpreted %a\n",
                    xs != nullptr ? (*xs)[static_cast<size_t>(i)] : 0.0f, *reinterpret_cast<const float*>(g),
                    *reinterpret_cast<const float*>(w));
      *first += line;
    }
  }
  return differences;
}

void ExpectBitwiseEqual(const TierOutputs& r, const std::vector<float>* xs = nullptr) {
  ASSERT_EQ(r.compiled.size(), r.interpreted.size());
  EXPECT_EQ(r.verify_failures, 0);
  for (size_t o = 0; o < r.compiled.size(); ++o) {
    std::string examples;
    EXPECT_EQ(BitDifferences(r.compiled[o], r.interpreted[o], xs, &examples), 0) << "output " << o << "\n" << examples;
  }
}

struct UnaryCase {
  UnaryCase(std::string op, std::vector<std::pair<std::string, float>> float_attrs = {}, std::string approximate = "",
            int opset = 17)
      : op(std::move(op)), float_attrs(std::move(float_attrs)), approximate(std::move(approximate)), opset(opset) {}
  std::string op;
  std::vector<std::pair<std::string, float>> float_attrs;
  std::string approximate;  // Gelu
  int opset;
};

class BitwiseUnaryOp : public ::testing::TestWithParam<UnaryCase> {};

TEST_P(BitwiseUnaryOp, CompiledEqualsInterpreterBitForBit) {
  const UnaryCase& c = GetParam();
  const std::vector<float> xs = BitPatternSweep(1 << 18, 0x1234);
  OnnxModelBuilder b(c.opset);
  b.Input("x", kFloat, {static_cast<int64_t>(xs.size())});
  onnx::NodeProto& n = b.Node(c.op, {"x"}, {"y"});
  for (const auto& [name, v] : c.float_attrs) OnnxModelBuilder::FloatAttr(n, name, v);
  if (!c.approximate.empty()) {
    auto* a = n.add_attribute();
    a->set_name("approximate");
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(c.approximate);
  }
  b.Output("y");
  const TierOutputs r = RunBothTiers(b, {{"x", FloatTensor(xs)}});
  EXPECT_GT(r.compiled_calls, 0) << c.op << " did not run compiled";
  ExpectBitwiseEqual(r, &xs);
}

INSTANTIATE_TEST_SUITE_P(Ops, BitwiseUnaryOp,
                         ::testing::Values(UnaryCase{"Exp"}, UnaryCase{"Log"}, UnaryCase{"Tanh"}, UnaryCase{"Sigmoid"},
                                           UnaryCase{"Erf"}, UnaryCase{"Sqrt"}, UnaryCase{"Reciprocal"},
                                           UnaryCase{"Neg"}, UnaryCase{"Abs"}, UnaryCase{"Floor"}, UnaryCase{"Ceil"},
                                           UnaryCase{"Relu"}, UnaryCase{"LeakyRelu", {{"alpha", 0.1f}}},
                                           UnaryCase{"HardSigmoid", {{"alpha", 0.3f}, {"beta", 0.4f}}},
                                           UnaryCase{"HardSwish"}),
                         [](const ::testing::TestParamInfo<UnaryCase>& info) {
                           return info.param.op + (info.param.approximate.empty() ? "" : "_" + info.param.approximate);
                         });

TEST(BitwiseTiers, BinaryAndVariadicOpsWithNaNsAndSignedZeros) {
  const std::vector<float> xs = BitPatternSweep(1 << 16, 0x77);
  std::vector<float> ys = BitPatternSweep(1 << 16, 0x9abcdef);
  ys.resize(xs.size());
  const int64_t n = static_cast<int64_t>(xs.size());
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Max", "Min"}) {
    SCOPED_TRACE(op);
    OnnxModelBuilder b;
    b.Input("x", kFloat, {n}).Input("y", kFloat, {n});
    b.FloatInit("z", {1}, {-0.0f});
    if (std::string(op) == "Max" || std::string(op) == "Min") {
      b.Node(op, {"x", "y", "z"}, {"out"});
    } else {
      b.Node(op, {"x", "y"}, {"out"});
    }
    b.Output("out");
    const TierOutputs r = RunBothTiers(b, {{"x", FloatTensor(xs)}, {"y", FloatTensor(ys)}});
    EXPECT_GT(r.compiled_calls, 0);
    ExpectBitwiseEqual(r, &xs);
  }
}

TEST(BitwiseTiers, ClipWithoutBoundsClampsInfinitiesAsTheKernelDoes) {
  const std::vector<float> xs = BitPatternSweep(1 << 14, 5);
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {static_cast<int64_t>(xs.size())});
  b.FloatInit("lo", {}, {-1.5f}).FloatInit("hi", {}, {2.25f});
  b.Node("Clip", {"x", "lo"}, {"y"});
  b.Node("Clip", {"y"}, {"z"});
  b.Node("Clip", {"z", "lo", "hi"}, {"w"});
  b.Output("w");
  const TierOutputs r = RunBothTiers(b, {{"x", FloatTensor(xs)}});
  EXPECT_GT(r.compiled_calls, 0);
  ExpectBitwiseEqual(r, &xs);
}

// A fused chain: SiLU, a decomposed GELU (fused into one Gelu node at load)
// and a squaring Pow, with broadcast constants.
TEST(BitwiseTiers, FusedElementwiseChain) {
  const std::vector<float> xs = BitPatternSweep(1 << 16, 99);
  OnnxModelBuilder b;
  b.Input("x", kFloat, {static_cast<int64_t>(xs.size())});
  b.FloatInit("scale", {1}, {0.37f}).FloatInit("shift", {1}, {-1.25f});
  b.FloatInit("sqrt2", {}, {1.41421356f}).FloatInit("one", {}, {1.0f}).FloatInit("half", {}, {0.5f});
  b.FloatInit("two", {}, {2.0f});
  b.Node("Mul", {"x", "scale"}, {"a"});
  b.Node("Add", {"a", "shift"}, {"c"});
  b.Node("Sigmoid", {"c"}, {"s"});
  b.Node("Mul", {"c", "s"}, {"silu"});
  b.Node("Div", {"silu", "sqrt2"}, {"d"});
  b.Node("Erf", {"d"}, {"e"});
  b.Node("Add", {"e", "one"}, {"e1"});
  b.Node("Mul", {"silu", "e1"}, {"g"});
  b.Node("Mul", {"g", "half"}, {"gelu"});
  b.Node("Pow", {"gelu", "two"}, {"sq"});
  b.Node("Tanh", {"sq"}, {"y"});
  b.Output("y");
  const TierOutputs r = RunBothTiers(b, {{"x", FloatTensor(xs)}});
  EXPECT_GT(r.compiled_calls, 0);
  EXPECT_TRUE(r.stayed_interpreted.empty());
  ExpectBitwiseEqual(r, &xs);
}

// What the mode cannot reproduce stays interpreted, and the model's outputs
// are still the interpreter's bits: a MatMul small enough for the
// interpreter's plain loop, a Softmax (sums over rows in an order of its
// own) and Elu (libm's expm1).
TEST(BitwiseTiers, RegionsWithoutExactCodeStayInterpreted) {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {4, 8});
  std::vector<float> w(8 * 8);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.01f * static_cast<float>(static_cast<int>(i % 17) - 8);
  b.FloatInit("w", {8, 8}, w);
  b.Node("MatMul", {"x", "w"}, {"m"});
  b.Node("Softmax", {"m"}, {"s"});
  b.Node("Elu", {"s"}, {"y"});
  b.Output("y");
  std::vector<float> x(32);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.1f * static_cast<float>(i) - 1.3f;
  Tensor xt = Tensor::Allocate(DType::kFloat32, {4, 8}).value();
  std::memcpy(xt.data<float>(), x.data(), x.size() * sizeof(float));
  const TierOutputs r = RunBothTiers(b, {{"x", std::move(xt)}});
  EXPECT_EQ(r.compiled_calls, 0);
  EXPECT_FALSE(r.stayed_interpreted.empty());
  ExpectBitwiseEqual(r);
}

struct GemmCase {
  int64_t m, k, n;
  const char* activation;  // applied after the MatMul (fused at load), "" for none
  bool bias, residual;
  bool dynamic_m;  // A's rows symbolic: one shape-generic version
  int threads;
};

std::vector<float> Uniform(int64_t n, uint32_t seed, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  uint32_t s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = scale * (static_cast<float>(s >> 8) / 8388608.0f - 1.0f);
  }
  return v;
}

// MatMul with a constant weight, with the epilogues the load-time fusion
// folds into it, over M at every remainder of the interpreter's 6-row tiles
// (1 and 2 rows sum in more chains), K across its 256-deep blocks, and N
// below, at and above vector widths.
TEST(BitwiseTiers, GemmRegionsSumInTheInterpretersOrder) {
  const std::vector<GemmCase> cases = {
      {1, 300, 64, "", false, false, false, 1},     {2, 256, 40, "Relu", true, false, false, 1},
      {3, 600, 17, "", true, true, false, 1},       {5, 129, 100, "Sigmoid", true, false, false, 1},
      {6, 513, 33, "Tanh", false, true, false, 1},  {7, 64, 48, "", true, false, false, 2},
      {13, 257, 96, "Relu", true, true, false, 2},  {50, 700, 130, "", true, false, false, 2},
      {32, 256, 512, "Relu", true, false, true, 1}, {11, 300, 64, "Sigmoid", true, true, true, 2},
  };
  for (const GemmCase& c : cases) {
    SCOPED_TRACE(std::to_string(c.m) + "x" + std::to_string(c.k) + "x" + std::to_string(c.n) + " " + c.activation +
                 (c.bias ? " bias" : "") + (c.residual ? " residual" : "") + (c.dynamic_m ? " dynamic M" : "") +
                 " threads " + std::to_string(c.threads));
    OnnxModelBuilder b;
    b.Input("x", kFloat, {c.dynamic_m ? -1 : c.m, c.k}, {"M"});
    b.FloatInit("w", {c.k, c.n}, Uniform(c.k * c.n, 7, 1.0f / std::sqrt(static_cast<float>(c.k))));
    std::string y = "mm";
    b.Node("MatMul", {"x", "w"}, {y});
    if (c.bias) {
      b.FloatInit("bias", {c.n}, Uniform(c.n, 11, 0.5f));
      b.Node("Add", {y, "bias"}, {"biased"});
      y = "biased";
    }
    if (c.residual) {
      b.Input("r", kFloat, {c.dynamic_m ? -1 : c.m, c.n}, {"M"});
      b.Node("Add", {y, "r"}, {"res"});
      y = "res";
    }
    if (*c.activation) {
      b.Node(c.activation, {y}, {"act"});
      y = "act";
    }
    b.Node("Identity", {y}, {"out"});
    b.Output("out");
    std::shared_ptr<const Model> model = Load(b);
    ASSERT_NE(model, nullptr);
    SessionOptions interp_options;
    interp_options.tier = TierPolicy::kInterpreter;
    interp_options.intra_op_threads = c.threads;
    auto interp = Session::Create(model, interp_options);
    ASSERT_TRUE(interp.ok()) << interp.status().ToString();
    SessionOptions options = JitOptions(true);
    options.intra_op_threads = c.threads;
    auto jit = Session::Create(model, options);
    ASSERT_TRUE(jit.ok()) << jit.status().ToString();
    // With a dynamic M, rows at every remainder of 6 run through the one
    // generic version.
    const std::vector<int64_t> ms =
        c.dynamic_m ? std::vector<int64_t>{c.m, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11} : std::vector<int64_t>{c.m, c.m};
    for (int64_t m : ms) {
      std::vector<NamedTensor> inputs;
      Tensor x = Tensor::Allocate(DType::kFloat32, {m, c.k}).value();
      const std::vector<float> xv = Uniform(m * c.k, static_cast<uint32_t>(m), 1.0f);
      std::memcpy(x.data<float>(), xv.data(), xv.size() * sizeof(float));
      inputs.push_back({"x", std::move(x)});
      if (c.residual) {
        Tensor r = Tensor::Allocate(DType::kFloat32, {m, c.n}).value();
        const std::vector<float> rv = Uniform(m * c.n, 99, 1.0f);
        std::memcpy(r.data<float>(), rv.data(), rv.size() * sizeof(float));
        inputs.push_back({"r", std::move(r)});
      }
      auto want = (*interp)->Run(inputs);
      ASSERT_TRUE(want.ok()) << want.status().ToString();
      auto got = (*jit)->Run(inputs);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      std::string examples;
      EXPECT_EQ(BitDifferences((*got)[0].tensor, (*want)[0].tensor, nullptr, &examples), 0) << "M " << m << "\n"
                                                                                            << examples;
    }
    int64_t gemm_calls = 0, failures = 0;
    for (const RegionStats& r : (*jit)->stats().regions) {
      if (r.kind == "gemm") gemm_calls += r.compiled_calls;
      failures += r.verify_failures;
    }
    EXPECT_GT(gemm_calls, 0) << "the GEMM did not run compiled";
    EXPECT_EQ(failures, 0);
  }
}

// A Gemm node with alpha, beta and a transposed weight: the interpreter
// scales, adds beta * C, then the activation, and so does the code.
TEST(BitwiseTiers, GemmOpWithAlphaBetaAndTransposedWeight) {
  const int64_t m = 9, k = 270, n = 24;
  OnnxModelBuilder b;
  b.Input("x", kFloat, {m, k});
  b.FloatInit("w", {n, k}, Uniform(n * k, 5, 0.1f)).FloatInit("c", {n}, Uniform(n, 6, 1.0f));
  onnx::NodeProto& g = b.Node("Gemm", {"x", "w", "c"}, {"g"});
  OnnxModelBuilder::IntAttr(g, "transB", 1);
  OnnxModelBuilder::FloatAttr(g, "alpha", 0.7f);
  OnnxModelBuilder::FloatAttr(g, "beta", 1.3f);
  b.Node("Relu", {"g"}, {"y"});
  b.Output("y");
  Tensor x = Tensor::Allocate(DType::kFloat32, {m, k}).value();
  const std::vector<float> xv = Uniform(m * k, 3, 1.0f);
  std::memcpy(x.data<float>(), xv.data(), xv.size() * sizeof(float));
  const TierOutputs r = RunBothTiers(b, {{"x", std::move(x)}});
  EXPECT_GT(r.compiled_calls, 0);
  ExpectBitwiseEqual(r);
}

// The same sweep through the default JIT, whose exp is its own polynomial:
// some bits differ, which is what the mode is for (and shows the comparison
// above can fail).
TEST(BitwiseTiers, DefaultModeExpDiffersFromTheInterpreter) {
  const std::vector<float> xs = BitPatternSweep(1 << 16, 0x1234);
  OnnxModelBuilder b;
  b.Input("x", kFloat, {static_cast<int64_t>(xs.size())});
  b.Node("Exp", {"x"}, {"y"});
  b.Output("y");
  const TierOutputs r = RunBothTiers(b, {{"x", FloatTensor(xs)}}, /*bitwise=*/false);
  ASSERT_EQ(r.compiled.size(), 1u);
  EXPECT_GT(r.compiled_calls, 0);
  EXPECT_GT(BitDifferences(r.compiled[0], r.interpreted[0], nullptr, nullptr), 0);
}

// In the mode, shadow verification compares bits: code whose adds were
// turned into subtracts (the test hook) never serves.
TEST(BitwiseTiers, VerificationComparesBits) {
  const std::vector<float> xs = BitPatternSweep(1 << 12, 3);
  OnnxModelBuilder b;
  b.Input("x", kFloat, {static_cast<int64_t>(xs.size())});
  b.FloatInit("c", {1}, {1e-30f});
  b.Node("Add", {"x", "c"}, {"a"});
  b.Node("Exp", {"a"}, {"y"});
  b.Output("y");
  std::shared_ptr<const Model> model = Load(b);
  ASSERT_NE(model, nullptr);
  SessionOptions options = JitOptions(true);
  options.jit_test_perturb_ir = true;
  auto jit = Session::Create(model, options);
  ASSERT_TRUE(jit.ok()) << jit.status().ToString();
  SessionOptions interp_options;
  interp_options.tier = TierPolicy::kInterpreter;
  auto interp = Session::Create(model, interp_options);
  ASSERT_TRUE(interp.ok());
  auto want = (*interp)->Run({{"x", FloatTensor(xs)}});
  ASSERT_TRUE(want.ok());
  for (int i = 0; i < 3; ++i) {
    auto got = (*jit)->Run({{"x", FloatTensor(xs)}});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(BitDifferences((*got)[0].tensor, (*want)[0].tensor, nullptr, nullptr), 0);
  }
  int64_t failures = 0, compiled = 0;
  for (const RegionStats& r : (*jit)->stats().regions) {
    failures += r.verify_failures;
    compiled += r.compiled_calls;
  }
  EXPECT_EQ(failures, 1);
  EXPECT_EQ(compiled, 0);
}

}  // namespace
}  // namespace kiln
