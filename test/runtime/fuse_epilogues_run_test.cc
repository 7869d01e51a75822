// Epilogue fusion end to end: models whose Conv/MatMul/Gemm -> Add ->
// activation chains the pipeline fuses run through kiln::Session, and their
// outputs must match a reference that runs every original node with its
// own kernel (kernels::DefaultKernelRegistry, no graph pipeline).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "graph/onnx_loader.h"
#include "kernels/kernel.h"
#include "kiln/session.h"
#include "runtime/model_internal.h"
#include "test/model_builder.h"
#include "test/runtime/reference_run_util.h"
#include "test/runtime/session_check_util.h"
#include "test/tensors.h"

namespace kiln {
namespace {

using testing::ElementCount;
using testing::OnnxModelBuilder;
using testing::RandomFloats;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

// The unoptimised graph, node by node with the interpreter's kernels.
StatusOr<Tensor> RunReference(const std::string& bytes, const Tensor& input) {
  KILN_ASSIGN_OR_RETURN(graph::Graph g, graph::LoadOnnxModel(bytes.data(), bytes.size(), {}));
  return testing::RunUnoptimizedReference(bytes, {{g.value(g.inputs()[0]).name, input}});
}

// Loads `b`, checks that the pipeline left `fused_op` and `expected_nodes`
// live nodes, runs it and compares with the reference.
void ExpectFusedMatchesReference(OnnxModelBuilder& b, const Dims& input_dims, const std::string& fused_op,
                                 size_t expected_nodes, unsigned seed = 1) {
  const std::string bytes = b.Serialize();
  // NCHW throughout, so that the count is the same on every host (the
  // channels-last run below adds Transposes at the edges).
  std::shared_ptr<const Model> model = testing::LoadWithLayout(bytes, ChannelsLast::kOff);
  ASSERT_NE(model, nullptr);
  const graph::Graph& g = ModelGraph(*model);
  EXPECT_EQ(g.num_live_nodes(), expected_nodes);
  bool found = false;
  for (size_t i = 0; i < g.num_nodes(); ++i) {
    const graph::Node& n = g.node(static_cast<graph::NodeId>(i));
    found |= !n.dead && n.op_type == fused_op && n.domain == "kiln";
  }
  EXPECT_TRUE(found) << "no live kiln." << fused_op;

  std::vector<float> x = RandomFloats(ElementCount(input_dims), seed, -2.0f, 2.0f);
  Tensor input = Tensor::View(DType::kFloat32, input_dims, x.data());
  auto reference = RunReference(bytes, input);
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  SCOPED_TRACE(fused_op);
  testing::ExpectInterpretedMatches(model, input, *reference);
  testing::ExpectChannelsLastMatches(bytes, input, *reference);
}

// Appends `act` (one of the fusable activations) reading `in`, writing `out`.
void AddActivation(OnnxModelBuilder& b, const std::string& act, const std::string& in, const std::string& out) {
  if (act == "Clip") {
    b.FloatInit("clip_lo", {}, {-0.5f}).FloatInit("clip_hi", {}, {0.75f});
    b.Node("Clip", {in, "clip_lo", "clip_hi"}, {out});
    return;
  }
  if (act == "GeluDecomposed") {  // as PyTorch exports nn.GELU(); fuse_gelu makes it a Gelu
    b.FloatInit("gelu_sqrt2", {}, {1.41421354f}).FloatInit("gelu_one", {}, {1.0f}).FloatInit("gelu_half", {}, {0.5f});
    b.Node("Div", {in, "gelu_sqrt2"}, {in + "_scaled"});
    b.Node("Erf", {in + "_scaled"}, {in + "_erf"});
    b.Node("Add", {in + "_erf", "gelu_one"}, {in + "_erf1"});
    b.Node("Mul", {in, in + "_erf1"}, {in + "_prod"});
    b.Node("Mul", {in + "_prod", "gelu_half"}, {out});
    return;
  }
  onnx::NodeProto& n = b.Node(act, {in}, {out});
  if (act == "LeakyRelu") OnnxModelBuilder::FloatAttr(n, "alpha", 0.3f);
  if (act == "Elu") OnnxModelBuilder::FloatAttr(n, "alpha", 0.7f);
  if (act == "HardSigmoid") {
    OnnxModelBuilder::FloatAttr(n, "alpha", 0.3f);
    OnnxModelBuilder::FloatAttr(n, "beta", 0.4f);
  }
}

const char* const kActivations[] = {"Relu",      "LeakyRelu",   "Clip", "Sigmoid",       "Tanh",
                                    "HardSwish", "HardSigmoid", "Elu",  "GeluDecomposed"};

TEST(FuseEpiloguesRunTest, ConvAddActivationMatchesUnfused) {
  for (const char* act : kActivations) {
    for (bool conv_bias : {false, true}) {
      SCOPED_TRACE(std::string(act) + (conv_bias ? " with conv bias" : ""));
      OnnxModelBuilder b;
      b.Input("x", kFloat, {1, 3, 9, 9})
          .FloatInit("w", {8, 3, 3, 3}, RandomFloats(8 * 27, 2, -0.5f, 0.5f))
          .FloatInit("cb", {8}, RandomFloats(8, 3))
          .FloatInit("bias", {1, 8, 1, 1}, RandomFloats(8, 4))
          .Output("y");
      onnx::NodeProto& conv = b.Node(
          "Conv", conv_bias ? std::vector<std::string>{"x", "w", "cb"} : std::vector<std::string>{"x", "w"}, {"c"});
      OnnxModelBuilder::IntsAttr(conv, "pads", {1, 1, 1, 1});
      OnnxModelBuilder::IntsAttr(conv, "strides", {2, 2});
      b.Node("Add", {"c", "bias"}, {"a"});
      AddActivation(b, act, "a", "y");
      ExpectFusedMatchesReference(b, {1, 3, 9, 9}, "FusedConv", 1);
    }
  }
}

TEST(FuseEpiloguesRunTest, GroupedConvActivationWithoutAdd) {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {2, 4, 6, 6}).FloatInit("w", {4, 1, 3, 3}, RandomFloats(36, 5)).Output("y");
  onnx::NodeProto& conv = b.Node("Conv", {"x", "w"}, {"c"});
  OnnxModelBuilder::IntAttr(conv, "group", 4);
  b.Node("Relu", {"c"}, {"y"});
  ExpectFusedMatchesReference(b, {2, 4, 6, 6}, "FusedConv", 1);
}

// Small products take the C++ loop, larger ones oneDNN; both apply the
// bias and activation.
TEST(FuseEpiloguesRunTest, MatMulAddActivationMatchesUnfused) {
  struct Shape {
    Dims a;
    int64_t n;
  };
  for (const Shape& s : {Shape{{2, 3, 8}, 5}, Shape{{4, 32, 64}, 96}}) {
    for (const char* act : kActivations) {
      SCOPED_TRACE(std::string(act) + " M*K " + DimsToString(s.a));
      const int64_t k = s.a.back();
      OnnxModelBuilder b;
      b.Input("x", kFloat, s.a)
          .FloatInit("w", {k, s.n}, RandomFloats(k * s.n, 6, -0.3f, 0.3f))
          .FloatInit("bias", {s.n}, RandomFloats(s.n, 7))
          .Output("y");
      b.Node("MatMul", {"x", "w"}, {"m"});
      b.Node("Add", {"bias", "m"}, {"a"});
      AddActivation(b, act, "a", "y");
      ExpectFusedMatchesReference(b, s.a, "FusedMatMul", 1);
    }
  }
}

TEST(FuseEpiloguesRunTest, GemmAddReluMatchesUnfused) {
  for (bool has_c : {false, true}) {
    SCOPED_TRACE(has_c ? "with C" : "without C");
    OnnxModelBuilder b;
    b.Input("x", kFloat, {16, 40})
        .FloatInit("w", {24, 40}, RandomFloats(24 * 40, 8, -0.3f, 0.3f))
        .FloatInit("c", {1, 24}, RandomFloats(24, 9))
        .FloatInit("bias", {24}, RandomFloats(24, 10))
        .Output("y");
    onnx::NodeProto& gemm =
        b.Node("Gemm", has_c ? std::vector<std::string>{"x", "w", "c"} : std::vector<std::string>{"x", "w"}, {"g"});
    OnnxModelBuilder::IntAttr(gemm, "transB", 1);
    OnnxModelBuilder::FloatAttr(gemm, "alpha", 0.5f);
    OnnxModelBuilder::FloatAttr(gemm, "beta", 2.0f);
    b.Node("Add", {"g", "bias"}, {"a"});
    b.Node("Relu", {"a"}, {"y"});
    ExpectFusedMatchesReference(b, {16, 40}, "FusedMatMul", 1);
  }
}

TEST(FuseEpiloguesRunTest, GemmWithCThenSigmoid) {
  OnnxModelBuilder b;
  b.Input("x", kFloat, {3, 5})
      .FloatInit("w", {5, 4}, RandomFloats(20, 11))
      .FloatInit("c", {3, 4}, RandomFloats(12, 12))
      .Output("y");
  b.Node("Gemm", {"x", "w", "c"}, {"g"});
  b.Node("Sigmoid", {"g"}, {"y"});
  ExpectFusedMatchesReference(b, {3, 5}, "FusedMatMul", 1);
}

// --- Residual add --------------------------------------------------------
// The residual is the graph input itself (ResNet's identity shortcut, a
// transformer's skip connection) or another branch's result; it sits on
// either side of its Add. Activations: none, Relu, and one with parameters.

const char* const kResidualActivations[] = {"", "Relu", "LeakyRelu", "HardSigmoid"};

// Appends Add(`in`, `residual`) (operands swapped when `residual_first`)
// and the activation (none when `act` is empty), ending in "y".
void AddResidualEpilogue(OnnxModelBuilder& b, const std::string& in, const std::string& residual, bool residual_first,
                         const std::string& act) {
  const std::string sum = act.empty() ? "y" : "s";
  b.Node("Add", residual_first ? std::vector<std::string>{residual, in} : std::vector<std::string>{in, residual},
         {sum});
  if (!act.empty()) AddActivation(b, act, sum, "y");
}

TEST(FuseEpiloguesRunTest, ConvResidualMatchesUnfused) {
  for (const char* act : kResidualActivations) {
    for (bool bias : {false, true}) {
      for (bool residual_first : {false, true}) {
        SCOPED_TRACE(::testing::Message()
                     << "activation '" << act << "' bias " << bias << " residual first " << residual_first);
        // x:[1,8,9,9] -> Conv 3x3 (8 -> 8, pads 1) -> [Add bias] -> Add(x) -> [act]
        OnnxModelBuilder b;
        b.Input("x", kFloat, {1, 8, 9, 9})
            .FloatInit("w", {8, 8, 3, 3}, RandomFloats(8 * 72, 21, -0.3f, 0.3f))
            .FloatInit("bias", {1, 8, 1, 1}, RandomFloats(8, 22))
            .Output("y");
        onnx::NodeProto& conv = b.Node("Conv", {"x", "w"}, {"c"});
        OnnxModelBuilder::IntsAttr(conv, "pads", {1, 1, 1, 1});
        if (bias) b.Node("Add", {"c", "bias"}, {"cb"});
        AddResidualEpilogue(b, bias ? "cb" : "c", "x", residual_first, act);
        ExpectFusedMatchesReference(b, {1, 8, 9, 9}, "FusedConv", 1);
      }
    }
  }
}

// Conv shapes for which oneDNN (AVX2) writes a row-major dst, so the
// residual runs as a binary post-op instead of the pass after the
// primitive: groups of 3 channels, and dilation.
TEST(FuseEpiloguesRunTest, ConvResidualAsPostOpMatchesUnfused) {
  for (const char* act : kResidualActivations) {
    for (bool dilated : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "activation '" << act << "' " << (dilated ? "dilated" : "grouped"));
      OnnxModelBuilder b;
      b.Input("x", kFloat, {2, 6, 9, 9})
          .FloatInit("w", {6, dilated ? 6 : 3, 3, 3}, RandomFloats(dilated ? 324 : 162, 41, -0.3f, 0.3f))
          .FloatInit("cb", {6}, RandomFloats(6, 42))
          .Output("y");
      onnx::NodeProto& conv = b.Node("Conv", {"x", "w", "cb"}, {"c"});
      if (dilated) {
        OnnxModelBuilder::IntsAttr(conv, "pads", {2, 2, 2, 2});
        OnnxModelBuilder::IntsAttr(conv, "dilations", {2, 2});
      } else {
        OnnxModelBuilder::IntsAttr(conv, "pads", {1, 1, 1, 1});
        OnnxModelBuilder::IntAttr(conv, "group", 2);
      }
      AddResidualEpilogue(b, "c", "x", /*residual_first=*/true, act);
      ExpectFusedMatchesReference(b, {2, 6, 9, 9}, "FusedConv", 1);
    }
  }
}

