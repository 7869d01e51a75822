// Loading through a mapped file and with initializers sharing the parsed
// raw data: the graph's constants equal the model's values whichever way
// they were stored, own their memory (nothing points into the caller's
// bytes or into the file once loading returns), and malformed sizes still
// fail with a clear error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "graph/mapped_file.h"
#include "graph/onnx_loader.h"
#include "test/model_builder.h"

namespace kiln::graph {
namespace {

using kiln::testing::OnnxModelBuilder;
namespace fs = std::filesystem;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

class TempFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("kiln_mapped_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    const fs::path path = root_ / name;
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path.string();
  }

  fs::path root_;
};

std::vector<float> Ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) * scale - 3.f;
  return v;
}

// y = x * big + small: `big` is large enough that its raw data gets a heap
// buffer of its own (and so is usually aligned enough to be shared), `small`
// fits protobuf's short-string buffer, `shape` is int64 raw data, and
// `bias` is stored as float_data instead of raw_data.
OnnxModelBuilder MixedStorageModel(const std::vector<float>& big) {
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {4, 256})
      .FloatInit("big", {4, 256}, big)
      .FloatInit("small", {2}, {0.5f, -1.5f})
      .Int64Init("shape", {2}, {256, 4})
      .Output("y");
  onnx::TensorProto* bias = b.proto().mutable_graph()->add_initializer();
  bias->set_name("bias");
  bias->set_data_type(onnx::TensorProto::FLOAT);
  bias->add_dims(1);
  bias->add_float_data(2.25f);
  b.Node("Mul", {"x", "big"}, {"m"});
  b.Node("Add", {"m", "bias"}, {"a"});
  b.Node("Reshape", {"a", "shape"}, {"r"});
  b.Node("Reshape", {"r", "shape"}, {"y0"});
  b.Node("Identity", {"y0"}, {"y"});
  b.Node("Mul", {"small", "small"}, {"unused"});
  return b;
}

void ExpectMixedStorageValues(const Graph& g, const std::vector<float>& big) {
  const Tensor& w = *g.value(*g.FindValue("big")).constant;
  ASSERT_EQ(w.num_elements(), static_cast<int64_t>(big.size()));
  for (size_t i = 0; i < big.size(); ++i) ASSERT_EQ(w.data<float>()[i], big[i]) << i;
  EXPECT_FALSE(w.is_view());
  const Tensor& small = *g.value(*g.FindValue("small")).constant;
  EXPECT_EQ(small.data<float>()[0], 0.5f);
  EXPECT_EQ(small.data<float>()[1], -1.5f);
  const Tensor& shape = *g.value(*g.FindValue("shape")).constant;
  EXPECT_EQ(shape.data<int64_t>()[0], 256);
  EXPECT_EQ(shape.data<int64_t>()[1], 4);
  EXPECT_EQ(g.value(*g.FindValue("bias")).constant->data<float>()[0], 2.25f);
}

TEST(SharedRawData, ConstantsKeepTheirValuesAfterTheCallersBytesAreGone) {
  const std::vector<float> big = Ramp(1024, 0.125f);
  std::string bytes = MixedStorageModel(big).Serialize();
  StatusOr<Graph> g = LoadOnnxModel(bytes.data(), bytes.size(), LoadOptions{});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  // The graph must own its constants: scribble over the caller's buffer.
  std::fill(bytes.begin(), bytes.end(), '\x7f');
  bytes.clear();
  bytes.shrink_to_fit();
  ExpectMixedStorageValues(*g, big);
}

TEST(SharedRawData, ConstantsOutliveEveryCopyOfTheGraph) {
  const std::vector<float> big = Ramp(1024, -0.5f);
  const std::string bytes = MixedStorageModel(big).Serialize();
  Tensor kept;
  {
    StatusOr<Graph> g = LoadOnnxModel(bytes.data(), bytes.size(), LoadOptions{});
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    kept = *g->value(*g->FindValue("big")).constant;
  }
  // The tensor alone keeps the parsed bytes alive.
  for (size_t i = 0; i < big.size(); ++i) ASSERT_EQ(kept.data<float>()[i], big[i]) << i;
}

