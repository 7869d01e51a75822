// Loader tests: well-formed models load into the IR with the right links,
// and every malformed model gets an error that names what is wrong.
#include "graph/onnx_loader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test/model_builder.h"

namespace kiln::graph {
namespace {

using kiln::testing::OnnxModelBuilder;
namespace fs = std::filesystem;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

StatusOr<Graph> Load(const std::string& bytes, const std::string& base_dir = "") {
  LoadOptions options;
  options.base_dir = base_dir;
  return LoadOnnxModel(bytes.data(), bytes.size(), options);
}

OnnxModelBuilder SmallModel() {
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {-1, 3}, {"batch"}).FloatInit("w", {3}, {1, 2, 3}).Output("y");
  b.Node("Mul", {"x", "w"}, {"t"}, "mul");
  b.Node("Relu", {"t"}, {"y"}, "relu");
  return b;
}

TEST(OnnxLoader, BuildsGraphWithUseDefLinksAndShapes) {
  auto g = Load(SmallModel().Serialize());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->num_nodes(), 2u);
  EXPECT_EQ(g->default_opset(), 13);
  ASSERT_EQ(g->inputs().size(), 1u);
  const Value& x = g->value(g->inputs()[0]);
  EXPECT_EQ(x.name, "x");
  EXPECT_EQ(x.dtype, DType::kFloat32);
  EXPECT_EQ(x.shape.ToString(), "[batch, 3]");
  const Value& w = g->value(*g->FindValue("w"));
  ASSERT_TRUE(w.constant.has_value());
  EXPECT_EQ(w.constant->data<float>()[2], 3.f);
  const Value& t = g->value(*g->FindValue("t"));
  EXPECT_EQ(g->node(t.producer).op_type, "Mul");
  ASSERT_EQ(t.users.size(), 1u);
  EXPECT_EQ(g->node(t.users[0]).op_type, "Relu");
  // ONNX shape inference filled in the intermediate's shape.
  EXPECT_EQ(t.shape.ToString(), "[batch, 3]");
}

struct BadModelCase {
  const char* name;
  std::function<std::string()> make_bytes;
  StatusCode code;
  const char* message_part;
};

class BadModel : public ::testing::TestWithParam<BadModelCase> {};

TEST_P(BadModel, FailsWithClearError) {
  const BadModelCase& c = GetParam();
  auto g = Load(c.make_bytes());
  ASSERT_FALSE(g.ok()) << c.name;
  EXPECT_EQ(g.status().code(), c.code) << g.status().ToString();
  EXPECT_NE(g.status().message().find(c.message_part), std::string::npos) << g.status().ToString();
}

std::string Mutated(const std::function<void(onnx::ModelProto&)>& mutate) {
  OnnxModelBuilder b = SmallModel();
  mutate(b.proto());
  return b.Serialize();
}

