// LSTM regions end to end: an ONNX LSTM with constant weights becomes one
// region whose compiled code must match the interpreter's kernel, forward,
// reverse and bidirectional, over batches 1, 3, 4 and 7 (row remainders of
// the register tile), hidden sizes 20 and 50 (partial panels), with and
// without initial states and bias, with each output alone, on 1 and 2
// threads. Every output is bound to a buffer with guard bands, so code
// writing out of bounds fails the test. A new shape runs interpreted
// first; bitwise-equivalent mode and LSTMs the code does not handle stay
// interpreted. ONNX's backend cases for LSTM, with constant weights, run
// compiled against their reference outputs.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
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
constexpr int64_t kGuard = 32;
constexpr float kSentinel = -5555.5f;

struct LstmCase {
  int64_t seq, batch, input, hidden;
  const char* direction;  // "forward", "reverse", "bidirectional"
  bool bias, initial;
  bool y = true, y_h = true, y_c = true;  // which outputs the graph has
};

std::string Describe(const LstmCase& c) {
  return std::string(c.direction) + " seq " + std::to_string(c.seq) + " batch " + std::to_string(c.batch) + " input " +
         std::to_string(c.input) + " hidden " + std::to_string(c.hidden) + (c.bias ? " bias" : "") +
         (c.initial ? " initial states" : "") + " outputs" + (c.y ? " Y" : "") + (c.y_h ? " Y_h" : "") +
         (c.y_c ? " Y_c" : "");
}

int Directions(const LstmCase& c) { return std::string(c.direction) == "bidirectional" ? 2 : 1; }

// x [seq, batch, input] (symbolic seq and batch with `symbolic`), LSTM with
// constant W, R, B; extra attributes and inputs through `customise`.
std::string LstmModel(const LstmCase& c, bool symbolic = false,
                      const std::function<void(OnnxModelBuilder&, onnx::NodeProto&)>& customise = {},
                      uint32_t weight_seed = 11) {
  OnnxModelBuilder b(14);
  const int64_t dirs = Directions(c), gates = 4 * c.hidden;
  b.Input("x", kFloat, {symbolic ? -1 : c.seq, symbolic ? -1 : c.batch, c.input}, {"seq", "batch", "input"});
  if (c.initial) {
    b.Input("h0", kFloat, {dirs, symbolic ? -1 : c.batch, c.hidden}, {"dirs", "batch", "hidden"});
    b.Input("c0", kFloat, {dirs, symbolic ? -1 : c.batch, c.hidden}, {"dirs", "batch", "hidden"});
  }
  b.FloatInit("w", {dirs, gates, c.input}, RandomFloats(dirs * gates * c.input, weight_seed, -0.3f, 0.3f));
  b.FloatInit("r", {dirs, gates, c.hidden}, RandomFloats(dirs * gates * c.hidden, weight_seed + 1, -0.3f, 0.3f));
  if (c.bias) b.FloatInit("b", {dirs, 2 * gates}, RandomFloats(dirs * 2 * gates, weight_seed + 2, -0.5f, 0.5f));
  std::vector<std::string> inputs = {"x", "w", "r", c.bias ? "b" : ""};
  if (c.initial) {
    inputs.insert(inputs.end(), {"", "h0", "c0"});
  }
  const std::vector<std::string> outputs = {c.y ? "y" : "", c.y_h ? "y_h" : "", c.y_c ? "y_c" : ""};
  for (const std::string& o : outputs) {
    if (!o.empty()) b.Output(o);
  }
  onnx::NodeProto& node = b.Node("LSTM", inputs, outputs);
  OnnxModelBuilder::IntAttr(node, "hidden_size", c.hidden);
  auto* direction = node.add_attribute();
  direction->set_name("direction");
  direction->set_type(onnx::AttributeProto::STRING);
  direction->set_s(c.direction);
  if (customise) customise(b, node);
  return b.Serialize();
}

