// ONNX backend conformance: runs every case of Debian's libonnx-testdata
// (ONNX's own backend test suite) through a kiln session and compares with
// the reference outputs using ONNX's default tolerances.
//
// A case is skipped only when kiln reports StatusCode::kUnsupported (an op,
// dtype or attribute it does not implement); the reason is listed. Any other
// error or any mismatch is a failure, and one failure fails the test.
//
// Environment:
//   KILN_CONFORMANCE_FILTER  regex on the case name (e.g. "test_conv.*")
//   KILN_CONFORMANCE_DATA    data root (default /usr/share/libonnx-testdata/data)
//   KILN_CONFORMANCE_LOG     where to write the per-op tables, suffixed with
//                            ".interp" / ".jit" (default: the test's undeclared
//                            outputs dir, conformance_<tier>.log)
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "graph/onnx_loader.h"
#include "kiln/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

enum class Outcome { kPassed, kFailed, kSkipped };

struct CaseResult {
  std::string name;
  bool ran_compiled = false;  // some region ran JIT code
  Outcome outcome = Outcome::kPassed;
  std::string reason;
  std::set<std::string> ops;
};

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::set<std::string> OpTypesOf(const std::string& model_path) {
  std::set<std::string> ops;
  auto bytes = graph::ReadFileToString(model_path);
  onnx::ModelProto model;
  if (bytes.ok() && model.ParseFromString(*bytes)) {
    for (const auto& n : model.graph().node()) ops.insert(n.op_type());
  }
  return ops;
}

template <typename T>
double At(const Tensor& t, int64_t i) {
  return static_cast<double>(t.data<T>()[i]);
}

double ElementAsDouble(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kFloat32: return At<float>(t, i);
    case DType::kFloat64: return At<double>(t, i);
    case DType::kInt64: return At<int64_t>(t, i);
    case DType::kInt32: return At<int32_t>(t, i);
    case DType::kInt16: return At<int16_t>(t, i);
    case DType::kInt8: return At<int8_t>(t, i);
    case DType::kUint8: return At<uint8_t>(t, i);
    case DType::kBool: return t.data<bool>()[i] ? 1.0 : 0.0;
    case DType::kUndefined:
    case DType::kSequence: return 0;
  }
  return 0;
}

// Empty when equal within tolerance, else a description of the first
// mismatch.
std::string Compare(const Tensor& actual, const Tensor& expected, double rtol, double atol) {
  if (actual.dtype() != expected.dtype()) {
    return std::string("dtype ") + DTypeName(actual.dtype()) + ", expected " + DTypeName(expected.dtype());
  }
  if (actual.dims() != expected.dims()) {
    return "shape " + DimsToString(actual.dims()) + ", expected " + DimsToString(expected.dims());
  }
  const bool is_float = actual.dtype() == DType::kFloat32 || actual.dtype() == DType::kFloat64;
  int64_t mismatches = 0;
  std::string first;
  for (int64_t i = 0; i < actual.num_elements(); ++i) {
    const double a = ElementAsDouble(actual, i);
    const double e = ElementAsDouble(expected, i);
    bool ok;
    if (!is_float) {
      ok = a == e;
    } else if (std::isnan(e)) {
      ok = std::isnan(a);
    } else if (std::isinf(e)) {
      ok = a == e;
    } else {
      ok = std::fabs(a - e) <= atol + rtol * std::fabs(e);
    }
    if (!ok) {
      if (mismatches == 0) {
        std::ostringstream os;
        os.precision(9);
        os << "element " << i << " is " << a << ", expected " << e;
        first = os.str();
      }
      ++mismatches;
    }
  }
  if (mismatches == 0) return "";
  return std::to_string(mismatches) + " of " + std::to_string(actual.num_elements()) + " elements differ; " + first;
}

