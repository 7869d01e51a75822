// Attention regions end to end: attention written as exporters write it
// (Reshape-free [b, s, h, d] inputs, head Transposes, MatMul(Q, K^T), a Div
// or two Mul scales, an optional mask Add, Softmax, MatMul(., V), the
// Transpose back) becomes one region whose compiled code must match the
// interpreter's node-by-node run: heads 1/4/12, sequence lengths 1, 7, 128,
// 130 and 384, head dims 64 and 40, masks of two broadcast forms, and a
// stream of sequence lengths through a symbolic-length model, compiled once.
// The output is bound to a buffer with guard bands, so compiled code writing
// out of bounds fails the test. Chains the code does not handle stay
// interpreted.
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
constexpr int64_t kGuard = 48;
constexpr float kSentinel = -7777.25f;

enum class Mask { kNone, kPadding, kBias };  // [b, 1, 1, sk]; [1, 1, sq, sk]

struct AttentionCase {
  int64_t batch, heads, seq, head_dim;
  bool mul_scale;  // Mul q and k by d^-1/4 (newer exports) instead of Div the scores by sqrt(d)
  Mask mask;
};

std::string Describe(const AttentionCase& c) {
  return "b" + std::to_string(c.batch) + " h" + std::to_string(c.heads) + " s" + std::to_string(c.seq) + " d" +
         std::to_string(c.head_dim) + (c.mul_scale ? " mul" : " div") +
         (c.mask == Mask::kNone      ? ""
          : c.mask == Mask::kPadding ? " padding mask"
                                     : " bias mask");
}

Dims MaskDims(const AttentionCase& c, int64_t seq) {
  return c.mask == Mask::kPadding ? Dims{c.batch, 1, 1, seq} : Dims{1, 1, seq, seq};
}

// q, k, v: [b, seq, h, d] (seq symbolic when `symbolic_seq`); y likewise.
std::string AttentionModel(const AttentionCase& c, bool symbolic_seq) {
  OnnxModelBuilder b(17);
  const int64_t s = symbolic_seq ? -1 : c.seq;
  const std::vector<std::string> names = {"batch", "seq", "heads", "dim"};
  for (const char* x : {"q", "k", "v"}) b.Input(x, kFloat, {c.batch, s, c.heads, c.head_dim}, names);
  if (c.mask != Mask::kNone) {
    const Dims m = c.mask == Mask::kPadding ? Dims{c.batch, 1, 1, s} : Dims{1, 1, s, s};
    b.Input("mask", kFloat, m,
            c.mask == Mask::kPadding ? std::vector<std::string>{"batch", "one", "one", "seq"}
                                     : std::vector<std::string>{"one", "one", "seq", "seq"});
  }
  b.Output("y");
  auto transpose = [&](const std::string& in, const std::string& out, const std::vector<int64_t>& perm) {
    OnnxModelBuilder::IntsAttr(b.Node("Transpose", {in}, {out}), "perm", perm);
  };
  transpose("q", "qh", {0, 2, 1, 3});
  transpose("k", "kt", {0, 2, 3, 1});
  transpose("v", "vh", {0, 2, 1, 3});
  std::string scores = "scores";
  if (c.mul_scale) {
    b.FloatInit("quarter", {}, {1.0f / std::sqrt(std::sqrt(static_cast<float>(c.head_dim)))});
    b.Node("Mul", {"qh", "quarter"}, {"qs"});
    b.Node("Mul", {"kt", "quarter"}, {"ks"});
    b.Node("MatMul", {"qs", "ks"}, {scores});
  } else {
    b.FloatInit("root", {}, {std::sqrt(static_cast<float>(c.head_dim))});
    b.Node("MatMul", {"qh", "kt"}, {"raw"});
    b.Node("Div", {"raw", "root"}, {scores});
  }
  if (c.mask != Mask::kNone) {
    b.Node("Add", {scores, "mask"}, {"masked"});
    scores = "masked";
  }
  OnnxModelBuilder::IntAttr(b.Node("Softmax", {scores}, {"probs"}), "axis", -1);
  b.Node("MatMul", {"probs", "vh"}, {"ctx"});
  transpose("ctx", "y", {0, 2, 1, 3});
  return b.Serialize();
}