std::unique_ptr<Session> MakeSession(const std::string& bytes, TierPolicy tier, int threads, bool bitwise = false) {
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return nullptr;
  SessionOptions options;
  options.tier = tier;
  options.intra_op_threads = threads;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  options.jit_bitwise_equivalent = bitwise;
  auto session = Session::Create(*model, options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  return session.ok() ? std::move(session).value() : nullptr;
}

struct Inputs {
  std::vector<float> x, h0, c0;
  std::vector<NamedTensor> named;
};

Inputs MakeInputs(const LstmCase& c, int64_t seq, int64_t batch, uint32_t seed) {
  Inputs in;
  const Dims x = {seq, batch, c.input}, state = {Directions(c), batch, c.hidden};
  in.x = RandomFloats(testing::ElementCount(x), seed, -1, 1);
  in.named = {{"x", Tensor::View(DType::kFloat32, x, in.x.data())}};
  if (c.initial) {
    in.h0 = RandomFloats(testing::ElementCount(state), seed + 1, -0.8f, 0.8f);
    in.c0 = RandomFloats(testing::ElementCount(state), seed + 2, -0.8f, 0.8f);
    in.named.push_back({"h0", Tensor::View(DType::kFloat32, state, in.h0.data())});
    in.named.push_back({"c0", Tensor::View(DType::kFloat32, state, in.c0.data())});
  }
  return in;
}

// Every output of the graph, by name, each run bound inside guard bands.
std::map<std::string, std::vector<float>> RunGuarded(Session& session, const LstmCase& c, const Inputs& in, int64_t seq,
                                                     int64_t batch) {
  const int64_t dirs = Directions(c);
  std::map<std::string, Dims> dims;
  if (c.y) dims["y"] = {seq, dirs, batch, c.hidden};
  if (c.y_h) dims["y_h"] = {dirs, batch, c.hidden};
  if (c.y_c) dims["y_c"] = {dirs, batch, c.hidden};
  std::map<std::string, std::vector<float>> buffers;
  RunOptions options;
  for (const auto& [name, d] : dims) {
    std::vector<float>& buffer = buffers[name];
    buffer.assign(static_cast<size_t>(testing::ElementCount(d) + 2 * kGuard), kSentinel);
    options.bound_outputs.push_back({name, Tensor::View(DType::kFloat32, d, buffer.data() + kGuard)});
  }
  auto out = session.Run(in.named, options);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  std::map<std::string, std::vector<float>> results;
  for (const auto& [name, d] : dims) {
    const std::vector<float>& buffer = buffers[name];
    const int64_t n = testing::ElementCount(d);
    for (int64_t g = 0; g < kGuard; ++g) {
      EXPECT_EQ(buffer[static_cast<size_t>(g)], kSentinel) << name << ": write before the output at " << g;
      EXPECT_EQ(buffer[static_cast<size_t>(kGuard + n + g)], kSentinel) << name << ": write after the output at " << g;
    }
    results[name] = std::vector<float>(buffer.begin() + kGuard, buffer.begin() + kGuard + n);
  }
  return results;
}

void ExpectSame(const std::map<std::string, std::vector<float>>& got,
                const std::map<std::string, std::vector<float>>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, values] : want) {
    SCOPED_TRACE(name);
    testing::ExpectNearScaled(got.at(name), values, 2e-5);
  }
}

std::vector<RegionStats> LstmRegions(const Session& session) {
  std::vector<RegionStats> found;
  for (const RegionStats& r : session.stats().regions) {
    if (r.kind == "lstm") found.push_back(r);
  }
  return found;
}

class LstmShapes : public ::testing::TestWithParam<LstmCase> {};

TEST_P(LstmShapes, MatchTheInterpreter) {
  const LstmCase& c = GetParam();
  SCOPED_TRACE(Describe(c));
  const std::string bytes = LstmModel(c);
  const Inputs in = MakeInputs(c, c.seq, c.batch, 21);
  auto reference = MakeSession(bytes, TierPolicy::kInterpreter, 1);
  ASSERT_NE(reference, nullptr);
  const auto expected = RunGuarded(*reference, c, in, c.seq, c.batch);
  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    auto jit = MakeSession(bytes, TierPolicy::kJit, threads);
    ASSERT_NE(jit, nullptr);
    ExpectSame(RunGuarded(*jit, c, in, c.seq, c.batch), expected);  // interpreted; compiles and verifies
    ExpectSame(RunGuarded(*jit, c, in, c.seq, c.batch), expected);
    const std::vector<RegionStats> regions = LstmRegions(*jit);
    ASSERT_EQ(regions.size(), 1u);
    const RegionStats& region = regions[0];
    EXPECT_EQ(region.tier, "jit") << region.description;
    EXPECT_EQ(region.compiled_calls, 1) << region.description;
    EXPECT_EQ(region.verify_failures, 0);
    EXPECT_DOUBLE_EQ(region.compiled_flops, 8.0 * Directions(c) * static_cast<double>(c.seq * c.batch * c.hidden) *
                                                static_cast<double>(c.input + c.hidden));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LstmShapes,
    ::testing::Values(LstmCase{5, 1, 12, 32, "forward", true, false}, LstmCase{5, 3, 12, 32, "forward", true, true},
                      LstmCase{7, 4, 16, 64, "forward", false, false}, LstmCase{4, 7, 9, 20, "forward", true, true},
                      LstmCase{6, 3, 10, 50, "reverse", true, true}, LstmCase{6, 4, 8, 20, "reverse", false, false},
                      LstmCase{5, 7, 6, 20, "bidirectional", true, true},
                      LstmCase{5, 1, 6, 50, "bidirectional", true, false},
                      LstmCase{4, 3, 5, 20, "forward", true, true, true, false, false},
                      LstmCase{4, 3, 5, 20, "reverse", true, true, false, true, false},
                      LstmCase{4, 3, 5, 20, "bidirectional", true, true, false, false, true},
                      LstmCase{4, 3, 5, 20, "bidirectional", false, true, false, true, true}));

