// Runs the `kiln` binary as a user would: on the demo models, comparing the
// .npy outputs it writes with numpy's expected outputs, and on malformed
// inputs, checking for a non-zero exit and one clear error line.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/tensor.h"
#include "kiln/version.h"
#include "test/control_flow_models.h"
#include "test/model_builder.h"
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

// Runs kiln with `args`. BUILD_WORKING_DIRECTORY is unset unless
// `working_directory` gives it, as when a user runs the binary directly.
Result Kiln(const std::vector<std::string>& args, const std::string& working_directory = "") {
  std::string out_path = TmpDir() + "/kiln_stdout.txt";
  std::string err_path = TmpDir() + "/kiln_stderr.txt";
  std::string cmd = working_directory.empty() ? "env -u BUILD_WORKING_DIRECTORY "
                                              : "env BUILD_WORKING_DIRECTORY=" + Quote(working_directory) + " ";
  cmd += Quote(Runfile("tools/kiln"));
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

// min <= p50 <= p90 <= p99 <= max, all present, and p50 is the median.
void ExpectOrderedPercentiles(const nlohmann::ordered_json& report) {
  const std::vector<const char*> order = {"min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"};
  for (const char* key : order) ASSERT_TRUE(report[key].is_number()) << key << " in " << report.dump();
  for (size_t i = 1; i < order.size(); ++i) {
    EXPECT_LE(report[order[i - 1]].get<double>(), report[order[i]].get<double>()) << order[i - 1] << " " << order[i];
  }
  EXPECT_EQ(report["median_ms"], report["p50_ms"]);
  EXPECT_GT(report["max_ms"].get<double>(), 0);
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
                                         "p50_ms",
                                         "p90_ms",
                                         "p99_ms",
                                         "max_ms",
                                         "min_ms",
                                         "mean_ms",
                                         "runs",
                                         "concurrency",
                                         "duration_s",
                                         "wall_s",
                                         "qps",
                                         "warmup",
                                         "tier_up",
                                         "total_runs",
                                         "peak_planned_bytes",
                                         "unplanned_bytes",
                                         "pooled_output_bytes",
                                         "regions_total",
                                         "regions_compiled",
                                         "compile_ms_total",
                                         "reused_code",
                                         "declined_specializations",
                                         "verify_failures",
                                         "deopts",
                                         "cache_hits",
                                         "cache_misses",
                                         "cache_rejected",
                                         "compiled_calls",
                                         "interpreted_region_calls",
                                         "gemm_regions",
                                         "depthwise_regions",
                                         "attention_regions",
                                         "body_regions",
                                         "break_even",
                                         "latency_split_ms_per_run",
                                         "outputs"};
  std::vector<std::string> got;
  for (const auto& [key, value] : report.items()) got.push_back(key);
  EXPECT_EQ(got, keys);
  EXPECT_TRUE(report["model"].get<std::string>().ends_with(model_suffix)) << report["model"];
  EXPECT_EQ(report["tier_requested"], tier);
  EXPECT_EQ(report["runs"], 3);
  EXPECT_EQ(report["concurrency"], 1);
  EXPECT_TRUE(report["duration_s"].is_null()) << "counted runs, not timed ones";
  EXPECT_TRUE(report["tier_up"].is_null()) << "no --wait-for-jit";
  ExpectOrderedPercentiles(report);
  EXPECT_GE(report["total_runs"].get<int64_t>(), 3);
  // One account per compiled version; their net adds up to the total.
  const auto& break_even = report["break_even"];
  ASSERT_TRUE(break_even.is_object()) << break_even;
  EXPECT_EQ(break_even["versions"].get<size_t>(), break_even["specializations"].size()) << break_even;
  double net_saved_ms = 0;
  for (const auto& version : break_even["specializations"]) {
    EXPECT_GE(version["compile_ms"].get<double>(), 0) << version;
    EXPECT_EQ(version["saving_ms_per_call"].is_null(), !version["measured"].get<bool>()) << version;
    net_saved_ms += version["net_saved_ms"].get<double>();
  }
  EXPECT_NEAR(break_even["net_saved_ms"].get<double>(), net_saved_ms,
              0.01 * (1 + break_even["versions"].get<double>()));
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

// --bitwise: the JIT's written outputs are the interpreter's, byte for byte.
// Not the CNN: without --bitwise, an interpreter run that comes before its
// session's background preparation ends computes convolutions another way,
// so the reference itself would depend on timing.
TEST(CliTest, BitwiseJitOutputsEqualTheInterpretersBytes) {
  for (const DemoModel& m : kDemoModels) {
    if (std::string(m.name) == "cnn_small") continue;
    SCOPED_TRACE(m.name);
    const std::string base = std::string("tools/") + m.name;
    std::vector<std::string> files;
    for (const char* tier : {"interp", "jit"}) {
      const std::string out_dir = TmpDir() + "/bitwise_" + m.name + "_" + tier;
      std::vector<std::string> args = {"run",          Runfile(base + ".onnx"),
                                       "--input",      std::string(m.input) + "=" + Runfile(base + "_input_0.npy"),
                                       "--output-dir", out_dir,
                                       "--iters",      "3",
                                       "--tier",       tier};
      if (std::string(tier) == "jit") args.push_back("--bitwise");
      Result r = Kiln(args);
      ASSERT_EQ(r.exit_code, 0) << Describe(r);
      files.push_back(ReadFile(out_dir + "/output_0.npy"));
    }
    ASSERT_FALSE(files[0].empty());
    EXPECT_TRUE(files[0] == files[1]) << "the --bitwise JIT's output differs from the interpreter's";
  }
  Result bad = Kiln({"run", "a.onnx", "--bitwise", "--tier", "interp"});
  EXPECT_EQ(bad.exit_code, 2) << Describe(bad);
  EXPECT_NE(bad.err.find("--bitwise applies to the JIT tier"), std::string::npos) << bad.err;
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

  // Same seed, same data: two runs print the same checksum, to float
  // rounding: a convolution run before its session's background
  // preparation ends sums in another order (bit-for-bit results are what
  // --bitwise is for).
  Result again = Kiln({"run", Runfile("tools/cnn_small.onnx"), "--iters", "1", "--warmup", "0", "--threads", "1"});
  auto checksum = [](const std::string& out) {
    const size_t at = out.find("sum=");
    return at == std::string::npos ? std::nan("") : std::strtod(out.c_str() + at + 4, nullptr);
  };
  const double first = checksum(r.out), second = checksum(again.out);
  EXPECT_NEAR(first, second, 1e-5 * std::max(1.0, std::fabs(first))) << r.out << again.out;
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

// Each bad flag is a usage error (exit 2) whose message names the flag and
// which is followed by the usage of the command it was given to.
TEST(CliTest, BadFlagsAreUsageErrorsNamingTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string fragment;  // in the error line
    std::string usage;     // the usage text that follows
  };
  const std::vector<Case> cases = {
      {{"run", "a.onnx", "--bogus"}, "'--bogus'", "usage: kiln run MODEL"},
      {{"run", "a.onnx", "-x"}, "'-x'", "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--concurrency", "0"}, "--concurrency must be in [1, 1024], got 0", "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--concurrency", "two"}, "--concurrency must be an integer", "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--concurrency"}, "'--concurrency' needs a value", "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--duration", "-1"}, "--duration must be more than 0", "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--duration", "0"}, "--duration must be more than 0", "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--duration", "1s"}, "--duration must be a number of seconds", "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--duration", "nan"}, "--duration must be a number of seconds", "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--iters", "3", "--duration", "1"}, "--iters and --duration", "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--shape", "input"}, "--shape expects NAME=VALUE", "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--shape", "input=1x3xq"},
       "--shape input expects dims like 1x3x224x224",
       "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--shape", "input=1x"}, "--shape input expects dims", "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--shape", "input=1x2", "--shape", "input=1x3"},
       "--shape 'input' is given more than once",
       "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--input", "input=a.npy", "--shape", "input=1x2"},
       "--shape input and --input input",
       "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--wait-for-jit", "--tier", "interp"},
       "--wait-for-jit needs a JIT tier",
       "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--wait-for-jit=yes"}, "'--wait-for-jit' takes no value", "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--jit-timeout", "5"},
       "--jit-timeout only applies with --wait-for-jit",
       "usage: kiln run MODEL"},
      {{"run", "a.onnx", "--wait-for-jit", "--jit-timeout", "0"},
       "--jit-timeout must be more than 0",
       "usage: kiln run MODEL"},
      {{"info", "a.onnx", "--bogus"}, "'--bogus'", "usage: kiln info MODEL"},
      {{"info", "a.onnx", "--concurrency", "2"}, "'--concurrency'", "usage: kiln info MODEL"},
      {{"dot", "a.onnx", "--graph"}, "'--graph'", "usage: kiln dot MODEL"},
      {{"version", "extra"}, "version takes no arguments", "usage: kiln <command>"},
      {{"frobnicate"}, "unknown command 'frobnicate'", "usage: kiln <command>"},
  };
  for (const Case& c : cases) {
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    SCOPED_TRACE(joined);
    Result r = Kiln(c.args);
    EXPECT_FALSE(r.signalled) << Describe(r);
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    EXPECT_EQ(r.out, "") << Describe(r);
    const std::string first_line = r.err.substr(0, r.err.find('\n'));
    EXPECT_EQ(first_line.rfind("kiln: error: ", 0), 0u) << Describe(r);
    EXPECT_NE(first_line.find(c.fragment), std::string::npos) << "missing '" << c.fragment << "': " << Describe(r);
    EXPECT_NE(r.err.find("\n\n" + c.usage), std::string::npos) << "missing '" << c.usage << "': " << Describe(r);
  }
}