TEST(FuseEpiloguesRunTest, ResNetBlockWithProjectionShortcutMatchesUnfused) {
  // A downsampling basic block: 3x3/2 conv + Relu, 3x3 conv, a 1x1/2
  // projection of x as the shortcut, their sum, Relu. Batch 2, 16 -> 24
  // channels, so the primitives use blocked layouts and R is reordered.
  OnnxModelBuilder b;
  b.Input("x", kFloat, {2, 16, 12, 12})
      .FloatInit("w1", {24, 16, 3, 3}, RandomFloats(24 * 144, 23, -0.2f, 0.2f))
      .FloatInit("b1", {24}, RandomFloats(24, 24))
      .FloatInit("w2", {24, 24, 3, 3}, RandomFloats(24 * 216, 25, -0.2f, 0.2f))
      .FloatInit("b2", {24}, RandomFloats(24, 26))
      .FloatInit("wd", {24, 16, 1, 1}, RandomFloats(24 * 16, 27, -0.3f, 0.3f))
      .Output("y");
  onnx::NodeProto& c1 = b.Node("Conv", {"x", "w1", "b1"}, {"c1"});
  OnnxModelBuilder::IntsAttr(c1, "pads", {1, 1, 1, 1});
  OnnxModelBuilder::IntsAttr(c1, "strides", {2, 2});
  b.Node("Relu", {"c1"}, {"r1"});
  onnx::NodeProto& c2 = b.Node("Conv", {"r1", "w2", "b2"}, {"c2"});
  OnnxModelBuilder::IntsAttr(c2, "pads", {1, 1, 1, 1});
  onnx::NodeProto& down = b.Node("Conv", {"x", "wd"}, {"d"});
  OnnxModelBuilder::IntsAttr(down, "strides", {2, 2});
  AddResidualEpilogue(b, "c2", "d", /*residual_first=*/false, "Relu");
  // Conv+Relu, then one of c2/d absorbs Add(c2, d) + Relu, the other conv
  // is its residual.
  ExpectFusedMatchesReference(b, {2, 16, 12, 12}, "FusedConv", 3);
}