TEST(SharedRawData, ConstantsAreWritableAndPrivateToTheirGraph) {
  // Passes rewrite constants in place (batch-norm folding, say): one load's
  // rewrite must not show in another load of the same bytes.
  const std::vector<float> big = Ramp(1024, 1.f);
  const std::string bytes = MixedStorageModel(big).Serialize();
  StatusOr<Graph> a = LoadOnnxModel(bytes.data(), bytes.size(), LoadOptions{});
  StatusOr<Graph> b = LoadOnnxModel(bytes.data(), bytes.size(), LoadOptions{});
  ASSERT_TRUE(a.ok() && b.ok());
  Tensor& wa = *a->value(*a->FindValue("big")).constant;
  for (int64_t i = 0; i < wa.num_elements(); ++i) wa.data<float>()[i] = 0.f;
  ExpectMixedStorageValues(*b, big);
}

TEST(SharedRawData, RawDataOfTheWrongSizeIsStillAClearError) {
  OnnxModelBuilder b = MixedStorageModel(Ramp(1024, 1.f));
  b.proto().mutable_graph()->mutable_initializer(0)->mutable_raw_data()->resize(4 * 1024 - 4);
  const std::string bytes = b.Serialize();
  StatusOr<Graph> g = LoadOnnxModel(bytes.data(), bytes.size(), LoadOptions{});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidModel);
  EXPECT_NE(g.status().message().find("4092 bytes of raw data"), std::string::npos) << g.status().ToString();
  EXPECT_NE(g.status().message().find("'big'"), std::string::npos) << g.status().ToString();
}

using MappedLoad = TempFolder;

TEST_F(MappedLoad, FileLoadsTheSameGraphAsBytes) {
  const std::vector<float> big = Ramp(1024, 0.25f);
  const std::string path = Write("m.onnx", MixedStorageModel(big).Serialize());
  StatusOr<Graph> g = LoadOnnxFile(path);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  // The mapping is gone once loading returns: replacing the file (and so
  // its pages) must not change the graph.
  Write("m.onnx", std::string(16, '\0'));
  fs::remove(path);
  ExpectMixedStorageValues(*g, big);
}

TEST_F(MappedLoad, TruncatedFileIsInvalidModel) {
  std::string bytes = MixedStorageModel(Ramp(1024, 1.f)).Serialize();
  bytes.resize(bytes.size() / 2);
  StatusOr<Graph> g = LoadOnnxFile(Write("cut.onnx", bytes));
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidModel) << g.status().ToString();
}

TEST_F(MappedLoad, EmptyFileIsInvalidModel) {
  StatusOr<Graph> g = LoadOnnxFile(Write("empty.onnx", ""));
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidModel) << g.status().ToString();
  EXPECT_NE(g.status().message().find("empty"), std::string::npos) << g.status().ToString();
}

TEST_F(MappedLoad, MapsRegularFiles) {
  const std::string path = Write("bytes.bin", "0123456789");
  StatusOr<MappedFile> file = MappedFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_TRUE(file->is_mapped());
  ASSERT_EQ(file->size(), 10u);
  EXPECT_EQ(std::string(static_cast<const char*>(file->data()), file->size()), "0123456789");
  MappedFile moved = std::move(file).value();
  EXPECT_EQ(std::string(static_cast<const char*>(moved.data()), moved.size()), "0123456789");
}

TEST_F(MappedLoad, ReadsWhatCannotBeMapped) {
  // /proc files report size 0 but have contents.
  StatusOr<MappedFile> file = MappedFile::Open("/proc/self/status");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_FALSE(file->is_mapped());
  EXPECT_GT(file->size(), 0u);
}

TEST_F(MappedLoad, ErrorsNameTheProblem) {
  StatusOr<MappedFile> missing = MappedFile::Open((root_ / "missing.onnx").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("cannot open"), std::string::npos);
  StatusOr<MappedFile> folder = MappedFile::Open(root_.string());
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(folder.status().message().find("is a directory"), std::string::npos);
}

}  // namespace
}  // namespace kiln::graph