// Compare or CompareBits over sequences and None too: a sequence matches
// one of the same length whose elements match in order.
template <typename TensorCompare>
std::string CompareValues(const Tensor& actual, const Tensor& expected, const TensorCompare& compare) {
  if (IsNoneOptional(expected) || IsNoneOptional(actual)) {
    return IsNoneOptional(expected) == IsNoneOptional(actual) ? ""
           : IsNoneOptional(actual)                           ? "an empty optional, expected a value"
                                                              : "a value, expected an empty optional";
  }
  const std::vector<Tensor>* expected_elements = SequenceElements(expected);
  const std::vector<Tensor>* actual_elements = SequenceElements(actual);
  if (expected_elements == nullptr && actual_elements == nullptr) return compare(actual, expected);
  if (expected_elements == nullptr || actual_elements == nullptr) {
    return expected_elements == nullptr ? "a sequence, expected a tensor" : "a tensor, expected a sequence";
  }
  if (SequenceElementDType(actual) != SequenceElementDType(expected)) {
    return std::string("a sequence of ") + DTypeName(SequenceElementDType(actual)) + ", expected one of " +
           DTypeName(SequenceElementDType(expected));
  }
  if (actual_elements->size() != expected_elements->size()) {
    return "a sequence of " + std::to_string(actual_elements->size()) + " tensors, expected " +
           std::to_string(expected_elements->size());
  }
  for (size_t i = 0; i < actual_elements->size(); ++i) {
    std::string diff = compare((*actual_elements)[i], (*expected_elements)[i]);
    if (!diff.empty()) return "sequence element " + std::to_string(i) + ": " + diff;
  }
  return "";
}

graph::ValueKind KindOf(const TensorInfo& info) {
  if (info.is_sequence) return info.is_optional ? graph::ValueKind::kOptionalSequence : graph::ValueKind::kSequence;
  return info.is_optional ? graph::ValueKind::kOptionalTensor : graph::ValueKind::kTensor;
}

std::vector<std::string> SortedFiles(const fs::path& dir, const std::string& prefix) {
  std::vector<std::pair<int, std::string>> numbered;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && entry.path().extension() == ".pb") {
      numbered.emplace_back(std::atoi(name.c_str() + prefix.size()), entry.path().string());
    }
  }
  std::sort(numbered.begin(), numbered.end());
  std::vector<std::string> files;
  for (auto& [n, path] : numbered) files.push_back(path);
  return files;
}

// Elements whose bits differ between two tensors of equal dtype and dims
// ("" when none): the bitwise mode's comparison.
std::string CompareBits(const Tensor& actual, const Tensor& expected) {
  if (actual.dtype() != expected.dtype() || actual.dims() != expected.dims()) {
    return "dtype or dims differ: " + DimsToString(actual.dims()) + " against " + DimsToString(expected.dims());
  }
  const size_t elem = actual.num_elements() > 0 ? actual.byte_size() / static_cast<size_t>(actual.num_elements()) : 0;
  int64_t differing = 0, first = -1;
  for (int64_t i = 0; i < actual.num_elements(); ++i) {
    const size_t at = static_cast<size_t>(i) * elem;
    if (std::memcmp(static_cast<const char*>(actual.raw_data()) + at,
                    static_cast<const char*>(expected.raw_data()) + at, elem) != 0) {
      if (first < 0) first = i;
      ++differing;
    }
  }
  if (differing == 0) return "";
  std::ostringstream os;
  os.precision(9);
  os << differing << " of " << actual.num_elements() << " elements differ in their bits; first: element " << first
     << " is " << ElementAsDouble(actual, first) << ", interpreted " << ElementAsDouble(expected, first);
  return os.str();
}

// How a suite runs: the interpreter or the JIT against ONNX's reference
// outputs, or the JIT in bitwise-equivalent mode against the interpreter's
// outputs, bit for bit.
enum class Mode { kInterpreter, kJit, kBitwiseJit };

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kInterpreter: return "interpreter";
    case Mode::kJit: return "jit";
    case Mode::kBitwiseJit: return "jit-bitwise";
  }
  return "?";
}

