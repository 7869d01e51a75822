// The hot set: the versions a model's regions were compiled for, recorded
// beside the persistent code cache so that a new session of the same model
// (standing in for a new process) links them as soon as it is created,
// without waiting for its regions to turn hot.
#include "runtime/hot_set_manifest.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "kiln/session.h"
#include "test/model_builder.h"
#include "test/runtime/mlp_model_util.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using runtime::HotSetManifest;
using runtime::ShapeSignature;
using testing::MlpInput;
using testing::MlpModel;
using testing::OnnxModelBuilder;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(HotSetManifest, ParsesWhatShapeSignatureWrites) {
  const ShapeSignature written{{{1, 16, 64}, {64}, {}}};
  ShapeSignature read;
  ASSERT_TRUE(HotSetManifest::ParseSignature(written.ToString(), read));
  EXPECT_EQ(read, written);
  ASSERT_TRUE(HotSetManifest::ParseSignature("", read));
  EXPECT_TRUE(read.dims.empty());
  for (const char* bad : {"[1,2", "1,2]", "[1,,2]", "[-1]", "[1;2]", "[1];", "[a]", "[1] ;[2]",
                          "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]", "[1234567890123456789]"}) {
    EXPECT_FALSE(HotSetManifest::ParseSignature(bad, read)) << bad;
  }
}

TEST(HotSetManifest, RecordsMergeAcrossWritersAndSurviveARead) {
  const std::string dir = FreshDir("kiln_hot_set_merge");
  HotSetManifest first(dir), second(dir);
  // Nothing is written before the model is named.
  first.Record({0, ShapeSignature{{{4, 8}}}, false});
  EXPECT_TRUE(fs::is_empty(dir));
  first.Bind("model");
  second.Bind("model");
  second.Record({1, ShapeSignature{{{2, 3}, {3}}}, true});
  second.Record({1, ShapeSignature{{{2, 3}, {3}}}, true});  // once only
  const std::vector<HotSetManifest::Entry> entries = HotSetManifest(dir).Read();
  EXPECT_TRUE(entries.empty()) << "an unbound manifest reads nothing";
  HotSetManifest reader(dir);
  reader.Bind("model");
  const std::vector<HotSetManifest::Entry> read = reader.Read();
  ASSERT_EQ(read.size(), 2u) << ReadFile(reader.path());
  EXPECT_EQ(read[0].region, 0);
  EXPECT_FALSE(read[0].generic);
  EXPECT_EQ(read[0].signature, (ShapeSignature{{{4, 8}}}));
  EXPECT_EQ(read[1].region, 1);
  EXPECT_TRUE(read[1].generic);
  EXPECT_EQ(read[1].signature, (ShapeSignature{{{2, 3}, {3}}}));
  for (const auto& item : fs::directory_iterator(dir)) {
    EXPECT_EQ(item.path().extension(), ".hotset") << "a temporary file was left behind: " << item.path();
  }
}

TEST(HotSetManifest, DamagedFilesAndLinesAreSkipped) {
  const std::string dir = FreshDir("kiln_hot_set_damaged");
  HotSetManifest manifest(dir);
  manifest.Bind("model");
  {
    std::ofstream out(manifest.path());
    out << "not a hot set\n0 specialized [1]\n";
  }
  EXPECT_TRUE(manifest.Read().empty());
  {
    std::ofstream out(manifest.path());
    out << "kiln hot set 1\n0 specialized [1]\nx specialized [1]\n1 sometimes [1]\n2 generic [1,\n3 generic [5];[]\n";
  }
  const std::vector<HotSetManifest::Entry> read = manifest.Read();
  ASSERT_EQ(read.size(), 2u);
  EXPECT_EQ(read[0].region, 0);
  EXPECT_EQ(read[1].region, 3);
  EXPECT_EQ(read[1].signature, (ShapeSignature{{{5}, {}}}));
  {
    std::ofstream out(manifest.path());
    out << "kiln hot set 1\n" << std::string(2 << 20, '#') << "\n";
  }
  EXPECT_TRUE(manifest.Read().empty()) << "a file over the cap is not a manifest";
}

std::vector<float> Output(const Session& session) {
  auto out = session.Run({{"x", MlpInput()}});
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return {};
  const Tensor& y = (*out)[0].tensor;
  return std::vector<float>(y.data<float>(), y.data<float>() + y.num_elements());
}

