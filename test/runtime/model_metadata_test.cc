// Model::metadata(): what the file says about itself.
#include <gtest/gtest.h>

#include "kiln/session.h"
#include "test/model_builder.h"

namespace kiln {
namespace {

TEST(ModelMetadata, ReadsProducerDocAndMetadataProps) {
  testing::OnnxModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {2}).Output("y");
  b.Node("Relu", {"x"}, {"y"});
  onnx::ModelProto& proto = b.proto();
  proto.set_producer_version("1.2.3");
  proto.set_domain("ai.kiln.test");
  proto.set_model_version(7);
  proto.set_doc_string("a relu");
  for (const auto& [key, value] : {std::pair<const char*, const char*>{"author", "kiln"}, {"license", "MIT"}}) {
    auto* prop = proto.add_metadata_props();
    prop->set_key(key);
    prop->set_value(value);
  }
  const std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const ModelMetadata& m = (*model)->metadata();
  EXPECT_EQ(m.producer_name, "kiln-test");
  EXPECT_EQ(m.producer_version, "1.2.3");
  EXPECT_EQ(m.domain, "ai.kiln.test");
  EXPECT_EQ(m.model_version, 7);
  EXPECT_EQ(m.doc_string, "a relu");
  EXPECT_EQ(m.graph_name, "test_graph");
  ASSERT_EQ(m.metadata_props.size(), 2u);
  EXPECT_EQ(m.metadata_props[0], (std::pair<std::string, std::string>{"author", "kiln"}));
  EXPECT_EQ(m.metadata_props[1], (std::pair<std::string, std::string>{"license", "MIT"}));
}

TEST(Version, HeadersAndLibraryAgree) {
  const std::string expected = std::to_string(KILN_VERSION_MAJOR) + "." + std::to_string(KILN_VERSION_MINOR) + "." +
                               std::to_string(KILN_VERSION_PATCH);
  EXPECT_EQ(expected, Version());
}

}  // namespace
}  // namespace kiln
