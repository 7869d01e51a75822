// The raw-data scanner (graph/raw_data_elision.h): its elided copy plus the
// payloads it locates is the original message exactly; it elides only large
// inline float data of the main graph's initializers; it gives up, rather
// than guesses, on everything it does not expect and on every truncation;
// and models loaded through it (from memory and from a file) have the same
// constants as the model, with the same errors for wrong sizes.
#include "graph/raw_data_elision.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "graph/onnx_loader.h"
#include "test/model_builder.h"

namespace kiln::graph {
namespace {

using kiln::testing::OnnxModelBuilder;
namespace fs = std::filesystem;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

std::vector<float> Ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) * scale - 7.f;
  return v;
}

// Two large float initializers around a small one, an int64 one and a
// large one stored as float_data, plus a Constant node with a large raw
// tensor (not an initializer: kept) and an If body with a large initializer
// of its own (not the main graph: kept).
OnnxModelBuilder Model(const std::vector<float>& w1, const std::vector<float>& w2) {
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {16, 128})
      .FloatInit("w1", {128, 32}, w1)
      .FloatInit("small", {2}, {0.5f, -1.5f})
      .Int64Init("shape", {2}, {32, 16})
      .FloatInit("w2", {16, 32}, w2)
      .Output("y");
  onnx::TensorProto* typed = b.proto().mutable_graph()->add_initializer();
  typed->set_name("typed");
  typed->set_data_type(onnx::TensorProto::FLOAT);
  typed->add_dims(2048);
  for (int i = 0; i < 2048; ++i) typed->add_float_data(static_cast<float>(i));
  onnx::NodeProto* constant = b.proto().mutable_graph()->add_node();
  constant->set_op_type("Constant");
  constant->add_output("c");
  onnx::AttributeProto* value = constant->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  value->mutable_t()->add_dims(2048);
  value->mutable_t()->set_raw_data(std::string(2048 * 4, '\x01'));
  b.Node("MatMul", {"x", "w1"}, {"m"});
  b.Node("Add", {"m", "w2"}, {"a"});
  b.Node("Reshape", {"a", "shape"}, {"r"});
  b.Node("Reshape", {"r", "shape"}, {"y0"});
  b.Node("Mul", {"small", "small"}, {"s"});
  b.Node("Identity", {"y0"}, {"y"});
  return b;
}

// The elided bytes parsed, with each located payload put back as raw_data.
onnx::ModelProto Reassemble(const ElidedModel& elided, const std::string& original) {
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromString(elided.bytes));
  EXPECT_EQ(static_cast<size_t>(model.graph().initializer_size()), elided.initializer_raw_data.size());
  for (size_t i = 0; i < elided.initializer_raw_data.size(); ++i) {
    const std::optional<RawDataLocation>& raw = elided.initializer_raw_data[i];
    if (!raw) continue;
    onnx::TensorProto* t = model.mutable_graph()->mutable_initializer(static_cast<int>(i));
    EXPECT_FALSE(t->has_raw_data());
    t->set_raw_data(original.substr(raw->offset, raw->size));
  }
  return model;
}

TEST(RawDataElision, ElidedBytesPlusPayloadsAreTheOriginalMessage) {
  const std::string bytes = Model(Ramp(128 * 32, 0.25f), Ramp(16 * 32, -1.f)).Serialize();
  const MemoryByteSource source(bytes.data(), bytes.size());
  std::optional<ElidedModel> elided = ElideInitializerRawData(source);
  ASSERT_TRUE(elided.has_value());
  // w1 (16 KiB) and w2 (2 KiB): only w1 reaches the default threshold.
  ASSERT_EQ(elided->initializer_raw_data.size(), 5u);
  EXPECT_TRUE(elided->initializer_raw_data[0].has_value());
  EXPECT_EQ(elided->initializer_raw_data[0]->size, 128u * 32u * 4u);
  for (size_t i = 1; i < 5; ++i) EXPECT_FALSE(elided->initializer_raw_data[i].has_value()) << i;
  EXPECT_LT(elided->bytes.size(), bytes.size() - 128 * 32 * 4 + 16);
  EXPECT_EQ(Reassemble(*elided, bytes).SerializeAsString(), bytes);
}