// Runs one case. With the JIT tier, each data set runs twice: the first run
// is interpreted and compiles every region (blocking policy), the second
// runs the compiled code, and that is what is compared.
CaseResult RunCase(const fs::path& dir, Mode mode) {
  const TierPolicy tier = mode == Mode::kInterpreter ? TierPolicy::kInterpreter : TierPolicy::kJit;
  CaseResult result;
  result.name = dir.filename().string();
  const std::string model_path = (dir / "model.onnx").string();
  result.ops = OpTypesOf(model_path);
  auto fail = [&](Outcome outcome, const std::string& why) {
    result.outcome = outcome;
    result.reason = why;
    return result;
  };
  auto classify = [&](const Status& s, const std::string& stage) {
    return fail(s.code() == StatusCode::kUnsupported ? Outcome::kSkipped : Outcome::kFailed,
                stage + ": " + s.ToString());
  };

  auto model = Model::Load(model_path);
  if (!model.ok()) return classify(model.status(), "load");
  SessionOptions options;
  options.intra_op_threads = 2;
  options.tier = tier;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  // Every fusible op, even alone, is compiled, so the suite covers the
  // code generator op by op.
  options.jit_min_region_nodes = 1;
  options.jit_bitwise_equivalent = mode == Mode::kBitwiseJit;
  auto session = Session::Create(*model, options);
  if (!session.ok()) return classify(session.status(), "session");
  std::unique_ptr<Session> interpreter;
  if (mode == Mode::kBitwiseJit) {
    SessionOptions interpreter_options;
    interpreter_options.intra_op_threads = 2;
    interpreter_options.tier = TierPolicy::kInterpreter;
    // Waits for the interpreter's background preparation, as the JIT's
    // session does: a first run before it ends computes convolutions
    // another way.
    interpreter_options.jit_bitwise_equivalent = true;
    auto s = Session::Create(*model, interpreter_options);
    if (!s.ok()) return classify(s.status(), "interpreter session");
    interpreter = std::move(*s);
  }

  std::vector<fs::path> data_sets;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_directory() && entry.path().filename().string().rfind("test_data_set_", 0) == 0) {
      data_sets.push_back(entry.path());
    }
  }
  std::sort(data_sets.begin(), data_sets.end());
  if (data_sets.empty()) return fail(Outcome::kSkipped, "no test data sets");

  const auto& input_infos = (*model)->inputs();
  for (const fs::path& ds : data_sets) {
    std::vector<NamedTensor> inputs;
    const auto input_files = SortedFiles(ds, "input_");
    for (size_t i = 0; i < input_files.size(); ++i) {
      if (i >= input_infos.size()) return fail(Outcome::kFailed, "more input files than model inputs");
      auto t = graph::LoadValueProtoFile(input_files[i], KindOf(input_infos[i]), input_infos[i].dtype);
      if (!t.ok()) return classify(t.status(), "input " + std::to_string(i));
      inputs.push_back({input_infos[i].name, std::move(t->tensor)});
    }
    auto outputs = (*session)->Run(inputs);
    if (outputs.ok() && tier == TierPolicy::kJit) outputs = (*session)->Run(inputs);
    if (!outputs.ok()) return classify(outputs.status(), "run " + ds.filename().string());
    if (interpreter != nullptr) {
      auto expected = interpreter->Run(inputs);
      if (!expected.ok()) return classify(expected.status(), "interpreter run " + ds.filename().string());
      if (expected->size() != outputs->size()) return fail(Outcome::kFailed, "the tiers give different output counts");
      for (size_t i = 0; i < outputs->size(); ++i) {
        std::string diff = CompareValues((*outputs)[i].tensor, (*expected)[i].tensor, CompareBits);
        if (!diff.empty()) {
          return fail(Outcome::kFailed, ds.filename().string() + " output " + std::to_string(i) + " ('" +
                                            (*outputs)[i].name + "'): " + diff);
        }
      }
      continue;
    }
    const auto output_files = SortedFiles(ds, "output_");
    if (output_files.size() != outputs->size()) {
      return fail(Outcome::kFailed, "produced " + std::to_string(outputs->size()) + " outputs, expected " +
                                        std::to_string(output_files.size()));
    }
    for (size_t i = 0; i < output_files.size(); ++i) {
      const TensorInfo& info = (*model)->outputs()[i];
      auto expected = graph::LoadValueProtoFile(output_files[i], KindOf(info), info.dtype);
      if (!expected.ok()) return classify(expected.status(), "output " + std::to_string(i));
      std::string diff = CompareValues((*outputs)[i].tensor, expected->tensor,
                                       [](const Tensor& a, const Tensor& e) { return Compare(a, e, 1e-3, 1e-7); });
      if (!diff.empty()) {
        return fail(Outcome::kFailed, ds.filename().string() + " output " + std::to_string(i) + " ('" +
                                          (*outputs)[i].name + "'): " + diff);
      }
    }
  }
  for (const RegionStats& r : (*session)->stats().regions) result.ran_compiled |= r.compiled_calls > 0;
  return result;
}

