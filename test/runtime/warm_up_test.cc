// Session::WarmUp: compiles ahead for given shapes, so the first request
// after it runs compiled; bad shapes fail before anything runs.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "kiln/session.h"
#include "test/model_builder.h"

namespace kiln {
namespace {

using testing::OnnxModelBuilder;

// y = Tanh(x) * 0.5 + 1 over x [batch, 32]: one elementwise region.
std::shared_ptr<const Model> ElementwiseModel() {
  OnnxModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1, 32}, {"batch"}).FloatInit("half", {}, {0.5f});
  b.FloatInit("one", {}, {1.0f}).Output("y");
  b.Node("Tanh", {"x"}, {"t"});
  b.Node("Mul", {"t", "half"}, {"s"});
  b.Node("Add", {"s", "one"}, {"y"});
  const std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

int64_t Calls(const Session& s, bool compiled) {
  int64_t calls = 0;
  for (const RegionStats& r : s.stats().regions) calls += compiled ? r.compiled_calls : r.interpreted_calls;
  return calls;
}

TEST(WarmUp, TheFirstRequestOfAWarmedShapeRunsCompiled) {
  SessionOptions options;
  options.jit_keep_faster_tier = false;  // the verdict must not depend on timing
  auto session = Session::Create(ElementwiseModel(), options);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  const Session& s = **session;
  ASSERT_EQ(s.stats().regions.size(), 1u);
  ASSERT_TRUE(s.WarmUp({{{"x", {4, 32}}}, {{"x", {9, 32}}}}).ok());
  for (int64_t batch : {4, 9}) {
    const int64_t compiled = Calls(s, true), interpreted = Calls(s, false);
    Tensor x = *Tensor::Allocate(DType::kFloat32, {batch, 32});
    for (int64_t i = 0; i < x.num_elements(); ++i) x.data<float>()[i] = 0.01f * static_cast<float>(i);
    auto out = s.Run({{"x", x}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(Calls(s, true), compiled + 1) << "batch " << batch;
    EXPECT_EQ(Calls(s, false), interpreted) << "batch " << batch;
  }
}

TEST(WarmUp, BadShapesFailBeforeAnythingRuns) {
  auto session = Session::Create(ElementwiseModel());
  ASSERT_TRUE(session.ok());
  Status unknown = (*session)->WarmUp({{{"nope", {1, 32}}}});
  EXPECT_EQ(unknown.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("'nope'"), std::string::npos) << unknown.message();
  Status missing = (*session)->WarmUp({{}});
  EXPECT_EQ(missing.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.message().find("'x'"), std::string::npos) << missing.message();
  Status wrong = (*session)->WarmUp({{{"x", {2, 31}}}});
  EXPECT_FALSE(wrong.ok());
  EXPECT_NE(wrong.message().find("'x'"), std::string::npos) << wrong.message();
  EXPECT_EQ((*session)->stats().runs, 0);
}

// No JIT tier: the shapes are still checked, but the model never runs.
TEST(WarmUp, InterpreterSessionsCheckShapesButRunNothing) {
  SessionOptions options;
  options.tier = TierPolicy::kInterpreter;
  auto session = Session::Create(ElementwiseModel(), options);
  ASSERT_TRUE(session.ok());
  EXPECT_TRUE((*session)->WarmUp({{{"x", {2, 32}}}}).ok());
  EXPECT_EQ((*session)->stats().runs, 0);
  EXPECT_EQ((*session)->WarmUp({{{"nope", {2, 32}}}}).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln
