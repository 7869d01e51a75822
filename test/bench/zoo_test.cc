// The benchmark model zoo (//bench/models:zoo) as kiln_bench consumes it:
// the manifest parses, every case's inputs match its model, and every case
// runs in both tiers with the agreement kiln_bench requires before it times
// anything (one run per tier: a few seconds for the whole zoo).
#include "bench/zoo.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "kiln/session.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::bench {
namespace {

std::string ZooDir() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return std::string(srcdir ? srcdir : ".") + "/kiln/bench/models";
}

std::string TmpDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return tmp ? tmp : "/tmp";
}

std::vector<Tensor> TensorsOf(const std::vector<NamedTensor>& named) {
  std::vector<Tensor> out;
  for (const NamedTensor& t : named) out.push_back(t.tensor);
  return out;
}

Tensor Floats(const Dims& dims, const std::vector<float>& values) {
  StatusOr<Tensor> t = Tensor::Allocate(DType::kFloat32, dims);
  EXPECT_TRUE(t.ok());
  std::copy(values.begin(), values.end(), t->data<float>());
  return std::move(t).value();
}

TEST(ZooManifest, ListsEveryModelWithInputsMatchingTheModel) {
  StatusOr<std::vector<ZooCase>> cases = ReadZooManifest(ZooDir());
  ASSERT_TRUE(cases.ok()) << cases.status().ToString();
  std::set<std::string> names;
  for (const ZooCase& c : *cases) names.insert(c.name);
  for (const char* expected :
       {"mlp_b1", "mlp_b32", "resnet_small", "mobilenetv3_small_style", "transformer_encoder", "silu_ln_gelu", "lstm",
        "bigru", "streaming_vad", "loop_mlp", "transformer_dynamic/seq:32", "transformer_dynamic/seq:256"}) {
    EXPECT_TRUE(names.count(expected)) << expected;
  }
  for (const ZooCase& c : *cases) {
    SCOPED_TRACE(c.name);
    StatusOr<std::shared_ptr<const Model>> model = Model::Load(c.model_path);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    StatusOr<std::vector<NamedTensor>> inputs = LoadZooInputs(c);
    ASSERT_TRUE(inputs.ok()) << inputs.status().ToString();
    ASSERT_EQ(inputs->size(), (*model)->inputs().size());
    for (size_t i = 0; i < inputs->size(); ++i) {
      const TensorInfo& info = (*model)->inputs()[i];
      EXPECT_EQ((*inputs)[i].name, info.name);
      EXPECT_EQ((*inputs)[i].tensor.dtype(), info.dtype);
      ASSERT_EQ((*inputs)[i].tensor.rank(), static_cast<int64_t>(info.dims.size()));
      for (size_t d = 0; d < info.dims.size(); ++d) {
        if (info.dims[d] >= 0) {
          EXPECT_EQ((*inputs)[i].tensor.dim(static_cast<int64_t>(d)), info.dims[d]);
        }
      }
    }
  }
}

TEST(ZooModels, EveryCaseAgreesAcrossTiersWithSensibleMagnitudes) {
  StatusOr<std::vector<ZooCase>> cases = ReadZooManifest(ZooDir());
  ASSERT_TRUE(cases.ok()) << cases.status().ToString();
  for (const ZooCase& c : *cases) {
    SCOPED_TRACE(c.name);
    StatusOr<std::shared_ptr<const Model>> model = Model::Load(c.model_path);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    StatusOr<std::vector<NamedTensor>> inputs = LoadZooInputs(c);
    ASSERT_TRUE(inputs.ok()) << inputs.status().ToString();
    SessionOptions interp_options, jit_options;
    interp_options.tier = TierPolicy::kInterpreter;
    jit_options.tier = TierPolicy::kJit;
    jit_options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
    interp_options.intra_op_threads = jit_options.intra_op_threads = 1;
    StatusOr<std::unique_ptr<Session>> interp = Session::Create(*model, interp_options);
    StatusOr<std::unique_ptr<Session>> jit = Session::Create(*model, jit_options);
    ASSERT_TRUE(interp.ok()) << interp.status().ToString();
    ASSERT_TRUE(jit.ok()) << jit.status().ToString();
    StatusOr<std::vector<NamedTensor>> expected = (*interp)->Run(*inputs);
    ASSERT_TRUE(expected.ok()) << expected.status().ToString();
    StatusOr<std::vector<NamedTensor>> actual = (*jit)->Run(*inputs);
    ASSERT_TRUE(actual.ok()) << actual.status().ToString();
    const Closeness closeness = CompareOutputs(TensorsOf(*expected), TensorsOf(*actual), 1e-4, 1e-5);
    EXPECT_TRUE(closeness.ok) << DescribeMismatch(closeness, "jit vs interp", 1e-4, 1e-5);

    // The generator scales weights so activations stay O(1): outputs that
    // vanish or explode would make every comparison meaningless.
    for (const NamedTensor& out : *expected) {
      ASSERT_EQ(out.tensor.dtype(), DType::kFloat32);
      double sum_sq = 0;
      for (int64_t i = 0; i < out.tensor.num_elements(); ++i) {
        const double v = out.tensor.data<float>()[i];
        ASSERT_TRUE(std::isfinite(v));
        sum_sq += v * v;
      }
      const double rms = std::sqrt(sum_sq / static_cast<double>(out.tensor.num_elements()));
      EXPECT_GT(rms, 0.05) << out.name;
      EXPECT_LT(rms, 20.0) << out.name;
    }
  }
}