const BadModelCase kBadModels[] = {
    {"empty", [] { return std::string(); }, StatusCode::kInvalidModel, "empty"},
    {"truncated",
     [] {
       auto s = SmallModel().Serialize();
       return s.substr(0, s.size() / 2);
     },
     StatusCode::kInvalidModel, "not a valid ONNX protobuf"},
    {"random_bytes", [] { return std::string("\xff\xfe\x01\x02garbage\x00\x17", 13); }, StatusCode::kInvalidModel,
     "not a valid ONNX protobuf"},
    // A TensorProto with only dims is valid protobuf that parses as a
    // ModelProto with an ir_version and nothing else.
    {"not_a_model",
     [] {
       onnx::TensorProto t;
       t.add_dims(3);
       return t.SerializeAsString();
     },
     StatusCode::kInvalidModel, "no graph"},
    {"other_message",
     [] {
       onnx::TensorProto t;
       t.set_name("x");
       t.add_dims(3);
       return t.SerializeAsString();
     },
     StatusCode::kInvalidModel, "not a valid ONNX protobuf"},
    {"no_graph",
     [] {
       onnx::ModelProto m;
       m.set_ir_version(8);
       return m.SerializeAsString();
     },
     StatusCode::kInvalidModel, "no graph"},
    {"duplicate_value",
     [] {
       return Mutated([](onnx::ModelProto& m) {
         auto* n = m.mutable_graph()->add_node();
         n->set_op_type("Relu");
         n->add_input("x");
         n->add_output("t");
       });
     },
     StatusCode::kInvalidModel, "defined more than once"},
    {"undefined_input",
     [] { return Mutated([](onnx::ModelProto& m) { m.mutable_graph()->mutable_node(1)->set_input(0, "nowhere"); }); },
     StatusCode::kInvalidModel, "'nowhere'"},
    {"cycle",
     [] { return Mutated([](onnx::ModelProto& m) { m.mutable_graph()->mutable_node(0)->set_input(0, "y"); }); },
     StatusCode::kInvalidModel, "cycle"},
    {"unknown_domain",
     [] { return Mutated([](onnx::ModelProto& m) { m.mutable_graph()->mutable_node(1)->set_domain("com.example"); }); },
     StatusCode::kInvalidModel, "does not import"},
    {"opset_too_new", [] { return Mutated([](onnx::ModelProto& m) { m.mutable_opset_import(0)->set_version(99); }); },
     StatusCode::kUnsupported, "opset 99"},
    {"wrong_attribute_type",
     [] {
       return Mutated([](onnx::ModelProto& m) {
         auto* n = m.mutable_graph()->add_node();
         n->set_op_type("Softmax");
         n->add_input("y");
         n->add_output("z");
         auto* a = n->add_attribute();
         a->set_name("axis");
         a->set_type(onnx::AttributeProto::FLOAT);
         a->set_f(1);
       });
     },
     StatusCode::kInvalidModel, "attribute 'axis' has type float"},
    {"initializer_size_mismatch",
     [] { return Mutated([](onnx::ModelProto& m) { m.mutable_graph()->mutable_initializer(0)->add_dims(5); }); },
     StatusCode::kInvalidModel, "bytes of raw data"},
    {"negative_dim",
     [] { return Mutated([](onnx::ModelProto& m) { m.mutable_graph()->mutable_initializer(0)->set_dims(0, -3); }); },
     StatusCode::kInvalidModel, "negative dimension"},
    {"overflowing_dims",
     [] {
       return Mutated([](onnx::ModelProto& m) {
         auto* t = m.mutable_graph()->mutable_initializer(0);
         t->set_dims(0, int64_t{1} << 40);
         t->add_dims(int64_t{1} << 40);
       });
     },
     StatusCode::kResourceExhausted, "overflows"},
    {"float16_initializer",
     [] {
       return Mutated([](onnx::ModelProto& m) {
         m.mutable_graph()->mutable_initializer(0)->set_data_type(onnx::TensorProto::FLOAT16);
       });
     },
     StatusCode::kUnsupported, "FLOAT16"},
    {"no_outputs", [] { return Mutated([](onnx::ModelProto& m) { m.mutable_graph()->clear_output(); }); },
     StatusCode::kInvalidModel, "no outputs"},
    {"undefined_output",
     [] { return Mutated([](onnx::ModelProto& m) { m.mutable_graph()->mutable_output(0)->set_name("ghost"); }); },
     StatusCode::kInvalidModel, "'ghost'"},
    {"external_data_from_memory",
     [] {
       return Mutated([](onnx::ModelProto& m) {
         auto* t = m.mutable_graph()->mutable_initializer(0);
         t->clear_raw_data();
         t->set_data_location(onnx::TensorProto::EXTERNAL);
         auto* e = t->add_external_data();
         e->set_key("location");
         e->set_value("w.bin");
       });
     },
     StatusCode::kInvalidModel, "loaded from memory"},
};

INSTANTIATE_TEST_SUITE_P(OnnxLoader, BadModel, ::testing::ValuesIn(kBadModels),
                         [](const ::testing::TestParamInfo<BadModelCase>& info) { return info.param.name; });

// External data: a model in a temporary folder pointing at files in, and
// out of, that folder.
class ExternalData : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("kiln_ext_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "model");
    const float w[3] = {4, 5, 6};
    std::ofstream(root_ / "model" / "w.bin", std::ios::binary).write(reinterpret_cast<const char*>(w), sizeof(w));
    std::ofstream(root_ / "secret.bin", std::ios::binary).write(reinterpret_cast<const char*>(w), sizeof(w));
  }
  void TearDown() override { fs::remove_all(root_); }

  StatusOr<Graph> LoadWithLocation(const std::string& location, const std::string& offset = "0") {
    std::string bytes = Mutated([&](onnx::ModelProto& m) {
      auto* t = m.mutable_graph()->mutable_initializer(0);
      t->clear_raw_data();
      t->set_data_location(onnx::TensorProto::EXTERNAL);
      auto* e = t->add_external_data();
      e->set_key("location");
      e->set_value(location);
      auto* o = t->add_external_data();
      o->set_key("offset");
      o->set_value(offset);
    });
    return Load(bytes, (root_ / "model").string());
  }

  fs::path root_;
};

TEST_F(ExternalData, LoadsFileInsideModelFolder) {
  auto g = LoadWithLocation("w.bin");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->value(*g->FindValue("w")).constant->data<float>()[1], 5.f);
}