// Small products take the C++ loop, larger ones oneDNN; both add the
// residual between the bias and the activation.
TEST(FuseEpiloguesRunTest, MatMulResidualMatchesUnfused) {
  for (const Dims& a_dims : {Dims{2, 3, 8}, Dims{4, 32, 64}, Dims{64, 64}}) {
    for (const char* act : kResidualActivations) {
      for (bool bias : {false, true}) {
        for (bool residual_first : {false, true}) {
          SCOPED_TRACE(::testing::Message() << DimsToString(a_dims) << " activation '" << act << "' bias " << bias
                                            << " residual first " << residual_first);
          // x -> MatMul([K, K]) -> [Add bias] -> Add(x) -> [act]: the
          // transformer's projection plus skip connection.
          const int64_t k = a_dims.back();
          OnnxModelBuilder b;
          b.Input("x", kFloat, a_dims)
              .FloatInit("w", {k, k}, RandomFloats(k * k, 31, -0.3f, 0.3f))
              .FloatInit("bias", {k}, RandomFloats(k, 32))
              .Output("y");
          b.Node("MatMul", {"x", "w"}, {"m"});
          if (bias) b.Node("Add", {"m", "bias"}, {"mb"});
          AddResidualEpilogue(b, bias ? "mb" : "m", "x", residual_first, act);
          ExpectFusedMatchesReference(b, a_dims, "FusedMatMul", 1);
        }
      }
    }
  }
}