std::unique_ptr<Session> MakeSession(const std::string& bytes, TierPolicy tier, int threads) {
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return nullptr;
  SessionOptions options;
  options.tier = tier;
  options.intra_op_threads = threads;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  auto session = Session::Create(*model, options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  return session.ok() ? std::move(session).value() : nullptr;
}

struct Inputs {
  std::vector<float> q, k, v, mask;
  std::vector<NamedTensor> named;
};

Inputs MakeInputs(const AttentionCase& c, int64_t seq, uint32_t seed) {
  Inputs in;
  const Dims dims = {c.batch, seq, c.heads, c.head_dim};
  const int64_t n = testing::ElementCount(dims);
  in.q = RandomFloats(n, seed, -2, 2);
  in.k = RandomFloats(n, seed + 1, -2, 2);
  in.v = RandomFloats(n, seed + 2, -1, 1);
  in.named = {{"q", Tensor::View(DType::kFloat32, dims, in.q.data())},
              {"k", Tensor::View(DType::kFloat32, dims, in.k.data())},
              {"v", Tensor::View(DType::kFloat32, dims, in.v.data())}};
  if (c.mask != Mask::kNone) {
    const Dims m = MaskDims(c, seq);
    in.mask = RandomFloats(testing::ElementCount(m), seed + 3, -4, 0);
    in.named.push_back({"mask", Tensor::View(DType::kFloat32, m, in.mask.data())});
  }
  return in;
}

std::vector<float> RunInterpreted(Session& session, const Inputs& in) {
  auto out = session.Run(in.named);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? testing::ToVector<float>((*out)[0].tensor) : std::vector<float>{};
}

// Runs with y bound inside a buffer with guard bands; checks them.
std::vector<float> RunGuarded(Session& session, const Inputs& in, const Dims& y_dims) {
  const int64_t n = testing::ElementCount(y_dims);
  std::vector<float> buffer(static_cast<size_t>(n + 2 * kGuard), kSentinel);
  RunOptions options;
  options.bound_outputs = {{"y", Tensor::View(DType::kFloat32, y_dims, buffer.data() + kGuard)}};
  auto out = session.Run(in.named, options);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  for (int64_t g = 0; g < kGuard; ++g) {
    EXPECT_EQ(buffer[static_cast<size_t>(g)], kSentinel) << "write before the output at " << g;
    EXPECT_EQ(buffer[static_cast<size_t>(kGuard + n + g)], kSentinel) << "write after the output at " << g;
  }
  return std::vector<float>(buffer.begin() + kGuard, buffer.begin() + kGuard + n);
}

std::vector<RegionStats> AttentionRegions(const Session& session) {
  std::vector<RegionStats> found;
  for (const RegionStats& r : session.stats().regions) {
    if (r.kind == "attention") found.push_back(r);
  }
  return found;
}

class AttentionShapes : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionShapes, MatchTheInterpreter) {
  const AttentionCase& c = GetParam();
  SCOPED_TRACE(Describe(c));
  const std::string bytes = AttentionModel(c, false);
  const Inputs in = MakeInputs(c, c.seq, 21);
  auto reference = MakeSession(bytes, TierPolicy::kInterpreter, 1);
  ASSERT_NE(reference, nullptr);
  const std::vector<float> expected = RunInterpreted(*reference, in);
  const Dims y_dims = {c.batch, c.seq, c.heads, c.head_dim};
  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    auto jit = MakeSession(bytes, TierPolicy::kJit, threads);
    ASSERT_NE(jit, nullptr);
    RunGuarded(*jit, in, y_dims);  // interpreted; compiles and verifies
    testing::ExpectNearScaled(RunGuarded(*jit, in, y_dims), expected, 1e-5);
    const std::vector<RegionStats> regions = AttentionRegions(*jit);
    ASSERT_EQ(regions.size(), 1u);
    const RegionStats* region = &regions[0];
    EXPECT_EQ(region->tier, "jit") << region->description;
    EXPECT_GE(region->compiled_calls, 1) << region->description;
    EXPECT_DOUBLE_EQ(region->compiled_flops / static_cast<double>(region->compiled_calls),
                     4.0 * static_cast<double>(c.batch * c.heads * c.seq * c.seq * c.head_dim));
    EXPECT_EQ(region->verify_failures, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionShapes,
                         ::testing::Values(AttentionCase{1, 1, 1, 64, false, Mask::kNone},
                                           AttentionCase{1, 4, 7, 64, true, Mask::kNone},
                                           AttentionCase{1, 4, 128, 64, false, Mask::kNone},
                                           AttentionCase{2, 4, 130, 40, true, Mask::kPadding},
                                           AttentionCase{1, 12, 128, 64, false, Mask::kBias},
                                           AttentionCase{1, 12, 384, 64, true, Mask::kNone},
                                           AttentionCase{1, 1, 130, 64, false, Mask::kBias},
                                           AttentionCase{2, 12, 7, 40, false, Mask::kPadding}));

TEST(AttentionRegion, SymbolicSequenceCompilesOnceForAStream) {
  const AttentionCase c{1, 4, 0, 64, true, Mask::kPadding};
  const std::string bytes = AttentionModel(c, true);
  auto reference = MakeSession(bytes, TierPolicy::kInterpreter, 1);
  auto jit = MakeSession(bytes, TierPolicy::kJit, 1);
  ASSERT_NE(reference, nullptr);
  ASSERT_NE(jit, nullptr);
  const std::vector<int64_t> lengths = {5, 64, 130, 1, 77, 256};
  for (int64_t seq : lengths) {
    SCOPED_TRACE("seq " + std::to_string(seq));
    const Inputs in = MakeInputs(c, seq, static_cast<uint32_t>(30 + seq));
    const std::vector<float> expected = RunInterpreted(*reference, in);
    for (int call = 0; call < 2; ++call) {
      testing::ExpectNearScaled(RunGuarded(*jit, in, {c.batch, seq, c.heads, c.head_dim}), expected, 1e-5);
    }
  }
  const std::vector<RegionStats> regions = AttentionRegions(*jit);
  ASSERT_EQ(regions.size(), 1u);
  const RegionStats& region = regions[0];
  EXPECT_EQ(region.break_even.size(), 1u) << "one version for every length";
  EXPECT_EQ(region.failed_compiles, 0);
  EXPECT_EQ(region.verify_failures, 0);
  // Like generic row code, each length's first call verifies the code on
  // it (interpreted); the second runs compiled.
  EXPECT_EQ(region.compiled_calls, static_cast<int64_t>(lengths.size()));
}

// Builds the test's chain with one thing changed and checks that no
// attention region forms.
void ExpectNoAttentionRegion(const std::string& bytes) {
  auto jit = MakeSession(bytes, TierPolicy::kJit, 1);
  ASSERT_NE(jit, nullptr);
  EXPECT_TRUE(AttentionRegions(*jit).empty());
}

TEST(AttentionRegion, NotFusedWhenTheChainDiffers) {
  auto base = [](OnnxModelBuilder& b) {
    for (const char* x : {"q", "k", "v"}) b.Input(x, kFloat, {1, 8, 2, 16});
    b.Output("y");
    OnnxModelBuilder::IntsAttr(b.Node("Transpose", {"q"}, {"qh"}), "perm", {0, 2, 1, 3});
    OnnxModelBuilder::IntsAttr(b.Node("Transpose", {"k"}, {"kt"}), "perm", {0, 2, 3, 1});
    OnnxModelBuilder::IntsAttr(b.Node("Transpose", {"v"}, {"vh"}), "perm", {0, 2, 1, 3});
    b.Node("MatMul", {"qh", "kt"}, {"scores"});
  };
  {
    SCOPED_TRACE("softmax over another axis");
    OnnxModelBuilder b(17);
    base(b);
    OnnxModelBuilder::IntAttr(b.Node("Softmax", {"scores"}, {"probs"}), "axis", 2);
    b.Node("MatMul", {"probs", "vh"}, {"y"});
    ExpectNoAttentionRegion(b.Serialize());
  }
  {
    SCOPED_TRACE("a scale that is not one value");
    OnnxModelBuilder b(17);
    base(b);
    b.FloatInit("scale", {8}, std::vector<float>(8, 0.5f));
    b.Node("Mul", {"scores", "scale"}, {"scaled"});
    b.Node("Softmax", {"scaled"}, {"probs"});
    b.Node("MatMul", {"probs", "vh"}, {"y"});
    ExpectNoAttentionRegion(b.Serialize());
  }
  {
    SCOPED_TRACE("the probabilities are an output too");
    OnnxModelBuilder b(17);
    base(b);
    b.Output("probs");
    b.Node("Softmax", {"scores"}, {"probs"});
    b.Node("MatMul", {"probs", "vh"}, {"y"});
    ExpectNoAttentionRegion(b.Serialize());
  }
  {
    SCOPED_TRACE("the head dim is not contiguous in K");
    OnnxModelBuilder b(17);
    for (const char* x : {"q", "v"}) b.Input(x, kFloat, {1, 2, 8, 16});
    b.Input("kt", kFloat, {1, 2, 16, 8});  // K^T given as is: d is not its last axis
    b.Output("y");
    b.Node("MatMul", {"q", "kt"}, {"scores"});
    b.Node("Softmax", {"scores"}, {"probs"});
    b.Node("MatMul", {"probs", "v"}, {"y"});
    ExpectNoAttentionRegion(b.Serialize());
  }
}

TEST(AttentionRegion, OffWithTheOption) {
  const std::string bytes = AttentionModel({1, 2, 8, 16, false, Mask::kNone}, false);
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(model.ok());
  SessionOptions options;
  options.tier = TierPolicy::kJit;
  options.jit_compile_attention = false;
  auto session = Session::Create(*model, options);
  ASSERT_TRUE(session.ok());
  for (const RegionStats& r : (*session)->stats().regions) EXPECT_NE(r.kind, "attention");
}

}  // namespace
}  // namespace kiln