SessionOptions Background(const std::string& dir) {
  SessionOptions options;
  options.tier = TierPolicy::kAuto;
  options.jit_hot_threshold = 3;
  options.jit_keep_faster_tier = false;
  options.jit_verify_calls = 0;
  options.jit_payback_horizon_calls = 0;  // compile whatever turns hot
  options.jit_cache_dir = dir;
  return options;
}

int Specializations(const SessionStats& stats) {
  int n = 0;
  for (const RegionStats& r : stats.regions) n += r.specializations;
  return n;
}

int64_t CompiledCalls(const SessionStats& stats) {
  int64_t calls = 0;
  for (const RegionStats& r : stats.regions) calls += r.compiled_calls;
  return calls;
}

TEST(HotSetRun, ANewSessionLinksWhatAnEarlierOneCompiledBeforeItsFirstRun) {
  const std::string dir = FreshDir("kiln_hot_set_run");
  auto model = MlpModel(0.01f);
  ASSERT_NE(model, nullptr);
  std::vector<float> compiled_before;
  {
    auto first = Session::Create(model, Background(dir));
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    for (int run = 0; run < 3; ++run) Output(**first);
    (*first)->WaitForCompiles();
    ASSERT_EQ(Specializations((*first)->stats()), 2);
    compiled_before = Output(**first);
  }

  auto second = Session::Create(model, Background(dir));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  // No run yet: the hot set alone queued the two versions, linked from the
  // code cache.
  (*second)->WaitForCompiles();
  SessionStats stats = (*second)->stats();
  EXPECT_EQ(Specializations(stats), 2);
  EXPECT_EQ(stats.jit_cache_hits, 2);
  EXPECT_EQ(stats.jit_cache_misses, 0);
  // The first run is served compiled, and computes what the first
  // session's compiled code did.
  EXPECT_EQ(Output(**second), compiled_before);
  stats = (*second)->stats();
  EXPECT_EQ(CompiledCalls(stats), 2);
  for (const RegionStats& r : stats.regions) EXPECT_EQ(r.interpreted_calls, 0) << r.description;
}

TEST(HotSetRun, EntriesThatDoNotFitTheModelAreSkipped) {
  const std::string dir = FreshDir("kiln_hot_set_foreign");
  auto model = MlpModel(0.01f);
  ASSERT_NE(model, nullptr);
  {
    auto first = Session::Create(model, Background(dir));
    ASSERT_TRUE(first.ok());
    for (int run = 0; run < 3; ++run) Output(**first);
    (*first)->WaitForCompiles();
  }
  // Damage the manifest: another region id, another shape, a wrong count of
  // inputs. None fits, so nothing is compiled ahead.
  std::string path;
  for (const auto& item : fs::directory_iterator(dir)) {
    if (item.path().extension() == ".hotset") path = item.path().string();
  }
  ASSERT_FALSE(path.empty());
  {
    std::ofstream out(path);
    out << "kiln hot set 1\n7 specialized [16,64]\n0 specialized [8,64];[64,48];[48]\n1 specialized [16,48];[1]\n";
  }
  auto second = Session::Create(model, Background(dir));
  ASSERT_TRUE(second.ok());
  (*second)->WaitForCompiles();
  EXPECT_EQ(Specializations((*second)->stats()), 0);
  // The session still tiers up the usual way.
  for (int run = 0; run < 3; ++run) Output(**second);
  (*second)->WaitForCompiles();
  EXPECT_EQ(Specializations((*second)->stats()), 2);
}

TEST(HotSetRun, AnotherModelDoesNotTakeTheHotSet) {
  const std::string dir = FreshDir("kiln_hot_set_other_model");
  {
    auto first = Session::Create(MlpModel(0.01f), Background(dir));
    ASSERT_TRUE(first.ok());
    for (int run = 0; run < 3; ++run) Output(**first);
    (*first)->WaitForCompiles();
  }
  // Another graph (one more op): another fingerprint, another manifest.
  OnnxModelBuilder b;
  b.Input("x", kFloat, {16, 64}).Output("y");
  b.Node("Tanh", {"x"}, {"t"});
  b.Node("Relu", {"t"}, {"y"});
  const std::string bytes = b.Serialize();
  auto other = Model::LoadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(other.ok());
  auto session = Session::Create(*other, Background(dir));
  ASSERT_TRUE(session.ok());
  (*session)->WaitForCompiles();
  EXPECT_EQ(Specializations((*session)->stats()), 0);
}

}  // namespace
}  // namespace kiln