TEST(FuseEpiloguesRunTest, MatMulWithBatchedWeightsResidualMatchesUnfused) {
  // B with a real batch: oneDNN's batched matmul, R in the 3-D dst layout.
  OnnxModelBuilder b;
  b.Input("x", kFloat, {3, 24, 40}).FloatInit("w", {3, 40, 40}, RandomFloats(3 * 1600, 33, -0.2f, 0.2f)).Output("y");
  b.Node("MatMul", {"x", "w"}, {"m"});
  AddResidualEpilogue(b, "m", "x", /*residual_first=*/true, "Relu");
  ExpectFusedMatchesReference(b, {3, 24, 40}, "FusedMatMul", 1);
}

TEST(FuseEpiloguesRunTest, GemmResidualMatchesUnfused) {
  for (const char* act : kResidualActivations) {
    for (bool has_c : {false, true}) {
      for (bool bias : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "activation '" << act << "' C " << has_c << " bias " << bias);
        // Gemm(x, w^T, C) with alpha 0.5, beta 2 -> [Add bias] -> Add(x) -> [act]
        OnnxModelBuilder b;
        b.Input("x", kFloat, {16, 40})
            .FloatInit("w", {40, 40}, RandomFloats(1600, 34, -0.3f, 0.3f))
            .FloatInit("c", {1, 40}, RandomFloats(40, 35))
            .FloatInit("bias", {40}, RandomFloats(40, 36))
            .Output("y");
        onnx::NodeProto& gemm =
            b.Node("Gemm", has_c ? std::vector<std::string>{"x", "w", "c"} : std::vector<std::string>{"x", "w"}, {"g"});
        OnnxModelBuilder::IntAttr(gemm, "transB", 1);
        OnnxModelBuilder::FloatAttr(gemm, "alpha", 0.5f);
        OnnxModelBuilder::FloatAttr(gemm, "beta", 2.0f);
        if (bias) b.Node("Add", {"g", "bias"}, {"gb"});
        AddResidualEpilogue(b, bias ? "gb" : "g", "x", /*residual_first=*/has_c, act);
        ExpectFusedMatchesReference(b, {16, 40}, "FusedMatMul", 1);
      }
    }
  }
}