TEST(RawDataElision, ThresholdDecidesWhichFloatDataIsElided) {
  const std::string bytes = Model(Ramp(128 * 32, 0.25f), Ramp(16 * 32, -1.f)).Serialize();
  const MemoryByteSource source(bytes.data(), bytes.size());
  std::optional<ElidedModel> elided = ElideInitializerRawData(source, /*min_bytes=*/8);
  ASSERT_TRUE(elided.has_value());
  // w1, small (8 bytes), w2; never int64 data or float_data.
  const std::vector<bool> expected = {true, true, false, true, false};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(elided->initializer_raw_data[i].has_value(), expected[i]) << i;
  EXPECT_EQ(Reassemble(*elided, bytes).SerializeAsString(), bytes);
}

TEST(RawDataElision, NothingToElideIsNullopt) {
  const std::string bytes = Model(Ramp(128 * 32, 0.25f), Ramp(16 * 32, -1.f)).Serialize();
  const MemoryByteSource source(bytes.data(), bytes.size());
  EXPECT_FALSE(ElideInitializerRawData(source, /*min_bytes=*/1 << 20).has_value());
}

TEST(RawDataElision, ExternalDataIsNotElided) {
  OnnxModelBuilder b = Model(Ramp(128 * 32, 0.25f), Ramp(16 * 32, -1.f));
  b.proto().mutable_graph()->mutable_initializer(0)->set_data_location(onnx::TensorProto::EXTERNAL);
  const std::string bytes = b.Serialize();
  const MemoryByteSource source(bytes.data(), bytes.size());
  EXPECT_FALSE(ElideInitializerRawData(source).has_value());
}

// Field `number` (length-delimited) holding `payload`, as protobuf writes it.
std::string LengthDelimited(uint32_t number, const std::string& payload) {
  std::string out;
  for (uint64_t v = (uint64_t{number} << 3) | 2;; v >>= 7) {
    out.push_back(static_cast<char>((v & 0x7f) | (v >= 0x80 ? 0x80 : 0)));
    if (v < 0x80) break;
  }
  for (uint64_t v = payload.size();; v >>= 7) {
    out.push_back(static_cast<char>((v & 0x7f) | (v >= 0x80 ? 0x80 : 0)));
    if (v < 0x80) break;
  }
  return out + payload;
}

TEST(RawDataElision, GivesUpOnWhatProtobufWouldMerge) {
  const std::string bytes = Model(Ramp(128 * 32, 0.25f), Ramp(16 * 32, -1.f)).Serialize();
  // A second `graph` field (field 7, empty).
  const std::string two_graphs = bytes + LengthDelimited(7, "");
  const MemoryByteSource a(two_graphs.data(), two_graphs.size());
  EXPECT_FALSE(ElideInitializerRawData(a).has_value());
  // A second raw_data (field 9) in an initializer: protobuf keeps the last.
  onnx::ModelProto model;
  ASSERT_TRUE(model.ParseFromString(bytes));
  const std::string tensor = model.graph().initializer(0).SerializeAsString() + LengthDelimited(9, "");
  onnx::GraphProto rest = model.graph();
  rest.clear_initializer();
  onnx::ModelProto shell = model;
  shell.clear_graph();
  const std::string repeated =
      shell.SerializeAsString() + LengthDelimited(7, LengthDelimited(5, tensor) + rest.SerializeAsString());
  onnx::ModelProto check;
  ASSERT_TRUE(check.ParseFromString(repeated));
  EXPECT_FALSE(check.graph().initializer(0).raw_data().size() > 0);
  const MemoryByteSource b(repeated.data(), repeated.size());
  EXPECT_FALSE(ElideInitializerRawData(b).has_value());
}

TEST(RawDataElision, EveryTruncationGivesUpOrLoadsLikeTheOriginal) {
  const std::string bytes = Model(Ramp(128 * 32, 0.25f), Ramp(16 * 32, -1.f)).Serialize();
  for (size_t n = 1; n < bytes.size(); n += (n < 64 || bytes.size() - n < 64) ? 1 : 97) {
    const MemoryByteSource source(bytes.data(), n);
    std::optional<ElidedModel> elided = ElideInitializerRawData(source);
    if (elided) {
      // A cut on a field boundary of the top level is a valid message.
      onnx::ModelProto cut;
      ASSERT_TRUE(cut.ParseFromArray(bytes.data(), static_cast<int>(n))) << n;
      EXPECT_EQ(Reassemble(*elided, bytes.substr(0, n)).SerializeAsString(), cut.SerializeAsString()) << n;
    }
    // The loader never crashes, whichever way it went.
    StatusOr<Graph> g = LoadOnnxModel(bytes.data(), n, LoadOptions{});
    if (!g.ok()) EXPECT_FALSE(g.status().message().empty());
  }
}