// `kiln --help` lists the commands; `kiln <command> --help` prints that
// command's own options to stdout and exits 0.
TEST(CliTest, EachCommandHasItsOwnHelp) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{{"--help"}, {"-h"}, {"help"}}) {
    Result r = Kiln(args);
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.out.rfind("usage: kiln <command>", 0), 0u) << r.out;
    for (const char* command : {"\n  run MODEL", "\n  info MODEL", "\n  dot MODEL", "\n  version"}) {
      EXPECT_NE(r.out.find(command), std::string::npos) << command << " not in " << r.out;
    }
    EXPECT_EQ(r.out.find("--concurrency"), std::string::npos) << "options belong to the commands' help";
  }
  struct CommandHelp {
    const char* command;
    std::vector<std::string> options;
  };
  const std::vector<CommandHelp> commands = {
      {"run",
       {"--input", "--shape", "--dim", "--output-dir", "--report", "--trace", "--profile", "--iters", "--duration",
        "--concurrency", "--warmup", "--wait-for-jit", "--jit-timeout", "--tier", "--threads", "--graph-opt",
        "--channels-last", "--payback-horizon", "--compile-share"}},
      {"info", {"--graph", "--regions", "--graph-opt", "--channels-last"}},
      {"dot", {"--no-constants", "--regions", "--graph-opt", "--channels-last"}},
  };
  for (const CommandHelp& c : commands) {
    for (const char* flag : {"--help", "-h"}) {
      SCOPED_TRACE(std::string(c.command) + " " + flag);
      // Help wins over everything else on the line, even a missing MODEL.
      Result r = Kiln({c.command, flag});
      ASSERT_EQ(r.exit_code, 0) << Describe(r);
      EXPECT_EQ(r.err, "");
      EXPECT_EQ(r.out.rfind("usage: kiln " + std::string(c.command) + " MODEL", 0), 0u) << r.out;
      for (const std::string& option : c.options) {
        // Every option is listed at the start of a line with an explanation.
        const size_t at = r.out.find("\n  " + option + " ");
        EXPECT_NE(at, std::string::npos) << option << " not listed in " << r.out;
      }
      for (const char* other : {"usage: kiln run", "usage: kiln info", "usage: kiln dot"}) {
        if (std::string(other) == "usage: kiln " + std::string(c.command)) continue;
        EXPECT_EQ(r.out.find(other), std::string::npos) << other << " in " << c.command << "'s help";
      }
    }
  }
}

TEST(CliTest, VersionPrintsTheLibraryVersion) {
  const std::string expected = std::string("kiln ") + Version() + "\n";
  for (const char* flag : {"--version", "version"}) {
    SCOPED_TRACE(flag);
    Result r = Kiln({flag});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.out.rfind(expected, 0), 0u) << r.out;
    EXPECT_NE(r.out.find("\nhost cpu: "), std::string::npos) << r.out;
  }
  // The version is "MAJOR.MINOR.PATCH" of the headers' numbers.
  EXPECT_EQ(std::string(Version()), std::to_string(KILN_VERSION_MAJOR) + "." + std::to_string(KILN_VERSION_MINOR) +
                                        "." + std::to_string(KILN_VERSION_PATCH));
}

// --shape fixes a generated input's shape: symbolic dims take its values,
// and a shape that names no input or contradicts the model is an error
// naming the input.
TEST(CliTest, ShapeFlagSetsGeneratedInputShapes) {
  const std::string transformer = Runfile("tools/transformer_tiny.onnx");
  Result r = Kiln({"run", transformer, "--shape", "input=3x16x64", "--iters", "1", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("input 0 'input': float32 [3, 16, 64] (generated)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("output 0 'output': float32 [3, 16, 64]"), std::string::npos) << r.out;

  Result agreeing = Kiln({"run", transformer, "--shape=input=2x16x64", "--dim", "batch=2", "--iters", "1"});
  ASSERT_EQ(agreeing.exit_code, 0) << Describe(agreeing);
  EXPECT_NE(agreeing.out.find("[2, 16, 64] (generated)"), std::string::npos) << agreeing.out;

  ExpectCleanFailure(Kiln({"run", transformer, "--shape", "input=2x16x64", "--dim", "batch=3"}), transformer,
                     "--shape input=2x16x64 sets 'batch' to 2, but --dim batch=3 sets it to 3");
  ExpectCleanFailure(Kiln({"run", transformer, "--shape", "input=2x8x64"}), transformer,
                     "input 'input' fixes dim 1 at 16 [batch, 16, 64], the flag gives 8");
  ExpectCleanFailure(Kiln({"run", transformer, "--shape", "input=2x16"}), transformer,
                     "input 'input' has rank 3 [batch, 16, 64], the flag gives 2 dims");
  ExpectCleanFailure(Kiln({"run", transformer, "--shape", "tokens=2x16x64"}), transformer,
                     "the model has no input 'tokens' (its inputs: 'input')");

  const std::string cnn = Runfile("tools/cnn_small.onnx");
  Result fixed = Kiln({"run", cnn, "--shape", "input=1x3x32x32", "--iters", "1", "--threads", "1"});
  EXPECT_EQ(fixed.exit_code, 0) << Describe(fixed);
  ExpectCleanFailure(Kiln({"run", cnn, "--shape", "input=1x3x64x64"}), cnn,
                     "input 'input' fixes dim 2 at 32 [1, 3, 32, 32], the flag gives 64");
}

// Two threads for a second on one session: the report has QPS and the
// latency percentiles, and its numbers agree with each other.
TEST(CliTest, ConcurrentTimedRunsReportQpsAndPercentiles) {
  const std::string report_path = TmpDir() + "/concurrent.json";
  Result r = Kiln({"run", Runfile("tools/mlp.onnx"), "--concurrency", "2", "--duration", "1", "--threads", "1",
                   "--report", report_path});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  for (const char* fragment : {"median (p50) ", ", p90 ", ", p99 ", ", max ", "throughput: ", " runs/s over ",
                               "2 threads calling Run on one session"}) {
    EXPECT_NE(r.out.find(fragment), std::string::npos) << fragment << " not in " << r.out;
  }
  const nlohmann::ordered_json report =
      nlohmann::ordered_json::parse(ReadFile(report_path), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(report.is_object()) << ReadFile(report_path);
  EXPECT_EQ(report["concurrency"], 2);
  EXPECT_EQ(report["duration_s"], 1.0);
  ExpectOrderedPercentiles(report);
  const int64_t runs = report["runs"].get<int64_t>();
  EXPECT_GE(runs, 2) << "every thread makes at least one run";
  // Every thread keeps starting runs until the duration has passed, so the
  // timed part lasts at least that long, whatever the machine's speed.
  const double wall_s = report["wall_s"].get<double>();
  EXPECT_GE(wall_s, 1.0);
  EXPECT_NEAR(report["qps"].get<double>() * wall_s, static_cast<double>(runs), 1e-6 * static_cast<double>(runs));
  // First run and one warm-up run besides the timed ones.
  EXPECT_EQ(report["total_runs"].get<int64_t>(), runs + 2);
  ASSERT_EQ(report["outputs"].size(), 1u);
  EXPECT_EQ(report["outputs"][0]["shape"].get<Dims>(), (Dims{2, 10}));
}

// With --iters, the threads share the count: exactly that many timed runs.
TEST(CliTest, ConcurrentCountedRunsShareTheCount) {
  const std::string report_path = TmpDir() + "/counted.json";
  Result r = Kiln({"run", Runfile("tools/mlp.onnx"), "--concurrency", "3", "--iters", "7", "--warmup", "0", "--threads",
                   "1", "--report", report_path});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("over 7 runs"), std::string::npos) << r.out;
  const nlohmann::ordered_json report =
      nlohmann::ordered_json::parse(ReadFile(report_path), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["runs"], 7);
  EXPECT_EQ(report["total_runs"], 8);
  EXPECT_EQ(report["concurrency"], 3);
}

// --wait-for-jit warms up until every hot region is compiled or dropped,
// then times: the report and the text say what the JIT settled on and the
// latency before and after.
TEST(CliTest, WaitForJitTimesAfterTierUp) {
  const std::string report_path = TmpDir() + "/tier_up.json";
  const std::string model = Runfile("tools/transformer_tiny.onnx");
  Result r = Kiln({"run", model, "--input", "input=" + Runfile("tools/transformer_tiny_input_0.npy"), "--threads", "1",
                   "--iters", "20", "--wait-for-jit", "--report", report_path});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("tier-up: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" hot regions compiled"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tier-up latency: p50 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" ms before ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" ms after"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("still compiling"), std::string::npos) << r.out;

  const nlohmann::ordered_json report =
      nlohmann::ordered_json::parse(ReadFile(report_path), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(report.is_object());
  const auto& tier_up = report["tier_up"];
  ASSERT_TRUE(tier_up.is_object()) << report.dump(2);
  EXPECT_EQ(tier_up["settled"], true) << tier_up;
  EXPECT_EQ(tier_up["regions_waiting"], 0) << tier_up;
  EXPECT_GT(tier_up["regions_hot"].get<int>(), 0) << tier_up;
  EXPECT_EQ(tier_up["regions_compiled"].get<int>() + tier_up["regions_declined"].get<int>() +
                tier_up["regions_failed"].get<int>() + tier_up["regions_skipped_for_payback"].get<int>(),
            tier_up["regions_hot"].get<int>())
      << tier_up;
  EXPECT_GT(tier_up["warmup_runs"].get<int64_t>(), 0) << tier_up;
  EXPECT_EQ(tier_up["after_p50_ms"], report["p50_ms"]);
  // The first run and the warm-up run queue the compiles; the runs measured
  // before any code was in place are the "before".
  EXPECT_GT(tier_up["before_runs"].get<int64_t>(), 0) << tier_up;
  EXPECT_TRUE(tier_up["before_p50_ms"].is_number()) << tier_up;
  EXPECT_TRUE(tier_up["speedup"].is_number()) << tier_up;
  EXPECT_EQ(report["regions_compiled"], tier_up["regions_compiled"]);
  EXPECT_EQ(report["runs"], 20);
}

// Under `bazel run` the tool runs in its runfiles tree; relative paths
// mean the folder the user typed the command in (BUILD_WORKING_DIRECTORY).
TEST(CliTest, RelativePathsResolveAgainstBuildWorkingDirectory) {
  const std::string dir = TmpDir() + "/workdir";
  ASSERT_EQ(std::system(("mkdir -p " + Quote(dir + "/models")).c_str()), 0);
  WriteFile(dir + "/models/cnn.onnx", ReadFile(Runfile("tools/cnn_small.onnx")));
  WriteFile(dir + "/in.npy", ReadFile(Runfile("tools/cnn_small_input_0.npy")));

  Result r = Kiln({"run", "models/cnn.onnx", "--input", "input=in.npy", "--output-dir", "out", "--report",
                   "report.json", "--trace", "trace.json", "--iters", "1", "--threads", "1"},
                  dir);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("from " + dir + "/in.npy"), std::string::npos) << r.out;
  StatusOr<Tensor> actual = ReadNpy(dir + "/out/output_0.npy");
  ASSERT_TRUE(actual.ok()) << actual.status().ToString();
  StatusOr<Tensor> expected = ReadNpy(Runfile("tools/cnn_small_expected_0.npy"));
  ASSERT_TRUE(expected.ok());
  testing::ExpectNear(*actual, *expected, 1e-4, 1e-5);
  const std::string report = ReadFile(dir + "/report.json");
  EXPECT_NE(report.find("\"model\": \"" + dir + "/models/cnn.onnx\""), std::string::npos) << report;
  EXPECT_NE(ReadFile(dir + "/trace.json").find("traceEvents"), std::string::npos);

  Result info = Kiln({"info", "models/cnn.onnx"}, dir);
  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  EXPECT_NE(info.out.find("model: " + dir + "/models/cnn.onnx"), std::string::npos) << info.out;
  Result dot = Kiln({"dot", "./models/../models/cnn.onnx"}, dir);
  ASSERT_EQ(dot.exit_code, 0) << Describe(dot);
  EXPECT_EQ(dot.out.rfind("digraph", 0), 0u);

  // Absolute paths stay as they are.
  Result absolute = Kiln({"info", Runfile("tools/mlp.onnx")}, dir);
  EXPECT_EQ(absolute.exit_code, 0) << Describe(absolute);
  // Without BUILD_WORKING_DIRECTORY a relative path is the process's own
  // business: here it names nothing.
  ExpectCleanFailure(Kiln({"info", "models/cnn.onnx"}), "models/cnn.onnx", "cannot open");
}

// `kiln info` shows what the model says about itself (ModelProto's fields).
TEST(CliTest, InfoPrintsModelMetadata) {
  testing::OnnxModelBuilder builder(13);
  builder.Input("x", onnx::TensorProto::FLOAT, {2, 4}).Output("y");
  builder.Node("Relu", {"x"}, {"y"});
  onnx::ModelProto& proto = builder.proto();
  proto.set_producer_name("exporter");
  proto.set_producer_version("2.1.0");
  proto.set_domain("ai.example");
  proto.set_model_version(7);
  proto.set_doc_string("A one-op model.\nSecond line.");
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"author", "kiln tests"}, {"license", "MIT"}}) {
    auto* prop = proto.add_metadata_props();
    prop->set_key(key);
    prop->set_value(value);
  }
  const std::string path = TmpDir() + "/metadata.onnx";
  WriteFile(path, builder.Serialize());

  Result r = Kiln({"info", path});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  for (const char* line :
       {"\nproducer: exporter 2.1.0\n", "\ndomain: ai.example\n", "\nmodel version: 7\n",
        "\ndoc: A one-op model. / Second line.\n", "\nmetadata_props:\n  author: kiln tests\n  license: MIT\n"}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << " not in " << r.out;
  }

  // The demo models say only who made them.
  Result demo = Kiln({"info", Runfile("tools/mlp.onnx")});
  ASSERT_EQ(demo.exit_code, 0) << Describe(demo);
  EXPECT_NE(demo.out.find("\nproducer: kiln-make-models\n"), std::string::npos) << demo.out;
  EXPECT_EQ(demo.out.find("metadata_props"), std::string::npos) << demo.out;
}

// A loop whose body branches: info counts the ops inside bodies, dot draws
// them as clusters, run runs the loop and prints its output.
TEST(CliTest, ControlFlowModelsInInfoDotAndRun) {
  // M as an initializer, so that generated inputs leave the trip count alone.
  testing::OnnxModelBuilder model = testing::LoopWithIfModel();
  model.proto().mutable_graph()->mutable_input()->DeleteSubrange(0, 1);
  model.Int64Init("M", {}, {5});
  const std::string path = TmpDir() + "/loop_with_if.onnx";
  WriteFile(path, model.Serialize());
  Result info = Kiln({"info", path});
  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  for (const char* fragment :
       {"nodes: 1 (and 6 inside If/Loop/Scan bodies)", "  If ", "  Loop ", "unsupported ops: none"}) {
    EXPECT_NE(info.out.find(fragment), std::string::npos) << fragment << " not in " << info.out;
  }

  Result dot = Kiln({"dot", path});
  ASSERT_EQ(dot.exit_code, 0) << Describe(dot);
  EXPECT_NE(dot.out.find("subgraph \"cluster_n0_body_\""), std::string::npos) << dot.out;
  EXPECT_NE(dot.out.find("subgraph \"cluster_n0_body_n3_then_branch_\""), std::string::npos) << dot.out;

  Result run = Kiln({"run", path, "--iters", "2"});
  EXPECT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_NE(run.out.find("output 0 's_final': float32 [3]"), std::string::npos) << run.out;
}