// The kernels check the residual themselves: a kiln node written by hand
// (or a model whose symbolic dims lie) with a residual of the wrong shape
// fails cleanly instead of reading out of bounds.
TEST(FuseEpiloguesRunTest, ResidualOfTheWrongShapeIsInvalidArgument) {
  struct Case {
    std::string op;
    Dims x, w, r;
  };
  for (const Case& c :
       {Case{"FusedConv", {1, 8, 5, 5}, {8, 8, 1, 1}, {1, 8, 5, 4}},
        Case{"FusedMatMul", {4, 64, 64}, {64, 64}, {4, 64, 32}}, Case{"FusedMatMul", {2, 8}, {8, 8}, {8, 2}}}) {
    SCOPED_TRACE(c.op + " R " + DimsToString(c.r));
    OnnxModelBuilder b;
    b.Input("x", kFloat, c.x)
        .Input("r", kFloat, c.r)
        .FloatInit("w", c.w, RandomFloats(ElementCount(c.w), 51))
        .Output("y");
    onnx::NodeProto& n = b.Node(c.op, {"x", "w", "", "r"}, {"y"});
    n.set_domain("kiln");
    onnx::ModelProto proto;
    ASSERT_TRUE(proto.ParseFromString(b.Serialize()));
    onnx::OperatorSetIdProto* kiln_import = proto.add_opset_import();
    kiln_import->set_domain("kiln");
    kiln_import->set_version(1);
    const std::string bytes = proto.SerializeAsString();
    auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    SessionOptions options;
    options.tier = TierPolicy::kInterpreter;
    auto session = Session::Create(*model, options);
    ASSERT_TRUE(session.ok()) << session.status().ToString();
    std::vector<float> x = RandomFloats(ElementCount(c.x), 52), r = RandomFloats(ElementCount(c.r), 53);
    auto out = (*session)->Run(
        {{"x", Tensor::View(DType::kFloat32, c.x, x.data())}, {"r", Tensor::View(DType::kFloat32, c.r, r.data())}});
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument) << out.status().ToString();
    EXPECT_NE(out.status().message().find("residual"), std::string::npos) << out.status().ToString();
  }
}

}  // namespace
}  // namespace kiln