TEST(RawDataElision, RandomByteFlipsNeverCrashTheLoader) {
  const std::string original = Model(Ramp(128 * 32, 0.25f), Ramp(16 * 32, -1.f)).Serialize();
  std::mt19937 rng(16);
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes = original;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Mostly in the structure (the first and last bytes), sometimes anywhere.
      const size_t at =
          (trial % 3 == 0) ? rng() % bytes.size() : (rng() % 2 ? rng() % 96 : bytes.size() - 1 - rng() % 2200);
      bytes[at] = static_cast<char>(rng());
    }
    const MemoryByteSource source(bytes.data(), bytes.size());
    if (std::optional<ElidedModel> elided = ElideInitializerRawData(source)) {
      onnx::ModelProto whole;
      if (whole.ParseFromString(bytes)) {
        EXPECT_EQ(Reassemble(*elided, bytes).SerializeAsString(), whole.SerializeAsString()) << trial;
      }
    }
    StatusOr<Graph> g = LoadOnnxModel(bytes.data(), bytes.size(), LoadOptions{});
    if (!g.ok()) EXPECT_FALSE(g.status().message().empty());
  }
}

void ExpectConstants(const Graph& g, const std::vector<float>& w1, const std::vector<float>& w2) {
  const Tensor& a = *g.value(*g.FindValue("w1")).constant;
  ASSERT_EQ(a.num_elements(), static_cast<int64_t>(w1.size()));
  EXPECT_EQ(std::memcmp(a.data<float>(), w1.data(), w1.size() * sizeof(float)), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.raw_data()) % 64, 0u);
  const Tensor& b = *g.value(*g.FindValue("w2")).constant;
  EXPECT_EQ(std::memcmp(b.data<float>(), w2.data(), w2.size() * sizeof(float)), 0);
  const Tensor& typed = *g.value(*g.FindValue("typed")).constant;
  for (int i = 0; i < 2048; ++i) ASSERT_EQ(typed.data<float>()[i], static_cast<float>(i));
  EXPECT_EQ(g.value(*g.FindValue("shape")).constant->data<int64_t>()[0], 32);
}

// Loads `bytes` from memory and from a file and checks each graph with
// `expect`. The file is overwritten and removed before the second check:
// the constants are the graph's own, so the file may change or go.
void ExpectLoadsFromMemoryAndFromAFile(const std::string& bytes, const std::string& name,
                                       const std::function<void(const Graph&)>& expect) {
  {
    StatusOr<Graph> g = LoadOnnxModel(bytes.data(), bytes.size(), LoadOptions{});
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    expect(*g);
  }
  const fs::path dir = fs::path(::testing::TempDir()) / (name + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "m.onnx").string();
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  StatusOr<Graph> g = LoadOnnxFile(path);
  std::ofstream(path, std::ios::binary | std::ios::trunc).write("x", 1);
  fs::remove_all(dir);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  expect(*g);
}

TEST(RawDataElision, LoadedConstantsEqualTheModelsFromMemoryAndFromAFile) {
  const std::vector<float> w1 = Ramp(128 * 32, 0.25f), w2 = Ramp(16 * 32, -1.f);
  ExpectLoadsFromMemoryAndFromAFile(Model(w1, w2).Serialize(), "kiln_elision",
                                    [&](const Graph& g) { ExpectConstants(g, w1, w2); });
}

TEST(RawDataElision, ElidedRawDataOfTheWrongSizeIsAClearError) {
  OnnxModelBuilder b = Model(Ramp(128 * 32, 0.25f), Ramp(16 * 32, -1.f));
  b.proto().mutable_graph()->mutable_initializer(0)->mutable_raw_data()->resize(128 * 32 * 4 - 4);
  const std::string bytes = b.Serialize();
  StatusOr<Graph> g = LoadOnnxModel(bytes.data(), bytes.size(), LoadOptions{});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidModel);
  EXPECT_NE(g.status().message().find("16380 bytes of raw data"), std::string::npos) << g.status().ToString();
  EXPECT_NE(g.status().message().find("'w1'"), std::string::npos) << g.status().ToString();
}