// A loop body's elementwise chain is a region of its own: kiln info lists it
// with the body it sits in, kiln dot --regions draws it as a cluster inside
// the body's, kiln run's report shows it compiled and its trace has a slice
// per call.
TEST(CliTest, RegionsInsideLoopBodiesInInfoAndReport) {
  testing::OnnxModelBuilder b(13);
  b.Input("x", onnx::TensorProto::FLOAT, {2, 4}).Int64Init("M", {}, {8}).FloatInit("half", {1}, {0.5f});
  b.Output("h_final");
  auto& loop = b.Node("Loop", {"M", "", "x"}, {"h_final"}, "steps");
  testing::BodyBuilder body(loop, "body");
  body.Input("i", testing::kCfInt64, {}).Input("c", testing::kCfBool, {}).Input("h", testing::kCfFloat, {2, 4});
  body.Output("c_out", testing::kCfBool, {}).Output("h_out", testing::kCfFloat, {2, 4});
  body.Node("Identity", {"c"}, {"c_out"});
  body.Node("Mul", {"h", "half"}, {"scaled"});
  body.Node("Add", {"scaled", "x"}, {"h_out"});
  const std::string path = TmpDir() + "/loop_region.onnx";
  WriteFile(path, b.Serialize());

  Result info = Kiln({"info", path, "--regions"});
  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  for (const char* fragment : {"JIT regions: 1", "(elementwise): 2 elementwise ops over [2, 4]",
                               "in: Loop 'steps'/body", "nodes: Mul:", "inputs: h half x"}) {
    EXPECT_NE(info.out.find(fragment), std::string::npos) << fragment << " not in " << info.out;
  }

  Result dot = Kiln({"dot", path, "--regions"});
  ASSERT_EQ(dot.exit_code, 0) << Describe(dot);
  const size_t body_cluster = dot.out.find("subgraph \"cluster_n0_body_\"");
  const size_t region_cluster = dot.out.find("subgraph \"cluster_n0_body_g0\"");
  ASSERT_NE(body_cluster, std::string::npos) << dot.out;
  ASSERT_NE(region_cluster, std::string::npos) << dot.out;
  EXPECT_LT(body_cluster, region_cluster) << dot.out;
  EXPECT_NE(dot.out.find("label=\"region 0: elementwise\""), std::string::npos) << dot.out;
  // The region's two nodes sit in its cluster, the Identity outside it.
  const std::string region_text = dot.out.substr(region_cluster, dot.out.find("}", region_cluster) - region_cluster);
  EXPECT_NE(region_text.find("Mul"), std::string::npos) << region_text;
  EXPECT_NE(region_text.find("Add"), std::string::npos) << region_text;
  EXPECT_EQ(region_text.find("Identity"), std::string::npos) << region_text;

  const std::string report_path = TmpDir() + "/loop_region_report.json";
  const std::string trace_path = TmpDir() + "/loop_region_trace.json";
  Result run = Kiln({"run", path, "--tier", "jit", "--iters", "3", "--report", report_path, "--trace", trace_path});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  // At least 8 iterations of one run of the loop, each calling the region.
  const std::string trace = ReadFile(trace_path);
  size_t region_slices = 0;
  for (size_t at = trace.find("\"region 0 ["); at != std::string::npos; at = trace.find("\"region 0 [", at + 1)) {
    ++region_slices;
  }
  EXPECT_GE(region_slices, 8u) << trace;
  EXPECT_NE(trace.find("\"region 0 [jit]\""), std::string::npos) << trace;
  EXPECT_NE(run.out.find("elementwise region 0 in Loop 'steps'/body"), std::string::npos) << run.out;
  const nlohmann::ordered_json report =
      nlohmann::ordered_json::parse(ReadFile(report_path), nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(report.is_discarded());
  ASSERT_EQ(report["body_regions"].size(), 1u) << report["body_regions"];
  const auto& region = report["body_regions"][0];
  EXPECT_EQ(region["path"], "Loop 'steps'/body");
  EXPECT_EQ(region["kind"], "elementwise");
  EXPECT_GT(region["compiled_calls"].get<int64_t>(), 0) << region;
}

// --feed passes a state output back as the next run's state input: after
// 1 + 10 runs of state = state * 0.5 + 1 from zero, each element is
// 2 * (1 - 2^-11).
TEST(CliTest, FeedCarriesStateFromRunToRun) {
  testing::OnnxModelBuilder b(13);
  b.Input("state", onnx::TensorProto::FLOAT, {1, 4}).Input("x", onnx::TensorProto::FLOAT, {1, 4});
  b.FloatInit("half", {}, {0.5f}).Output("state_out");
  b.Node("Mul", {"state", "half"}, {"decayed"});
  b.Node("Add", {"decayed", "x"}, {"state_out"});
  const std::string dir = TmpDir();
  WriteFile(dir + "/stream.onnx", b.Serialize());
  Tensor zeros = *Tensor::Allocate(DType::kFloat32, {1, 4});
  Tensor ones = *Tensor::Allocate(DType::kFloat32, {1, 4});
  for (int i = 0; i < 4; ++i) {
    zeros.data<float>()[i] = 0.0f;
    ones.data<float>()[i] = 1.0f;
  }
  ASSERT_TRUE(WriteNpy(dir + "/state.npy", zeros).ok());
  ASSERT_TRUE(WriteNpy(dir + "/x.npy", ones).ok());
  Result run = Kiln({"run", dir + "/stream.onnx", "--input", "state=" + dir + "/state.npy", "--input",
                     "x=" + dir + "/x.npy", "--feed", "state_out=state", "--warmup", "0", "--iters", "10"});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_NE(run.out.find("output 0 'state_out': float32 [1, 4] sum=7.99609375 "), std::string::npos) << run.out;

  Result bad = Kiln({"run", dir + "/stream.onnx", "--feed", "state_out=nope"});
  EXPECT_EQ(bad.exit_code, 1) << Describe(bad);
  EXPECT_NE(bad.err.find("--feed: the model has no input 'nope'"), std::string::npos) << Describe(bad);
  Result concurrent = Kiln({"run", dir + "/stream.onnx", "--feed", "state_out=state", "--concurrency", "2"});
  EXPECT_EQ(concurrent.exit_code, 2) << Describe(concurrent);
  EXPECT_NE(concurrent.err.find("--feed carries state"), std::string::npos) << Describe(concurrent);
}

}  // namespace
}  // namespace kiln::tools

