// Runs the `kiln` binary as a user would: on the demo models, comparing the
// .npy outputs it writes with numpy's expected outputs, and on malformed
// inputs, checking for a non-zero exit and one clear error line.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/tensor.h"
#include "test/tolerance.h"
#include "tools/npy.h"

namespace kiln::tools {
namespace {

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return std::string(srcdir ? srcdir : ".") + "/kiln/" + path;
}

std::string TmpDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return tmp ? tmp : "/tmp";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct Result {
  int exit_code = -1;
  bool signalled = false;
  std::string out;
  std::string err;
};

Result Kiln(const std::vector<std::string>& args) {
  std::string out_path = TmpDir() + "/kiln_stdout.txt";
  std::string err_path = TmpDir() + "/kiln_stderr.txt";
  std::string cmd = Quote(Runfile("tools/kiln"));
  for (const std::string& a : args) cmd += " " + Quote(a);
  cmd += " >" + Quote(out_path) + " 2>" + Quote(err_path);
  int status = std::system(cmd.c_str());
  Result r;
  r.signalled = status == -1 || !WIFEXITED(status);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(out_path);
  r.err = ReadFile(err_path);
  return r;
}

std::string Describe(const Result& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// A failure the user caused: exit 1 and exactly one line on stderr of the
// form "kiln: error: <subject>: ...", containing `fragment`.
void ExpectCleanFailure(const Result& r, const std::string& subject, const std::string& fragment) {
  EXPECT_FALSE(r.signalled) << Describe(r);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(r.err.rfind("kiln: error: " + subject + ": ", 0), 0u) << Describe(r);
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << Describe(r);
  EXPECT_NE(r.err.find(fragment), std::string::npos) << "missing '" << fragment << "': " << Describe(r);
}

// The --report file is one JSON object with the report's keys in their
// documented order, and its "outputs" entry describes the output written.
void ExpectReportMatchesRun(const std::string& text, const std::string& model_suffix, const std::string& tier,
                            const Tensor& output) {
  const nlohmann::ordered_json report = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(report.is_object()) << text;
  const std::vector<std::string> keys = {"model",
                                         "tier",
                                         "tier_requested",
                                         "graph_optimization",
                                         "threads",
                                         "load_ms",
                                         "session_create_ms",
                                         "first_run_ms",
                                         "median_ms",
                                         "p90_ms",
                                         "min_ms",
                                         "mean_ms",
                                         "runs",
                                         "warmup",
                                         "total_runs",
                                         "peak_planned_bytes",
                                         "unplanned_bytes",
                                         "pooled_output_bytes",
                                         "regions_total",
                                         "regions_compiled",
                                         "compile_ms_total",
                                         "reused_code",
                                         "declined_specializations",
                                         "deopts",
                                         "compiled_calls",
                                         "interpreted_region_calls",
                                         "gemm_regions",
                                         "depthwise_regions",
                                         "latency_split_ms_per_run",
                                         "outputs"};
  std::vector<std::string> got;
  for (const auto& [key, value] : report.items()) got.push_back(key);
  EXPECT_EQ(got, keys);
  EXPECT_TRUE(report["model"].get<std::string>().ends_with(model_suffix)) << report["model"];
  EXPECT_EQ(report["tier_requested"], tier);
  EXPECT_EQ(report["runs"], 3);
  EXPECT_GE(report["total_runs"].get<int64_t>(), 3);
  for (const char* part : {"compiled_regions", "interpreted_regions", "other_interpreted"}) {
    EXPECT_TRUE(report["latency_split_ms_per_run"][part].is_number()) << part;
  }
  // Compiled GEMM regions report their rate and packed weight.
  for (const auto& gemm : report["gemm_regions"]) {
    if (gemm["compiled_calls"].get<int64_t>() == 0) continue;
    EXPECT_GT(gemm["gflops"].get<double>(), 0) << gemm;
    EXPECT_GT(gemm["flops_per_call"].get<double>(), 0) << gemm;
    EXPECT_GT(gemm["packed_weight_bytes"].get<int64_t>(), 0) << gemm;
  }
  for (const auto& depthwise : report["depthwise_regions"]) {
    if (depthwise["compiled_calls"].get<int64_t>() == 0) continue;
    EXPECT_GT(depthwise["gflops"].get<double>(), 0) << depthwise;
    EXPECT_GT(depthwise["flops_per_call"].get<double>(), 0) << depthwise;
  }
  if (tier == std::string("jit") && model_suffix.ends_with("mlp.onnx")) {
    EXPECT_FALSE(report["gemm_regions"].empty()) << "the MLP's matrix products are GEMM regions";
  }
  ASSERT_EQ(report["outputs"].size(), 1u);
  const auto& out = report["outputs"][0];
  EXPECT_EQ(out["index"], 0);
  EXPECT_EQ(out["dtype"], "float32");
  EXPECT_EQ(out["shape"].get<Dims>(), output.dims());
  double abs_sum = 0;
  for (int64_t i = 0; i < output.num_elements(); ++i) abs_sum += std::fabs(output.data<float>()[i]);
  EXPECT_NEAR(out["abs_sum"].get<double>(), abs_sum, 1e-6 * std::max(1.0, abs_sum));
}

struct DemoModel {
  const char* name;
  const char* input;
};
constexpr DemoModel kDemoModels[] = {{"mlp", "x"}, {"cnn_small", "input"}, {"transformer_tiny", "input"}};

// Both tiers must reproduce numpy's outputs for the exported CNN and
// transformer: with --tier jit the written outputs come from the last run,
// after every region was compiled.
TEST(CliTest, RunMatchesNumpyReferenceInBothTiers) {
  for (const char* tier : {"interp", "jit"}) {
    for (const DemoModel& m : kDemoModels) {
      SCOPED_TRACE(std::string(m.name) + " tier " + tier);
      std::string base = std::string("tools/") + m.name;
      std::string out_dir = TmpDir() + "/out_" + m.name + "_" + tier;
      std::string report = TmpDir() + "/" + m.name + "_" + tier + ".json";
      Result r = Kiln({"run", Runfile(base + ".onnx"), "--input",
                       std::string(m.input) + "=" + Runfile(base + "_input_0.npy"), "--output-dir", out_dir, "--iters",
                       "3", "--warmup", "1", "--threads", "1", "--tier", tier, "--report", report});
      ASSERT_EQ(r.exit_code, 0) << Describe(r);
      EXPECT_EQ(r.err, "");
      EXPECT_NE(r.out.find("sum="), std::string::npos) << r.out;
      EXPECT_NE(r.out.find("median"), std::string::npos) << r.out;

      StatusOr<Tensor> actual = ReadNpy(out_dir + "/output_0.npy");
      ASSERT_TRUE(actual.ok()) << actual.status().ToString();
      StatusOr<Tensor> expected = ReadNpy(Runfile(base + "_expected_0.npy"));
      ASSERT_TRUE(expected.ok()) << expected.status().ToString();
      testing::ExpectNear(*actual, *expected, 1e-4, 1e-5);

      std::string json = ReadFile(report);
      for (const std::string& key : std::vector<std::string>{
               "\"load_ms\"", "\"first_run_ms\"", "\"median_ms\"", "\"p90_ms\"", "\"runs\": 3",
               "\"tier\": \"" + std::string(tier) + "\"", "\"peak_planned_bytes\"", "\"pooled_output_bytes\"",
               "\"regions_total\"", "\"compile_ms_total\"", "\"deopts\"", "\"latency_split_ms_per_run\""}) {
        EXPECT_NE(json.find(key), std::string::npos) << key << " not in " << json;
      }
      ExpectReportMatchesRun(json, base + ".onnx", tier, *actual);
    }
  }
}

// --channels-last on puts the CNN's convolutions in NHWC between Transposes;
// off keeps them NCHW.
TEST(CliTest, ChannelsLastFlagChoosesTheConvolutionLayout) {
  const std::string model = Runfile("tools/cnn_small.onnx");
  Result on = Kiln({"info", model, "--graph", "--channels-last", "on"});
  ASSERT_EQ(on.exit_code, 0) << Describe(on);
  EXPECT_NE(on.out.find("Transpose"), std::string::npos) << on.out;
  EXPECT_NE(on.out.find("channels_last"), std::string::npos) << on.out;
  Result off = Kiln({"info", model, "--graph", "--channels-last", "off"});
  ASSERT_EQ(off.exit_code, 0) << Describe(off);
  EXPECT_EQ(off.out.find("channels_last"), std::string::npos) << off.out;
}

// --graph-opt basic keeps the transformer's decomposed LayerNorm and GELU as
// separate ops; both tiers must still reproduce numpy's outputs.
TEST(CliTest, BasicGraphOptimizationKeepsOpsAndMatchesNumpy) {
  const std::string model = Runfile("tools/transformer_tiny.onnx");
  Result info = Kiln({"info", model, "--graph-opt", "basic"});
  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  for (const char* fragment : {"ReduceMean", "Erf", "Pow"}) {
    EXPECT_NE(info.out.find(fragment), std::string::npos) << fragment << " not in " << info.out;
  }
  EXPECT_EQ(info.out.find("LayerNormalization"), std::string::npos) << info.out;

  for (const char* tier : {"interp", "jit"}) {
    SCOPED_TRACE(tier);
    const std::string out_dir = TmpDir() + "/out_basic_" + tier;
    const std::string report = TmpDir() + "/basic_" + tier + ".json";
    Result r =
        Kiln({"run", model, "--input", "input=" + Runfile("tools/transformer_tiny_input_0.npy"), "--output-dir",
              out_dir, "--iters", "2", "--threads", "1", "--tier", tier, "--graph-opt", "basic", "--report", report});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    StatusOr<Tensor> actual = ReadNpy(out_dir + "/output_0.npy");
    ASSERT_TRUE(actual.ok()) << actual.status().ToString();
    StatusOr<Tensor> expected = ReadNpy(Runfile("tools/transformer_tiny_expected_0.npy"));
    ASSERT_TRUE(expected.ok()) << expected.status().ToString();
    testing::ExpectNear(*actual, *expected, 1e-4, 1e-5);
    EXPECT_NE(ReadFile(report).find("\"graph_optimization\": \"basic\""), std::string::npos);
  }
}

TEST(CliTest, GeneratesInputsOfConcreteShape) {
  Result r = Kiln({"run", Runfile("tools/cnn_small.onnx"), "--iters", "1", "--warmup", "0", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("'input': float32 [1, 3, 32, 32] (generated)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("output 0 'output': float32 [1, 10]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tier auto"), std::string::npos) << r.out;

  // Same seed, same data: two runs print the same checksum.
  Result again = Kiln({"run", Runfile("tools/cnn_small.onnx"), "--iters", "1", "--warmup", "0", "--threads", "1"});
  auto checksum = [](const std::string& out) {
    return out.substr(out.find("sum="), out.find('\n', out.find("sum=")) - out.find("sum="));
  };
  EXPECT_EQ(checksum(r.out), checksum(again.out));
}

TEST(CliTest, SymbolicDimNeedsAFileOrABinding) {
  Result r = Kiln({"run", Runfile("tools/transformer_tiny.onnx")});
  ExpectCleanFailure(r, Runfile("tools/transformer_tiny.onnx"), "symbolic dim 'batch'");
  EXPECT_NE(r.err.find("--dim batch=VALUE"), std::string::npos) << r.err;

  Result bound =
      Kiln({"run", Runfile("tools/transformer_tiny.onnx"), "--dim", "batch=2", "--iters", "1", "--threads", "1"});
  ASSERT_EQ(bound.exit_code, 0) << Describe(bound);
  EXPECT_NE(bound.out.find("output 0 'output': float32 [2, 16, 64]"), std::string::npos) << bound.out;

  ExpectCleanFailure(Kiln({"run", Runfile("tools/transformer_tiny.onnx"), "--dim", "seq=2"}),
                     Runfile("tools/transformer_tiny.onnx"), "no input has a symbolic dim 'seq'");
}

TEST(CliTest, MalformedModelsFailCleanly) {
  const std::string cnn = ReadFile(Runfile("tools/cnn_small.onnx"));
  ASSERT_GT(cnn.size(), 1000u);

  std::string truncated = TmpDir() + "/truncated.onnx";
  WriteFile(truncated, cnn.substr(0, cnn.size() / 2));
  ExpectCleanFailure(Kiln({"run", truncated}), truncated, "");

  std::string not_protobuf = TmpDir() + "/not_protobuf.onnx";
  WriteFile(not_protobuf, "this is plain text, not an ONNX protobuf\n\xff\xfe\x01");
  ExpectCleanFailure(Kiln({"run", not_protobuf}), not_protobuf, "");
  ExpectCleanFailure(Kiln({"info", not_protobuf}), not_protobuf, "");

  std::string empty = TmpDir() + "/empty.onnx";
  WriteFile(empty, "");
  Result r = Kiln({"run", empty});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(r.err.rfind("kiln: error: ", 0), 0u) << Describe(r);

  std::string unknown = Runfile("tools/bad_unknown_op.onnx");
  ExpectCleanFailure(Kiln({"run", unknown}), unknown, "KilnNoSuchOp");

  std::string missing = TmpDir() + "/no_such_model.onnx";
  ExpectCleanFailure(Kiln({"run", missing}), missing, "cannot open");
  ExpectCleanFailure(Kiln({"info", missing}), missing, "cannot open");
  ExpectCleanFailure(Kiln({"dot", missing}), missing, "cannot open");
}

TEST(CliTest, BadInputFilesFailCleanly) {
  const std::string model = Runfile("tools/cnn_small.onnx");

  std::string wrong_shape = TmpDir() + "/wrong_shape.npy";
  StatusOr<Tensor> t = Tensor::Allocate(DType::kFloat32, {1, 3, 16, 16});
  ASSERT_TRUE(t.ok());
  for (int64_t i = 0; i < t->num_elements(); ++i) t->data<float>()[i] = 0.5f;
  ASSERT_TRUE(WriteNpy(wrong_shape, *t).ok());
  ExpectCleanFailure(Kiln({"run", model, "--input", "input=" + wrong_shape}), wrong_shape, "[1, 3, 32, 32]");

  std::string wrong_dtype = TmpDir() + "/wrong_dtype.npy";
  StatusOr<Tensor> d = Tensor::Allocate(DType::kInt64, {1, 3, 32, 32});
  ASSERT_TRUE(d.ok());
  for (int64_t i = 0; i < d->num_elements(); ++i) d->data<int64_t>()[i] = 1;
  ASSERT_TRUE(WriteNpy(wrong_dtype, *d).ok());
  ExpectCleanFailure(Kiln({"run", model, "--input", "input=" + wrong_dtype}), wrong_dtype, "needs float32");

  std::string garbage = TmpDir() + "/garbage.npy";
  WriteFile(garbage, "not a numpy file");
  ExpectCleanFailure(Kiln({"run", model, "--input", "input=" + garbage}), garbage, "bad magic");

  std::string missing = TmpDir() + "/missing.npy";
  ExpectCleanFailure(Kiln({"run", model, "--input", "input=" + missing}), missing, "cannot open");

  ExpectCleanFailure(Kiln({"run", model, "--input", "nope=" + wrong_shape}), model, "no input 'nope'");
}

TEST(CliTest, UsageErrors) {
  Result help = Kiln({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("usage: kiln"), std::string::npos) << help.out;
  EXPECT_EQ(help.err, "");

  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{},
                                             {"frobnicate"},
                                             {"run"},
                                             {"run", "a.onnx", "b.onnx"},
                                             {"run", "a.onnx", "--bogus"},
                                             {"run", "a.onnx", "--iters", "many"},
                                             {"run", "a.onnx", "--iters"},
                                             {"run", "a.onnx", "--tier", "fast"},
                                             {"run", "a.onnx", "--graph-opt", "max"},
                                             {"info", "a.onnx", "--graph-opt", "none"},
                                             {"run", "a.onnx", "--channels-last", "yes"},
                                             {"run", "a.onnx", "--input", "noequals"},
                                             {"info"},
                                             {"dot", "a", "b"}}) {
    Result r = Kiln(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.exit_code, 2) << joined << Describe(r);
    EXPECT_EQ(r.err.rfind("kiln: error: ", 0), 0u) << joined << Describe(r);
    EXPECT_NE(r.err.find("usage: kiln"), std::string::npos) << joined << Describe(r);
  }
}

TEST(CliTest, InfoAndDot) {
  Result info = Kiln({"info", Runfile("tools/transformer_tiny.onnx")});
  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  for (const char* fragment : {"opset: 13", "[batch, 16, 64]", "Softmax", "MatMul", "unsupported ops: none"}) {
    EXPECT_NE(info.out.find(fragment), std::string::npos) << fragment << " not in " << info.out;
  }

  Result unknown = Kiln({"info", Runfile("tools/bad_unknown_op.onnx")});
  ASSERT_EQ(unknown.exit_code, 0) << Describe(unknown);
  EXPECT_NE(unknown.out.find("unsupported ops:\n  KilnNoSuchOp"), std::string::npos) << unknown.out;

  Result dot = Kiln({"dot", Runfile("tools/mlp.onnx")});
  ASSERT_EQ(dot.exit_code, 0) << Describe(dot);
  EXPECT_EQ(dot.out.rfind("digraph", 0), 0u) << dot.out;
  EXPECT_NE(dot.out.find("MatMul"), std::string::npos);
  EXPECT_EQ(dot.out.back(), '\n');
}

}  // namespace
}  // namespace kiln::tools