TEST(LstmRegion, ANewShapeRunsInterpretedFirst) {
  const LstmCase c{0, 0, 8, 20, "forward", true, true};
  const std::string bytes = LstmModel(c, /*symbolic=*/true);
  auto reference = MakeSession(bytes, TierPolicy::kInterpreter, 1);
  auto jit = MakeSession(bytes, TierPolicy::kJit, 1);
  ASSERT_NE(reference, nullptr);
  ASSERT_NE(jit, nullptr);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{6, 4}, {3, 5}, {6, 4}};
  for (const auto& [seq, batch] : shapes) {
    SCOPED_TRACE("seq " + std::to_string(seq) + " batch " + std::to_string(batch));
    const Inputs in = MakeInputs(c, seq, batch, static_cast<uint32_t>(seq * 10 + batch));
    const auto expected = RunGuarded(*reference, c, in, seq, batch);
    for (int call = 0; call < 2; ++call) ExpectSame(RunGuarded(*jit, c, in, seq, batch), expected);
  }
  const std::vector<RegionStats> regions = LstmRegions(*jit);
  ASSERT_EQ(regions.size(), 1u);
  const RegionStats& region = regions[0];
  // One specialization per shape; the second shape's first call found only
  // the first's code and ran interpreted.
  EXPECT_EQ(region.specializations, 2);
  EXPECT_GE(region.deopts, 1);
  EXPECT_EQ(region.compiled_calls, 4);
  EXPECT_EQ(region.verify_failures, 0);
}

TEST(LstmRegion, BitwiseModeKeepsItInterpreted) {
  const LstmCase c{4, 3, 8, 20, "forward", true, true};
  const std::string bytes = LstmModel(c);
  const Inputs in = MakeInputs(c, c.seq, c.batch, 5);
  auto reference = MakeSession(bytes, TierPolicy::kInterpreter, 1);
  auto jit = MakeSession(bytes, TierPolicy::kJit, 1, /*bitwise=*/true);
  ASSERT_NE(reference, nullptr);
  ASSERT_NE(jit, nullptr);
  // Not bit for bit: the reference session's first call may take the
  // kernel's own path while oneDNN's primitive is prepared in the
  // background, which bitwise mode waits for.
  const auto expected = RunGuarded(*reference, c, in, c.seq, c.batch);
  for (int call = 0; call < 2; ++call) ExpectSame(RunGuarded(*jit, c, in, c.seq, c.batch), expected);
  const std::vector<RegionStats> regions = LstmRegions(*jit);
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].tier, "interp");
  EXPECT_EQ(regions[0].failed_compiles, 1);
  EXPECT_EQ(regions[0].compiled_calls, 0);
}

// The code bakes no weight: a second session, with another model of the
// same shapes and other weights, links the first one's code from the
// persistent cache and still computes its own LSTM.
TEST(LstmRegion, PersistentCacheCodeServesOtherWeights) {
  const std::string dir = ::testing::TempDir() + "/kiln_lstm_cache";
  std::filesystem::remove_all(dir);
  const LstmCase c{5, 3, 8, 20, "bidirectional", true, true};
  const Inputs in = MakeInputs(c, c.seq, c.batch, 17);
  SessionStats stats[2];
  for (int model = 0; model < 2; ++model) {
    SCOPED_TRACE("model " + std::to_string(model));
    const std::string bytes = LstmModel(c, false, {}, static_cast<uint32_t>(40 + 10 * model));
    auto reference = MakeSession(bytes, TierPolicy::kInterpreter, 1);
    ASSERT_NE(reference, nullptr);
    const auto expected = RunGuarded(*reference, c, in, c.seq, c.batch);
    auto loaded = Model::LoadFromBytes(bytes.data(), bytes.size());
    ASSERT_TRUE(loaded.ok());
    SessionOptions options;
    options.tier = TierPolicy::kJit;
    options.jit_keep_faster_tier = false;
    options.jit_cache_dir = dir;
    auto session = Session::Create(*loaded, options);
    ASSERT_TRUE(session.ok()) << session.status().ToString();
    for (int call = 0; call < 2; ++call) ExpectSame(RunGuarded(**session, c, in, c.seq, c.batch), expected);
    stats[model] = (*session)->stats();
    const std::vector<RegionStats> regions = LstmRegions(**session);
    ASSERT_EQ(regions.size(), 1u);
    EXPECT_EQ(regions[0].compiled_calls, 1);
  }
  EXPECT_EQ(stats[0].jit_cache_hits, 0);
  EXPECT_GT(stats[0].jit_cache_misses, 0);
  EXPECT_EQ(stats[1].jit_cache_hits, stats[0].jit_cache_misses);
  EXPECT_EQ(stats[1].jit_cache_misses, 0);
}