void RunSuite(Mode mode) {
  const fs::path root = Env("KILN_CONFORMANCE_DATA", "/usr/share/libonnx-testdata/data");
  ASSERT_TRUE(fs::exists(root)) << root << " is missing: install libonnx-testdata";
  const std::regex filter(Env("KILN_CONFORMANCE_FILTER", ".*"));

  std::vector<fs::path> cases;
  for (const char* suite : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
    if (!fs::exists(root / suite)) continue;
    for (const auto& entry : fs::directory_iterator(root / suite)) {
      if (entry.is_directory() && fs::exists(entry.path() / "model.onnx") &&
          std::regex_search(entry.path().filename().string(), filter)) {
        cases.push_back(entry.path());
      }
    }
  }
  std::sort(cases.begin(), cases.end());

  std::vector<CaseResult> results;
  for (const fs::path& c : cases) results.push_back(RunCase(c, mode));

  int passed = 0, failed = 0, skipped = 0, compiled = 0;
  struct OpCounts {
    int passed = 0, failed = 0, skipped = 0;
  };
  std::map<std::string, OpCounts> per_op;
  std::ostringstream log;
  for (const CaseResult& r : results) {
    for (const std::string& op : r.ops) {
      auto& c = per_op[op];
      (r.outcome == Outcome::kPassed ? c.passed : r.outcome == Outcome::kFailed ? c.failed : c.skipped)++;
    }
    switch (r.outcome) {
      case Outcome::kPassed:
        ++passed;
        compiled += r.ran_compiled ? 1 : 0;
        break;
      case Outcome::kFailed:
        ++failed;
        log << "FAILED  " << r.name << ": " << r.reason << "\n";
        break;
      case Outcome::kSkipped:
        ++skipped;
        log << "SKIPPED " << r.name << ": " << r.reason << "\n";
        break;
    }
  }
  log << "\nper-op results (a case counts for every op its model uses):\n";
  log << "op                              passed  failed skipped\n";
  for (const auto& [op, c] : per_op) {
    char line[128];
    std::snprintf(line, sizeof(line), "%-30s %7d %7d %7d\n", op.c_str(), c.passed, c.failed, c.skipped);
    log << line;
  }
  std::ostringstream summary;
  const std::string tier_name = ModeName(mode);
  summary << "conformance[" << tier_name << "]: " << passed << " passed, " << failed << " failed, " << skipped
          << " skipped";
  if (mode != Mode::kInterpreter) summary << " (" << compiled << " passed cases ran JIT-compiled regions)";
  log << "\n" << summary.str() << "\n";

  std::string log_path = Env("KILN_CONFORMANCE_LOG", "");
  if (!log_path.empty()) {
    log_path += "." + tier_name;
  } else if (std::getenv("TEST_UNDECLARED_OUTPUTS_DIR")) {
    log_path = std::string(std::getenv("TEST_UNDECLARED_OUTPUTS_DIR")) + "/conformance_" + tier_name + ".log";
  }
  if (!log_path.empty()) std::ofstream(log_path) << log.str();
  // Failures go to stdout in full so CI logs show them; skips only in the log.
  for (const CaseResult& r : results) {
    if (r.outcome == Outcome::kFailed) std::cout << "FAILED  " << r.name << ": " << r.reason << "\n";
  }
  std::cout << summary.str() << (log_path.empty() ? "" : " (details: " + log_path + ")") << std::endl;
  if (Env("KILN_CONFORMANCE_VERBOSE", "") == "1") std::cout << log.str();
  EXPECT_EQ(failed, 0) << summary.str();
}

TEST(Conformance, OnnxBackendSuiteInterpreter) { RunSuite(Mode::kInterpreter); }

// Every case that passes in the interpreter must pass with all fusible
// regions compiled, at the same tolerances.
TEST(Conformance, OnnxBackendSuiteJit) { RunSuite(Mode::kJit); }

// SessionOptions::jit_bitwise_equivalent over the whole suite: every output
// of every case equals the interpreter's bit for bit, with every region the
// mode can compile compiled.
TEST(Conformance, OnnxBackendSuiteBitwiseJit) { RunSuite(Mode::kBitwiseJit); }

}  // namespace
}  // namespace kiln