// Over 1 MiB of weights in all and a graph of well over 32 KiB (a chain of
// Relus): the weights are read on a thread of their own while the rest of
// the model is parsed and built.
OnnxModelBuilder LargeModel(const std::vector<float>& w1, const std::vector<float>& w2) {
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {1, 1024}).FloatInit("w1", {1024, 320}, w1).FloatInit("w2", {320, 64}, w2).Output("y");
  b.Node("MatMul", {"x", "w1"}, {"h"});
  b.Node("MatMul", {"h", "w2"}, {"r0"});
  constexpr int kRelus = 1500;
  for (int i = 0; i < kRelus; ++i) {
    b.Node("Relu", {"r" + std::to_string(i)}, {i + 1 < kRelus ? "r" + std::to_string(i + 1) : std::string("y")});
  }
  return b;
}

TEST(RawDataElision, WeightsReadBesideParsingEqualTheModelsFromMemoryAndFromAFile) {
  const std::vector<float> w1 = Ramp(1024 * 320, 0.001f), w2 = Ramp(320 * 64, -0.5f);
  const std::string bytes = LargeModel(w1, w2).Serialize();
  auto expect_weights = [&](const Graph& g) {
    const Tensor& a = *g.value(*g.FindValue("w1")).constant;
    ASSERT_EQ(a.num_elements(), static_cast<int64_t>(w1.size()));
    EXPECT_EQ(std::memcmp(a.data<float>(), w1.data(), w1.size() * sizeof(float)), 0);
    const Tensor& b = *g.value(*g.FindValue("w2")).constant;
    ASSERT_EQ(b.num_elements(), static_cast<int64_t>(w2.size()));
    EXPECT_EQ(std::memcmp(b.data<float>(), w2.data(), w2.size() * sizeof(float)), 0);
  };
  ExpectLoadsFromMemoryAndFromAFile(bytes, "kiln_elision_large", expect_weights);
}

// Weights larger than the 2 MiB pieces the reading threads claim, and
// pieces that end inside a weight: every byte lands where it belongs, from
// memory and from a file.
TEST(RawDataElision, WeightsReadInPiecesByTwoThreadsEqualTheModels) {
  OnnxModelBuilder b(13);
  const std::vector<float> w1 = Ramp(1024 * 1300, 0.001f), w2 = Ramp(1300 * 333, -0.25f), w3 = Ramp(333 * 1100, 0.5f);
  b.Input("x", kFloat, {1, 1024})
      .FloatInit("w1", {1024, 1300}, w1)
      .FloatInit("w2", {1300, 333}, w2)
      .FloatInit("w3", {333, 1100}, w3)
      .Output("y");
  b.Node("MatMul", {"x", "w1"}, {"h1"});
  b.Node("MatMul", {"h1", "w2"}, {"h2"});
  b.Node("MatMul", {"h2", "w3"}, {"r0"});
  constexpr int kRelus = 1500;
  for (int i = 0; i < kRelus; ++i) {
    b.Node("Relu", {"r" + std::to_string(i)}, {i + 1 < kRelus ? "r" + std::to_string(i + 1) : std::string("y")});
  }
  const std::string bytes = b.Serialize();
  auto expect_weights = [&](const Graph& g) {
    for (const auto& [name, expected] :
         {std::pair<const char*, const std::vector<float>*>{"w1", &w1}, {"w2", &w2}, {"w3", &w3}}) {
      SCOPED_TRACE(name);
      const Tensor& t = *g.value(*g.FindValue(name)).constant;
      ASSERT_EQ(t.num_elements(), static_cast<int64_t>(expected->size()));
      EXPECT_EQ(std::memcmp(t.data<float>(), expected->data(), expected->size() * sizeof(float)), 0);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
    }
  };
  ExpectLoadsFromMemoryAndFromAFile(bytes, "kiln_elision_pieces", expect_weights);
}

TEST(RawDataElision, AModelThatFailsToBuildWhileItsWeightsAreReadIsAClearError) {
  OnnxModelBuilder b = LargeModel(Ramp(1024 * 320, 0.001f), Ramp(320 * 64, -0.5f));
  b.Node("NoSuchOp", {"y"}, {"z"});
  onnx::GraphProto& graph = *b.proto().mutable_graph();
  graph.mutable_node(graph.node_size() - 1)->set_domain("no.such.domain");
  const std::string bytes = b.Serialize();
  StatusOr<Graph> g = LoadOnnxModel(bytes.data(), bytes.size(), LoadOptions{});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidModel);
  EXPECT_NE(g.status().message().find("no.such.domain"), std::string::npos) << g.status().ToString();
}

}  // namespace
}  // namespace kiln::graph