void ExpectNoLstmRegion(const std::string& bytes) {
  auto jit = MakeSession(bytes, TierPolicy::kJit, 1);
  ASSERT_NE(jit, nullptr);
  EXPECT_TRUE(LstmRegions(*jit).empty());
}

TEST(LstmRegion, NotCompiledWhenTheCellDiffers) {
  const LstmCase c{4, 2, 6, 8, "forward", true, false};
  auto strings = [](onnx::NodeProto& node, const char* name, const std::vector<std::string>& values) {
    auto* a = node.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRINGS);
    for (const std::string& v : values) a->add_strings(v);
  };
  {
    SCOPED_TRACE("clip");
    ExpectNoLstmRegion(LstmModel(
        c, false, [](OnnxModelBuilder&, onnx::NodeProto& n) { OnnxModelBuilder::FloatAttr(n, "clip", 3.0f); }));
  }
  {
    SCOPED_TRACE("other activations");
    ExpectNoLstmRegion(LstmModel(c, false, [&](OnnxModelBuilder&, onnx::NodeProto& n) {
      strings(n, "activations", {"Sigmoid", "Relu", "Tanh"});
    }));
  }
  {
    SCOPED_TRACE("input_forget");
    ExpectNoLstmRegion(LstmModel(
        c, false, [](OnnxModelBuilder&, onnx::NodeProto& n) { OnnxModelBuilder::IntAttr(n, "input_forget", 1); }));
  }
  {
    SCOPED_TRACE("peepholes");
    ExpectNoLstmRegion(LstmModel(c, false, [](OnnxModelBuilder& b, onnx::NodeProto& n) {
      b.FloatInit("p", {1, 24}, std::vector<float>(24, 0.5f));
      while (n.input_size() < 7) n.add_input("");
      n.add_input("p");
    }));
  }
  {
    SCOPED_TRACE("sequence_lens");
    ExpectNoLstmRegion(LstmModel(c, false, [](OnnxModelBuilder& b, onnx::NodeProto& n) {
      b.proto().mutable_graph()->mutable_initializer()->Add();
      auto* t = b.proto().mutable_graph()->mutable_initializer(b.proto().graph().initializer_size() - 1);
      t->set_name("lens");
      t->set_data_type(onnx::TensorProto::INT32);
      t->add_dims(2);
      t->add_int32_data(4);
      t->add_int32_data(4);
      while (n.input_size() < 4) n.add_input("");
      n.add_input("lens");
    }));
  }
}

TEST(LstmRegion, ZeroPeepholesAndLowerCaseActivationsCompile) {
  const LstmCase c{4, 2, 6, 8, "forward", true, false};
  const std::string bytes = LstmModel(c, false, [](OnnxModelBuilder& b, onnx::NodeProto& n) {
    b.FloatInit("p", {1, 24}, std::vector<float>(24, 0.0f));
    while (n.input_size() < 7) n.add_input("");
    n.add_input("p");
    auto* a = n.add_attribute();
    a->set_name("activations");
    a->set_type(onnx::AttributeProto::STRINGS);
    for (const char* f : {"sigmoid", "tanh", "TANH"}) a->add_strings(f);
  });
  const Inputs in = MakeInputs(c, c.seq, c.batch, 9);
  auto reference = MakeSession(bytes, TierPolicy::kInterpreter, 1);
  auto jit = MakeSession(bytes, TierPolicy::kJit, 1);
  ASSERT_NE(reference, nullptr);
  ASSERT_NE(jit, nullptr);
  const auto expected = RunGuarded(*reference, c, in, c.seq, c.batch);
  for (int call = 0; call < 2; ++call) ExpectSame(RunGuarded(*jit, c, in, c.seq, c.batch), expected);
  const std::vector<RegionStats> regions = LstmRegions(*jit);
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].compiled_calls, 1);
}