// SessionOptions::jit_bitwise_equivalent on every zoo model at 1 and 2
// threads: the JIT's outputs equal the interpreter's bit for bit (memcmp),
// and the GEMM-heavy models do run compiled GEMMs in this mode.
TEST(ZooModels, BitwiseModeMatchesTheInterpreterBitForBit) {
  StatusOr<std::vector<ZooCase>> cases = ReadZooManifest(ZooDir());
  ASSERT_TRUE(cases.ok()) << cases.status().ToString();
  for (const ZooCase& c : *cases) {
    StatusOr<std::shared_ptr<const Model>> model = Model::Load(c.model_path);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    StatusOr<std::vector<NamedTensor>> inputs = LoadZooInputs(c);
    ASSERT_TRUE(inputs.ok()) << inputs.status().ToString();
    for (int threads : {1, 2}) {
      SCOPED_TRACE(c.name + " threads " + std::to_string(threads));
      SessionOptions interp_options, jit_options;
      interp_options.tier = TierPolicy::kInterpreter;
      jit_options.tier = TierPolicy::kJit;
      // On the interpreter's session too: it then waits for its background
      // preparation, without which a first run computes convolutions another
      // way (the reference would depend on timing).
      interp_options.jit_bitwise_equivalent = jit_options.jit_bitwise_equivalent = true;
      jit_options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
      interp_options.intra_op_threads = jit_options.intra_op_threads = threads;
      StatusOr<std::unique_ptr<Session>> interp = Session::Create(*model, interp_options);
      StatusOr<std::unique_ptr<Session>> jit = Session::Create(*model, jit_options);
      ASSERT_TRUE(interp.ok()) << interp.status().ToString();
      ASSERT_TRUE(jit.ok()) << jit.status().ToString();
      StatusOr<std::vector<NamedTensor>> expected = (*interp)->Run(*inputs);
      ASSERT_TRUE(expected.ok()) << expected.status().ToString();
      // The first JIT run compiles and verifies; the second serves compiled.
      ASSERT_TRUE((*jit)->Run(*inputs).ok());
      StatusOr<std::vector<NamedTensor>> actual = (*jit)->Run(*inputs);
      ASSERT_TRUE(actual.ok()) << actual.status().ToString();
      ASSERT_EQ(actual->size(), expected->size());
      for (size_t o = 0; o < actual->size(); ++o) {
        const Tensor& a = (*actual)[o].tensor;
        const Tensor& e = (*expected)[o].tensor;
        ASSERT_EQ(a.dims(), e.dims());
        EXPECT_EQ(std::memcmp(a.raw_data(), e.raw_data(), a.byte_size()), 0) << "output " << o;
      }
      int64_t gemm_calls = 0, verify_failures = 0;
      for (const RegionStats& r : (*jit)->stats().regions) {
        if (r.kind == "gemm") gemm_calls += r.compiled_calls;
        verify_failures += r.verify_failures;
      }
      EXPECT_EQ(verify_failures, 0);
      if (c.name.rfind("mlp", 0) == 0 || c.name.rfind("transformer", 0) == 0) {
        EXPECT_GT(gemm_calls, 0) << "no GEMM ran compiled";
      }
    }
  }
}

// kiln_bench's op-by-op rows load every case with GraphOptimization::kBasic:
// on these exported models (decomposed LayerNorm and GELU, bias Adds,
// HardSwish after convolutions) both levels must compute the same outputs.
TEST(ZooModels, BasicGraphOptimizationAgreesWithTheDefault) {
  StatusOr<std::vector<ZooCase>> cases = ReadZooManifest(ZooDir());
  ASSERT_TRUE(cases.ok()) << cases.status().ToString();
  LoadOptions basic;
  basic.graph_optimization = GraphOptimization::kBasic;
  SessionOptions options;
  options.tier = TierPolicy::kInterpreter;
  options.intra_op_threads = 1;
  for (const ZooCase& c : *cases) {
    SCOPED_TRACE(c.name);
    StatusOr<std::vector<NamedTensor>> inputs = LoadZooInputs(c);
    ASSERT_TRUE(inputs.ok()) << inputs.status().ToString();
    std::vector<std::vector<Tensor>> outputs;
    for (const LoadOptions& load : {LoadOptions{}, basic}) {
      StatusOr<std::shared_ptr<const Model>> model = Model::Load(c.model_path, load);
      ASSERT_TRUE(model.ok()) << model.status().ToString();
      StatusOr<std::unique_ptr<Session>> session = Session::Create(*model, options);
      ASSERT_TRUE(session.ok()) << session.status().ToString();
      StatusOr<std::vector<NamedTensor>> out = (*session)->Run(*inputs);
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      outputs.push_back(TensorsOf(*out));
    }
    const Closeness closeness = CompareOutputs(outputs[0], outputs[1], 1e-4, 1e-5);
    EXPECT_TRUE(closeness.ok) << DescribeMismatch(closeness, "basic vs all", 1e-4, 1e-5);
  }
}

