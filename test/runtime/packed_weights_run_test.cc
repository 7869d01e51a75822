// MatMul and Gemm with a constant weight run on the packed GEMM
// (kernels/packed_sgemm.h) inside a session; the reference runs the same
// nodes one by one without knowing the weight is constant (oneDNN's matmul).
// Covers A's batch dims folded into rows, transB, alpha, beta and every way
// C broadcasts, at shapes that are not multiples of the GEMM's tiles, at 1
// and 2 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "kiln/session.h"
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

void ExpectMatchesReference(const OnnxModelBuilder& b, const Dims& x_dims) {
  const std::string bytes = b.Serialize();
  std::vector<float> x = RandomFloats(ElementCount(x_dims), 7, -2.0f, 2.0f);
  const Tensor input = Tensor::View(DType::kFloat32, x_dims, x.data());
  auto reference = testing::RunUnoptimizedReference(bytes, {{"x", input}});
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  // Twice per session: the second run reuses the packed weight. The two
  // sum in different orders: rounding of partial sums of up to ~20 in
  // magnitude (K = 300) shows in results near 1, hence 1e-4.
  testing::ExpectInterpretedMatches(*model, input, *reference, 1e-4f, /*runs=*/2);
}

TEST(PackedWeights, MatMulFoldsBatchDimsIntoRows) {
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {2, 3, 37}).FloatInit("w", {37, 70}, RandomFloats(37 * 70, 1)).Output("y");
  b.Node("MatMul", {"x", "w"}, {"y"});
  ExpectMatchesReference(b, {2, 3, 37});
}

TEST(PackedWeights, NarrowWeightStaysOnOneDnn) {
  // Fewer than PackedMatrixB::kMinColumns columns: not packed (it would
  // pad each row to 16), still correct.
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {40, 300}).FloatInit("w", {300, 3}, RandomFloats(900, 6)).Output("y");
  b.Node("MatMul", {"x", "w"}, {"y"});
  ExpectMatchesReference(b, {40, 300});
}

TEST(PackedWeights, MatMulWithBiasResidualAndRelu) {
  // The pipeline fuses this into one kiln.FusedMatMul: bias, the residual
  // x2 and Relu run on the packed GEMM's tiles.
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {50, 64})
      .FloatInit("w", {64, 64}, RandomFloats(64 * 64, 2))
      .FloatInit("bias", {64}, RandomFloats(64, 3))
      .Output("y");
  b.Node("MatMul", {"x", "w"}, {"m"});
  b.Node("Add", {"m", "bias"}, {"mb"});
  b.Node("Add", {"mb", "x"}, {"r"});
  b.Node("Relu", {"r"}, {"y"});
  ExpectMatchesReference(b, {50, 64});
}

TEST(PackedWeights, GemmTransposesScalesAndBroadcastsC) {
  struct Case {
    bool trans_b;
    float alpha, beta;
    Dims c_dims;  // empty: no C
  };
  const Case cases[] = {
      {true, 1.0f, 1.0f, {130}}, {false, 0.5f, 2.0f, {9, 130}}, {true, 2.0f, -1.0f, {9, 1}},
      {false, 1.0f, 1.0f, {1}},  {true, 1.5f, 0.0f, {130}},     {false, 1.0f, 1.0f, {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "transB " << c.trans_b << " alpha " << c.alpha << " beta " << c.beta << " C "
                                      << DimsToString(c.c_dims));
    OnnxModelBuilder b(13);
    const Dims w_dims = c.trans_b ? Dims{130, 300} : Dims{300, 130};
    b.Input("x", kFloat, {9, 300}).FloatInit("w", w_dims, RandomFloats(300 * 130, 4)).Output("y");
    std::vector<std::string> inputs = {"x", "w"};
    if (!c.c_dims.empty()) {
      b.FloatInit("c", c.c_dims, RandomFloats(ElementCount(c.c_dims), 5));
      inputs.push_back("c");
    }
    auto& gemm = b.Node("Gemm", inputs, {"y"});
    OnnxModelBuilder::IntAttr(gemm, "transB", c.trans_b ? 1 : 0);
    OnnxModelBuilder::FloatAttr(gemm, "alpha", c.alpha);
    OnnxModelBuilder::FloatAttr(gemm, "beta", c.beta);
    ExpectMatchesReference(b, {9, 300});
  }
}

}  // namespace
}  // namespace kiln
