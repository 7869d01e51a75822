// Sequences and optionals through the public API (kiln/sequence.h): model
// inputs and outputs that are sequences or None, and the errors a caller
// gets for a value of the wrong kind. The models are ONNX's own backend
// test models.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kiln/sequence.h"
#include "kiln/session.h"
#include "test/tensors.h"

namespace kiln::testing {
namespace {

using ::testing::HasSubstr;

const char* const kNodeData = "/usr/share/libonnx-testdata/data/node/";

// The session for ONNX test case `name`, interpreted; null (and the test
// skipped) when the test data is not installed.
std::unique_ptr<Session> SessionFor(const std::string& name, std::shared_ptr<const Model>* model_out = nullptr) {
  const std::string path = std::string(kNodeData) + name + "/model.onnx";
  if (!std::filesystem::exists(path)) return nullptr;
  auto model = Model::Load(path);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return nullptr;
  if (model_out != nullptr) *model_out = *model;
  SessionOptions options;
  options.tier = TierPolicy::kInterpreter;
  options.intra_op_threads = 1;
  auto session = Session::Create(*model, options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  return session.ok() ? std::move(session).value() : nullptr;
}

Tensor FloatSequence(const std::vector<std::vector<float>>& elements) {
  std::vector<Tensor> tensors;
  for (const auto& e : elements) tensors.push_back(MakeTensor<float>({static_cast<int64_t>(e.size())}, e));
  return ValueOrAbort(MakeSequence(DType::kFloat32, std::move(tensors)));
}

TEST(SequenceRun, SequenceInAndOut) {
  std::shared_ptr<const Model> model;
  auto session = SessionFor("test_identity_sequence", &model);
  if (!session) GTEST_SKIP() << "libonnx-testdata is not installed";
  ASSERT_EQ(model->inputs().size(), 1u);
  EXPECT_TRUE(model->inputs()[0].is_sequence);
  EXPECT_FALSE(model->inputs()[0].is_optional);
  EXPECT_TRUE(model->outputs()[0].is_sequence);
  Tensor seq = FloatSequence({{1, 2}, {3}});
  auto out = session->Run({{model->inputs()[0].name, seq}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const std::vector<Tensor>* elements = SequenceElements((*out)[0].tensor);
  ASSERT_NE(elements, nullptr);
  ASSERT_EQ(elements->size(), 2u);
  EXPECT_EQ(ToVector<float>((*elements)[0]), (std::vector<float>{1, 2}));
  EXPECT_EQ(ToVector<float>((*elements)[1]), std::vector<float>{3});
}

TEST(SequenceRun, WrongKindOfInput) {
  std::shared_ptr<const Model> model;
  auto session = SessionFor("test_identity_sequence", &model);
  if (!session) GTEST_SKIP() << "libonnx-testdata is not installed";
  const std::string name = model->inputs()[0].name;
  auto out = session->Run({{name, MakeTensor<float>({1}, {1})}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("is declared a sequence of float32 but receives a float32 tensor"));
  Tensor ints = ValueOrAbort(MakeSequence(DType::kInt64, {MakeTensor<int64_t>({1}, {1})}));
  out = session->Run({{name, ints}});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("receives a sequence of int64"));
  out = session->Run({{name, NoneOptional()}});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("receives an empty optional"));
}

TEST(SequenceRun, OptionalInputMayBeNone) {
  std::shared_ptr<const Model> model;
  auto session = SessionFor("test_optional_has_element_empty", &model);
  if (!session) GTEST_SKIP() << "libonnx-testdata is not installed";
  const TensorInfo& info = model->inputs()[0];
  EXPECT_TRUE(info.is_optional);
  auto out = session->Run({{info.name, NoneOptional()}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_FALSE(*(*out)[0].tensor.data<bool>());
  Tensor value = ValueOrAbort(Tensor::Allocate(info.dtype, {}));
  std::memset(value.raw_data(), 0, value.byte_size());
  out = session->Run({{info.name, value}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(*(*out)[0].tensor.data<bool>());
}

TEST(SequenceRun, SequenceMapNeedsEqualLengths) {
  std::shared_ptr<const Model> model;
  auto session = SessionFor("test_sequence_map_add_2_sequences", &model);
  if (!session) GTEST_SKIP() << "libonnx-testdata is not installed";
  ASSERT_EQ(model->inputs().size(), 2u);
  auto out = session->Run(
      {{model->inputs()[0].name, FloatSequence({{1}, {2}})}, {model->inputs()[1].name, FloatSequence({{1}})}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("input 1 is a sequence of 1 tensors but input 0 has 2"));
  out = session->Run({{model->inputs()[0].name, FloatSequence({{1, 2}, {3}})},
                      {model->inputs()[1].name, FloatSequence({{10, 20}, {30}})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const std::vector<Tensor>* sums = SequenceElements((*out)[0].tensor);
  ASSERT_NE(sums, nullptr);
  ASSERT_EQ(sums->size(), 2u);
  EXPECT_EQ(ToVector<float>((*sums)[0]), (std::vector<float>{11, 22}));
  EXPECT_EQ(ToVector<float>((*sums)[1]), std::vector<float>{33});
}

}  // namespace
}  // namespace kiln::testing