namespace kiln::tools {
namespace {

// Two processes fill one cache folder at once; a third links every region
// from it and compiles nothing.
TEST(CliTest, ProcessesShareAJitCacheFolder) {
  const std::string dir = TmpDir() + "/shared_jit_cache";
  std::filesystem::remove_all(dir);
  const std::string model = Runfile("tools/transformer_tiny.onnx");
  std::string both;
  for (int p = 0; p < 2; ++p) {
    std::string cmd = "env -u BUILD_WORKING_DIRECTORY " + Quote(Runfile("tools/kiln")) + " run " + Quote(model) +
                      " --dim batch=1 --tier jit --iters 2 --jit-cache " + Quote(dir) + " --report " +
                      Quote(TmpDir() + "/cache_writer" + std::to_string(p) + ".json") + " >/dev/null 2>&1";
    both += (both.empty() ? "(" : " & ") + cmd;
  }
  both += " & wait)";
  ASSERT_EQ(std::system(both.c_str()), 0);
  for (int p = 0; p < 2; ++p) {
    const auto report = nlohmann::json::parse(ReadFile(TmpDir() + "/cache_writer" + std::to_string(p) + ".json"),
                                              nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(report.is_object());
    EXPECT_EQ(report["cache_rejected"], 0);
    EXPECT_GT(report["cache_hits"].get<int64_t>() + report["cache_misses"].get<int64_t>(), 0);
  }
  const std::string report_path = TmpDir() + "/cache_reader.json";
  Result r = Kiln(
      {"run", model, "--dim", "batch=1", "--tier", "jit", "--iters", "2", "--jit-cache", dir, "--report", report_path});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("jit cache: "), std::string::npos) << r.out;
  const auto report = nlohmann::json::parse(ReadFile(report_path), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(report.is_object());
  EXPECT_GT(report["cache_hits"].get<int64_t>(), 0);
  EXPECT_EQ(report["cache_misses"], 0);
  EXPECT_EQ(report["cache_rejected"], 0);
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().extension(), ".kobj") << "a temporary file was left behind: " << entry.path();
  }
}

// A payback horizon of one call: the MLP's microsecond regions are projected
// to need far more calls than that to win back a compile, so none compiles,
// and the run says why.
TEST(CliTest, APaybackHorizonKeepsRegionsThatWouldNotPayBackInterpreted) {
  const std::string report_path = TmpDir() + "/payback_horizon.json";
  Result r = Kiln({"run", Runfile("tools/mlp.onnx"), "--tier", "jit", "--iters", "3", "--payback-horizon", "1",
                   "--report", report_path});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("not compiled (payback beyond the horizon)"), std::string::npos) << r.out;
  const auto report = nlohmann::json::parse(ReadFile(report_path), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["regions_compiled"], 0) << report;
  EXPECT_EQ(report["break_even"]["versions"], 0) << report["break_even"];
  EXPECT_EQ(report["break_even"]["skipped_for_payback"], report["regions_total"]) << report;
}

// Background compiles paced at a chosen share still tier the model up
// (two request threads); a share outside 0..1 is refused by name.
TEST(CliTest, CompileShareIsPassedOnAndChecked) {
  Result r = Kiln({"run", Runfile("tools/mlp.onnx"), "--compile-share", "0.05", "--concurrency", "2", "--iters", "20",
                   "--wait-for-jit"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  for (const char* bad : {"1.5", "-0.1", "half", ""}) {
    Result e = Kiln({"run", Runfile("tools/mlp.onnx"), "--compile-share", bad});
    EXPECT_NE(e.exit_code, 0) << bad;
    EXPECT_NE(e.err.find("--compile-share"), std::string::npos) << bad << ": " << e.err;
  }
}

}  // namespace
}  // namespace kiln::tools