TEST_F(ExternalData, RejectsParentDirectory) {
  auto g = LoadWithLocation("../secret.bin");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("escapes the model's folder"), std::string::npos) << g.status().ToString();
}

TEST_F(ExternalData, RejectsAbsolutePath) {
  auto g = LoadWithLocation((root_ / "secret.bin").string());
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("must be relative"), std::string::npos) << g.status().ToString();
}

TEST_F(ExternalData, RejectsSymlinkOutOfFolder) {
  fs::create_symlink(root_ / "secret.bin", root_ / "model" / "link.bin");
  auto g = LoadWithLocation("link.bin");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("outside the model's folder"), std::string::npos) << g.status().ToString();
}

TEST_F(ExternalData, RejectsOffsetPastEndOfFile) {
  auto g = LoadWithLocation("w.bin", "8");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("runs past the end"), std::string::npos) << g.status().ToString();
}

// A LayerNormalization that lists its Mean and InvStdDev outputs; `x_dims`
// is the input's declared shape.
OnnxModelBuilder LayerNormWithStatistics(const std::vector<int64_t>& x_dims) {
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, x_dims, {"batch"}).FloatInit("scale", {4}, {1, 1, 1, 1}).Output("y");
  b.Node("LayerNormalization", {"x", "scale"}, {"ln", "mean", "inv_std_dev"}, "ln");
  b.Node("Relu", {"ln"}, {"y"}, "relu");
  return b;
}

TEST(OnnxLoader, LayerNormStatisticsSurviveShapeInference) {
  // Inference runs with the statistics hidden (see onnx_shape_inference.h);
  // the node must get them back, and Y's shape must still be inferred.
  auto g = Load(LayerNormWithStatistics({-1, 4}).Serialize());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const Value& ln = g->value(*g->FindValue("ln"));
  const Node& node = g->node(ln.producer);
  ASSERT_EQ(node.outputs.size(), 3u);
  EXPECT_EQ(g->value(node.outputs[1]).name, "mean");
  EXPECT_EQ(g->value(node.outputs[2]).name, "inv_std_dev");
  EXPECT_EQ(g->value(*g->FindValue("y")).shape.ToString(), "[batch, 4]");
}

TEST(OnnxLoader, LayerNormAxisBelowRankDoesNotCrashShapeInference) {
  // The default axis -1 on a 0-D input: libonnx 1.12's inference indexed
  // dim -1 of the statistics and crashed the process (a fuzzer find).
  auto g = Load(LayerNormWithStatistics({}).Serialize());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->node(g->value(*g->FindValue("ln")).producer).outputs.size(), 3u);
}

TEST(OnnxLoader, RawDataOfPartialElementsIsAnErrorNotAHeapOverflow) {
  // A Reshape's int64 shape with 9 raw bytes: libonnx 1.12's inference
  // copied all 9 into room for one element (a fuzzer find, seen by ASan).
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {2, 3}).Int64Init("shape", {2}, {3, 2}).Output("y");
  b.Node("Reshape", {"x", "shape"}, {"y"});
  onnx::TensorProto* shape = b.proto().mutable_graph()->mutable_initializer(0);
  shape->clear_int64_data();
  shape->set_raw_data(std::string(9, '\x01'));
  auto g = Load(b.Serialize());
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidModel) << g.status().ToString();
  EXPECT_NE(g.status().message().find("raw data"), std::string::npos) << g.status().ToString();
}

TEST(OnnxLoaderFile, MissingFileIsNotFound) {
  auto g = LoadOnnxFile("/nonexistent/model.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace kiln::graph

namespace kiln::graph {
namespace {

TEST(OnnxLoaderLarge, LoadsModelOver64MiB) {
  // Protobuf's historical 64 MiB message limit must not apply.
  constexpr int64_t kElems = (int64_t{72} << 20) / 4;
  kiln::testing::OnnxModelBuilder b(13);
  b.Input("x", onnx::TensorProto::FLOAT, {kElems});
  b.FloatInit("w", {kElems}, std::vector<float>(static_cast<size_t>(kElems), 0.25f)).Output("y");
  b.Node("Mul", {"x", "w"}, {"y"});
  std::string bytes = b.Serialize();
  ASSERT_GT(bytes.size(), size_t{64} << 20);
  auto g = LoadOnnxModel(bytes.data(), bytes.size(), LoadOptions{});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const Tensor& w = *g->value(*g->FindValue("w")).constant;
  EXPECT_EQ(w.num_elements(), kElems);
  EXPECT_EQ(w.data<float>()[kElems - 1], 0.25f);
}

}  // namespace
}  // namespace kiln::graph