TEST(ZooManifest, MalformedManifestsFailWithTheReason) {
  struct Bad {
    std::string text;
    std::string message;
  };
  const std::vector<Bad> bad = {
      {"{\"cases\": [", "JSON"},
      {"[1, 2]", "expected {\"cases\": [...]}"},
      {"{\"cases\": [{\"model\": \"m.onnx\", \"inputs\": {}}]}", "needs a string \"name\""},
      {"{\"cases\": [{\"name\": \"a\", \"model\": \"m.onnx\"}]}", "needs an \"inputs\" object"},
      {"{\"cases\": [{\"name\": \"a\", \"model\": \"m.onnx\", \"inputs\": {\"x\": 3}}]}", "must name a file"},
      {"{\"cases\": []} x", "expected end of input"},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.text);
    {
      std::ofstream out(TmpDir() + "/manifest.json", std::ios::trunc);
      out << b.text;
    }
    StatusOr<std::vector<ZooCase>> cases = ReadZooManifest(TmpDir());
    ASSERT_FALSE(cases.ok());
    EXPECT_EQ(cases.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(cases.status().message().find(b.message), std::string::npos) << cases.status().message();
  }
  EXPECT_EQ(ReadZooManifest(TmpDir() + "/no_such_dir").status().code(), StatusCode::kNotFound);
}

TEST(ZooManifest, ParsesEscapesAndKeepsInputOrder) {
  {
    std::ofstream out(TmpDir() + "/manifest.json", std::ios::trunc);
    out << R"({"cases": [{"name": "m\/seq:8", "model": "m.onnx", "extra": [1, 2.5e0, true, null],
               "inputs": {"b": "b\u0041.npy", "a": "a.npy"}}]})";
  }
  StatusOr<std::vector<ZooCase>> cases = ReadZooManifest(TmpDir());
  ASSERT_TRUE(cases.ok()) << cases.status().ToString();
  ASSERT_EQ(cases->size(), 1u);
  EXPECT_EQ((*cases)[0].name, "m/seq:8");
  EXPECT_EQ((*cases)[0].model_path, TmpDir() + "/m.onnx");
  ASSERT_EQ((*cases)[0].input_paths.size(), 2u);
  EXPECT_EQ((*cases)[0].input_paths[0].first, "b");
  EXPECT_EQ((*cases)[0].input_paths[0].second, TmpDir() + "/bA.npy");
  EXPECT_EQ((*cases)[0].input_paths[1].first, "a");
}

TEST(ZooOutputs, PeerFolderNamesReplaceSlashAndColon) {
  EXPECT_EQ(ZooOutputDirName("transformer_dynamic/seq:64"), "transformer_dynamic_seq_64");
  EXPECT_EQ(ZooOutputDirName("mlp_b1"), "mlp_b1");
  EXPECT_EQ(ReadOrtOutputs(TmpDir() + "/no_such_dir", "mlp_b1", 1).status().code(), StatusCode::kNotFound);
}

TEST(CompareOutputs, AppliesAllcloseTolerances) {
  const std::vector<Tensor> expected = {Floats({3}, {1.0f, 0.0f, -100.0f})};
  // Within atol near zero and within rtol at -100.
  Closeness close = CompareOutputs(expected, {Floats({3}, {1.0f, 5e-6f, -100.005f})}, 1e-4, 1e-5);
  EXPECT_TRUE(close.ok);
  EXPECT_NEAR(close.max_abs_diff, 0.005, 1e-4);
  // 2e-5 at zero exceeds atol 1e-5.
  close = CompareOutputs(expected, {Floats({3}, {1.0f, 2e-5f, -100.0f})}, 1e-4, 1e-5);
  EXPECT_FALSE(close.ok);
  EXPECT_NE(close.worst.find("output 0 [1]:"), std::string::npos) << close.worst;
  EXPECT_NE(DescribeMismatch(close, "jit vs interp", 1e-4, 1e-5).find("max |diff|"), std::string::npos);
  // Shape, count and NaN mismatches.
  EXPECT_FALSE(CompareOutputs(expected, {Floats({1, 3}, {1.0f, 0.0f, -100.0f})}, 1e-4, 1e-5).ok);
  EXPECT_FALSE(CompareOutputs(expected, {}, 1e-4, 1e-5).ok);
  EXPECT_FALSE(CompareOutputs(expected, {Floats({3}, {1.0f, NAN, -100.0f})}, 1e-4, 1e-5).ok);
  EXPECT_TRUE(CompareOutputs({Floats({1}, {NAN})}, {Floats({1}, {NAN})}, 1e-4, 1e-5).ok);
}

}  // namespace
}  // namespace kiln::bench