// ONNX's backend test cases for LSTM, with W, R and B made initializers
// (the suite passes them as inputs, which no compiled region can pack):
// the compiled code must give ONNX's reference outputs within ONNX's
// default tolerances (rtol 1e-3, atol 1e-7). The cases with sequence_lens
// or layout 1 stay interpreted and must still pass.
TEST(LstmRegion, OnnxBackendCasesWithConstantWeights) {
  const std::filesystem::path root = "/usr/share/libonnx-testdata/data/node";
  if (!std::filesystem::exists(root / "test_lstm_defaults")) GTEST_SKIP() << "no ONNX test data under " << root;
  auto read_tensor = [](const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    onnx::TensorProto t;
    EXPECT_TRUE(t.ParseFromString(bytes.str())) << file;
    return t;
  };
  auto floats = [](const onnx::TensorProto& t) {
    std::vector<float> v;
    if (!t.raw_data().empty()) {
      v.resize(t.raw_data().size() / sizeof(float));
      std::memcpy(v.data(), t.raw_data().data(), v.size() * sizeof(float));
    } else {
      v.assign(t.float_data().begin(), t.float_data().end());
    }
    return v;
  };
  const std::vector<std::pair<std::string, bool>> cases = {{"test_lstm_defaults", true},
                                                           {"test_lstm_with_initial_bias", true},
                                                           {"test_lstm_with_peepholes", false},
                                                           {"test_lstm_batchwise", false}};
  for (const auto& [name, compiled] : cases) {
    SCOPED_TRACE(name);
    std::ifstream model_file(root / name / "model.onnx", std::ios::binary);
    std::stringstream model_bytes;
    model_bytes << model_file.rdbuf();
    onnx::ModelProto model;
    ASSERT_TRUE(model.ParseFromString(model_bytes.str()));
    const std::filesystem::path data = root / name / "test_data_set_0";
    // Graph input i is input_i.pb; W, R and B become initializers.
    std::vector<NamedTensor> inputs;
    std::vector<std::vector<float>> storage;
    std::vector<std::vector<int32_t>> int_storage;
    onnx::GraphProto* graph = model.mutable_graph();
    onnx::GraphProto kept_inputs;
    for (int i = 0; i < graph->input_size(); ++i) {
      onnx::TensorProto t = read_tensor(data / ("input_" + std::to_string(i) + ".pb"));
      const std::string& input = graph->input(i).name();
      if (input == "W" || input == "R" || input == "B") {
        t.set_name(input);
        *graph->add_initializer() = t;
        continue;
      }
      *kept_inputs.add_input() = graph->input(i);
      const Dims dims(t.dims().begin(), t.dims().end());
      if (t.data_type() == onnx::TensorProto::INT32) {
        int_storage.emplace_back(t.int32_data().begin(), t.int32_data().end());
        if (!t.raw_data().empty()) {
          int_storage.back().resize(t.raw_data().size() / sizeof(int32_t));
          std::memcpy(int_storage.back().data(), t.raw_data().data(), t.raw_data().size());
        }
        inputs.push_back({input, Tensor::View(DType::kInt32, dims, int_storage.back().data())});
      } else {
        storage.push_back(floats(t));
        inputs.push_back({input, Tensor::View(DType::kFloat32, dims, storage.back().data())});
      }
    }
    graph->clear_input();
    for (const onnx::ValueInfoProto& vi : kept_inputs.input()) *graph->add_input() = vi;
    const std::string bytes = model.SerializeAsString();
    auto jit = MakeSession(bytes, TierPolicy::kJit, 1);
    ASSERT_NE(jit, nullptr);
    for (int call = 0; call < 2; ++call) {  // interpreted and compiled, then compiled
      auto out = jit->Run(inputs);
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      ASSERT_EQ(static_cast<int>(out->size()), graph->output_size());
      for (size_t o = 0; o < out->size(); ++o) {
        const std::vector<float> want = floats(read_tensor(data / ("output_" + std::to_string(o) + ".pb")));
        const std::vector<float> got = testing::ToVector<float>((*out)[o].tensor);
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < want.size(); ++i) {
          EXPECT_LE(std::fabs(got[i] - want[i]), 1e-7 + 1e-3 * std::fabs(want[i]))
              << "output " << o << " element " << i << " call " << call;
        }
      }
    }
    const std::vector<RegionStats> regions = LstmRegions(*jit);
    if (compiled) {
      ASSERT_EQ(regions.size(), 1u);
      EXPECT_EQ(regions[0].compiled_calls, 1);
    } else {
      EXPECT_TRUE(regions.empty());
    }
  }
}

}  // namespace
}  // namespace kiln
