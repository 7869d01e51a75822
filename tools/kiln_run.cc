// `kiln run`: loads a model, feeds it inputs from .npy files or generated
// data, runs it and reports outputs (checksums, optional .npy files) and
// latency (first run, median, p90), optionally as JSON.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/session.h"
#include "tools/kiln_cli.h"
#include "tools/npy.h"

namespace kiln::cli {
namespace {

constexpr int64_t kDefaultIters = 10;
constexpr int64_t kDefaultWarmup = 1;

using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// splitmix64: a tiny, well-mixed generator; the same seed always gives the
// same inputs, on every machine.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  double NextSigned() { return static_cast<double>(Next() >> 11) * 0x1.0p-52 - 1.0; }

 private:
  uint64_t state_;
};

// Fills `t` deterministically: floats uniform in [-1, 1), integers in
// [0, 16) (small and non-negative, so they also work as indices or token
// ids for small tables), bools 0/1.
void FillRandom(Tensor& t, uint64_t seed) {
  Random rng(seed);
  int64_t n = t.num_elements();
  switch (t.dtype()) {
    case DType::kFloat32:
      for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = static_cast<float>(rng.NextSigned());
      break;
    case DType::kFloat64:
      for (int64_t i = 0; i < n; ++i) t.data<double>()[i] = rng.NextSigned();
      break;
    case DType::kInt64:
      for (int64_t i = 0; i < n; ++i) t.data<int64_t>()[i] = static_cast<int64_t>(rng.Next() % 16);
      break;
    case DType::kInt32:
      for (int64_t i = 0; i < n; ++i) t.data<int32_t>()[i] = static_cast<int32_t>(rng.Next() % 16);
      break;
    case DType::kInt16:
      for (int64_t i = 0; i < n; ++i) t.data<int16_t>()[i] = static_cast<int16_t>(rng.Next() % 16);
      break;
    case DType::kInt8:
      for (int64_t i = 0; i < n; ++i) t.data<int8_t>()[i] = static_cast<int8_t>(rng.Next() % 16);
      break;
    case DType::kUint8:
      for (int64_t i = 0; i < n; ++i) t.data<uint8_t>()[i] = static_cast<uint8_t>(rng.Next() % 16);
      break;
    case DType::kBool:
      for (int64_t i = 0; i < n; ++i) t.data<bool>()[i] = (rng.Next() & 1) != 0;
      break;
    case DType::kUndefined: break;
  }
}

struct Checksum {
  double sum = 0;
  double abs_sum = 0;
};

template <typename T>
Checksum SumOf(const Tensor& t) {
  Checksum c;
  const T* p = t.data<T>();
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    double v = static_cast<double>(p[i]);
    c.sum += v;
    c.abs_sum += std::fabs(v);
  }
  return c;
}

Checksum ChecksumOf(const Tensor& t) {
  switch (t.dtype()) {
    case DType::kFloat32: return SumOf<float>(t);
    case DType::kFloat64: return SumOf<double>(t);
    case DType::kInt64: return SumOf<int64_t>(t);
    case DType::kInt32: return SumOf<int32_t>(t);
    case DType::kInt16: return SumOf<int16_t>(t);
    case DType::kInt8: return SumOf<int8_t>(t);
    case DType::kUint8: return SumOf<uint8_t>(t);
    case DType::kBool: return SumOf<bool>(t);
    case DType::kUndefined: break;
  }
  return {};
}

// Nearest-rank percentile of sorted samples; `p` in (0, 1].
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

double Median(const std::vector<double>& sorted) {
  if (sorted.empty()) return 0;
  size_t n = sorted.size();
  return n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
}

using Json = nlohmann::ordered_json;  // keys in the order written: the report reads top-down

// `v` at 10 significant digits (timings and checksums carry no more); JSON
// has no NaN or infinity, so those become null.
Json Rounded(double v) {
  if (!std::isfinite(v)) return nullptr;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.10g", v);
  return std::strtod(buf, nullptr);
}

struct RunOptions {
  std::string model_path;
  std::vector<std::pair<std::string, std::string>> input_files;  // name, path
  std::map<std::string, int64_t> dim_bindings;
  std::string output_dir;
  std::string report_path;
  std::string trace_path;
  TierPolicy tier = TierPolicy::kAuto;
  LoadOptions load;
  int64_t iters = kDefaultIters;
  int64_t warmup = kDefaultWarmup;
  int64_t threads = 0;
  bool profile = false;
};

// Splits "NAME=VALUE"; both parts non-empty.
StatusOr<std::pair<std::string, std::string>> SplitBinding(const std::string& text, const std::string& flag) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    return InvalidArgument("--", flag, " expects NAME=VALUE, got '", text, "'");
  }
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

StatusOr<RunOptions> ParseRunOptions(const ParsedArgs& args) {
  RunOptions options;
  if (args.positional.size() != 1) {
    return InvalidArgument(args.positional.empty() ? "run: no MODEL given" : "run: expected one MODEL");
  }
  options.model_path = args.positional[0];
  if (args.Has("input")) {
    for (const std::string& text : args.values.at("input")) {
      KILN_ASSIGN_OR_RETURN(auto binding, SplitBinding(text, "input"));
      for (const auto& [name, path] : options.input_files) {
        if (name == binding.first) return InvalidArgument("--input '", name, "' is given more than once");
      }
      options.input_files.push_back(binding);
    }
  }
  if (args.Has("dim")) {
    for (const std::string& text : args.values.at("dim")) {
      KILN_ASSIGN_OR_RETURN(auto binding, SplitBinding(text, "dim"));
      KILN_ASSIGN_OR_RETURN(int64_t value, ParseInt(binding.second, "--dim " + binding.first, 0, int64_t{1} << 40));
      options.dim_bindings[binding.first] = value;
    }
  }
  options.output_dir = args.Get("output-dir");
  options.report_path = args.Get("report");
  options.trace_path = args.Get("trace");
  std::string tier = args.Get("tier", "auto");
  if (tier == "interp" || tier == "interpreter") {
    options.tier = TierPolicy::kInterpreter;
  } else if (tier == "jit") {
    options.tier = TierPolicy::kJit;
  } else if (tier == "auto") {
    options.tier = TierPolicy::kAuto;
  } else {
    return InvalidArgument("--tier must be interp, jit or auto, got '", tier, "'");
  }
  KILN_ASSIGN_OR_RETURN(options.load, ParseLoadOptions(args));
  if (args.Has("iters")) {
    KILN_ASSIGN_OR_RETURN(options.iters, ParseInt(args.Get("iters"), "--iters", 0, 1000000000));
  }
  if (args.Has("warmup")) {
    KILN_ASSIGN_OR_RETURN(options.warmup, ParseInt(args.Get("warmup"), "--warmup", 0, 1000000000));
  }
  if (args.Has("threads")) {
    KILN_ASSIGN_OR_RETURN(options.threads, ParseInt(args.Get("threads"), "--threads", 0, 4096));
  }
  options.profile = args.switches.count("profile") != 0;
  return options;
}

// Checks a file's tensor against what the model declares, so that the error
// names the file rather than only the input.
Status CheckAgainstInfo(const Tensor& t, const TensorInfo& info) {
  if (info.dtype != DType::kUndefined && t.dtype() != info.dtype) {
    return InvalidArgument("input '", info.name, "' needs ", DTypeName(info.dtype), ", the file holds ",
                           DTypeName(t.dtype()));
  }
  if (!info.rank_known) return Status::Ok();
  bool matches = t.rank() == static_cast<int64_t>(info.dims.size());
  for (size_t i = 0; matches && i < info.dims.size(); ++i) {
    if (info.dims[i] >= 0 && t.dims()[i] != info.dims[i]) matches = false;
  }
  if (!matches) {
    return InvalidArgument("input '", info.name, "' has shape ", DimsToString(t.dims()), ", the model wants ",
                           FormatShape(info));
  }
  return Status::Ok();
}

// The concrete dims for a generated input, or an error naming what is
// missing.
StatusOr<Dims> GeneratedDims(const TensorInfo& info, const std::map<std::string, int64_t>& bindings) {
  const std::string hint = "; give --input " + info.name + "=FILE.npy";
  if (!info.rank_known) return InvalidArgument("input '", info.name, "' has an unknown rank", hint);
  Dims dims;
  for (size_t i = 0; i < info.dims.size(); ++i) {
    if (info.dims[i] >= 0) {
      dims.push_back(info.dims[i]);
      continue;
    }
    const std::string& symbol = i < info.dim_names.size() ? info.dim_names[i] : std::string();
    if (symbol.empty()) {
      return InvalidArgument("input '", info.name, "' has an unknown dim ", i, " in ", FormatShape(info), hint);
    }
    auto it = bindings.find(symbol);
    if (it == bindings.end()) {
      return InvalidArgument("input '", info.name, "' has symbolic dim '", symbol, "' in ", FormatShape(info), hint,
                             " or --dim ", symbol, "=VALUE");
    }
    dims.push_back(it->second);
  }
  return dims;
}

struct RegionTotals {
  int compiled = 0;
  int reused_code = 0;  // specializations that reused another region's code
  int declined = 0;     // specializations dropped: the interpreter was faster
  double compile_ms = 0;
  int64_t deopts = 0;
  int64_t compiled_calls = 0;
  int64_t interpreted_calls = 0;
  double compiled_ms = 0;     // wall time in compiled regions, all runs
  double interpreted_ms = 0;  // wall time in regions run interpreted, all runs
};

RegionTotals TotalsOf(const SessionStats& stats) {
  RegionTotals t;
  for (const RegionStats& r : stats.regions) {
    t.compiled += r.specializations > 0 ? 1 : 0;
    t.reused_code += r.reused_code;
    t.declined += r.declined;
    t.compile_ms += r.compile_ms;
    t.deopts += r.deopts;
    t.compiled_calls += r.compiled_calls;
    t.interpreted_calls += r.interpreted_calls;
    t.compiled_ms += r.compiled_ms;
    t.interpreted_ms += r.interpreted_ms;
  }
  return t;
}

// Where a run's time goes, averaged over every run of the session (warm-up
// and first run included): compiled regions, regions that ran interpreted,
// and the rest (nodes outside regions, e.g. MatMul and Conv), the latter
// estimated from the timed runs' mean.
struct LatencySplit {
  double compiled_region_ms = 0;
  double interpreted_region_ms = 0;
  double other_ms = 0;
};

LatencySplit SplitOf(const RegionTotals& totals, int64_t runs, double mean_ms) {
  LatencySplit split;
  if (runs <= 0) return split;
  split.compiled_region_ms = totals.compiled_ms / static_cast<double>(runs);
  split.interpreted_region_ms = totals.interpreted_ms / static_cast<double>(runs);
  split.other_ms = std::max(0.0, mean_ms - split.compiled_region_ms - split.interpreted_region_ms);
  return split;
}

Status WriteReport(const RunOptions& options, const std::string& tier_run, double load_ms, double create_ms,
                   double first_ms, const std::vector<double>& sorted, const SessionStats& stats,
                   const std::vector<NamedTensor>& outputs) {
  double mean = 0;
  for (double v : sorted) mean += v;
  if (!sorted.empty()) mean /= static_cast<double>(sorted.size());
  const RegionTotals totals = TotalsOf(stats);
  const LatencySplit split = SplitOf(totals, stats.runs, mean);
  Json report;
  report["model"] = options.model_path;
  report["tier"] = tier_run;
  report["tier_requested"] = TierPolicyName(options.tier);
  report["graph_optimization"] = GraphOptimizationName(options.load.graph_optimization);
  report["threads"] = options.threads;
  report["load_ms"] = Rounded(load_ms);
  report["session_create_ms"] = Rounded(create_ms);
  report["first_run_ms"] = Rounded(first_ms);
  report["median_ms"] = Rounded(Median(sorted));
  report["p90_ms"] = Rounded(Percentile(sorted, 0.9));
  report["min_ms"] = Rounded(sorted.empty() ? 0 : sorted.front());
  report["mean_ms"] = Rounded(mean);
  report["runs"] = sorted.size();
  report["warmup"] = options.warmup;
  report["total_runs"] = stats.runs;
  report["peak_planned_bytes"] = stats.peak_planned_bytes;
  report["unplanned_bytes"] = stats.unplanned_bytes;
  report["pooled_output_bytes"] = stats.pooled_output_bytes;
  report["regions_total"] = stats.regions.size();
  report["regions_compiled"] = totals.compiled;
  report["compile_ms_total"] = Rounded(totals.compile_ms);
  report["reused_code"] = totals.reused_code;
  report["declined_specializations"] = totals.declined;
  report["deopts"] = totals.deopts;
  report["compiled_calls"] = totals.compiled_calls;
  report["interpreted_region_calls"] = totals.interpreted_calls;
  // The compute regions, whose work is counted in FLOPs.
  Json& gemm_json = report["gemm_regions"] = Json::array();
  Json& depthwise_json = report["depthwise_regions"] = Json::array();
  for (const RegionStats& r : stats.regions) {
    if (r.kind != "gemm" && r.kind != "depthwise_conv") continue;
    Json region = {
        {"id", r.id},
        {"description", r.description},
        {"tier", r.tier},
        {"compiled_calls", r.compiled_calls},
        {"flops_per_call", r.compiled_calls > 0 ? r.compiled_flops / static_cast<double>(r.compiled_calls) : 0.0},
        {"gflops", Rounded(r.compiled_gflops)}};
    if (r.kind == "gemm") {
      region["packed_weight_bytes"] = r.packed_weight_bytes;
      gemm_json.push_back(std::move(region));
    } else {
      depthwise_json.push_back(std::move(region));
    }
  }
  report["latency_split_ms_per_run"] = {{"compiled_regions", Rounded(split.compiled_region_ms)},
                                        {"interpreted_regions", Rounded(split.interpreted_region_ms)},
                                        {"other_interpreted", Rounded(split.other_ms)}};
  Json& outputs_json = report["outputs"] = Json::array();
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& t = outputs[i].tensor;
    const Checksum c = ChecksumOf(t);
    outputs_json.push_back({{"index", i},
                            {"name", outputs[i].name},
                            {"dtype", DTypeName(t.dtype())},
                            {"shape", t.dims()},
                            {"sum", Rounded(c.sum)},
                            {"abs_sum", Rounded(c.abs_sum)}});
  }
  if (!stats.nodes.empty()) {
    Json& nodes = report["nodes"] = Json::array();
    for (const NodeProfile& n : stats.nodes) {
      nodes.push_back(
          {{"name", n.node_name}, {"op", n.op_type}, {"calls", n.calls}, {"total_ms", Rounded(n.total_ms)}});
    }
  }
  // Names come from the model file and need not be UTF-8: replace what is
  // not, rather than throw.
  const std::string text = report.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  std::ofstream out(options.report_path, std::ios::trunc);
  if (!out) return IoError("cannot open for writing");
  out << text;
  out.close();
  if (!out) return IoError("write failed");
  return Status::Ok();
}

void PrintProfile(const SessionStats& stats) {
  std::vector<NodeProfile> nodes = stats.nodes;
  double total = 0;
  for (const NodeProfile& n : nodes) total += n.total_ms;
  std::stable_sort(nodes.begin(), nodes.end(),
                   [](const NodeProfile& a, const NodeProfile& b) { return a.total_ms > b.total_ms; });
  std::printf("profile (%zu nodes, %.3f ms total, slowest first):\n", nodes.size(), total);
  for (size_t i = 0; i < nodes.size() && i < 20; ++i) {
    const NodeProfile& n = nodes[i];
    std::printf("  %10.3f ms  %5.1f%%  %-20s %s (%lld calls)\n", n.total_ms,
                total > 0 ? 100.0 * n.total_ms / total : 0.0, n.op_type.c_str(), n.node_name.c_str(),
                static_cast<long long>(n.calls));
  }
}

int Run(const RunOptions& options) {
  Clock::time_point start = Clock::now();
  auto model = LoadModel(options.model_path, options.load);
  if (!model.ok()) return ReportError(model.status());
  double load_ms = MillisecondsSince(start);
  const std::vector<TensorInfo>& infos = (*model)->inputs();

  // Every --input and --dim must refer to something in the model.
  for (const auto& [name, path] : options.input_files) {
    bool known = std::any_of(infos.begin(), infos.end(), [&](const TensorInfo& i) { return i.name == name; });
    if (!known) {
      std::string names;
      for (const TensorInfo& i : infos) names += (names.empty() ? "'" : ", '") + i.name + "'";
      return ReportError(options.model_path,
                         InvalidArgument("the model has no input '", name, "' (its inputs: ", names, ")"));
    }
  }
  for (const auto& [symbol, value] : options.dim_bindings) {
    bool known = false;
    for (const TensorInfo& i : infos) {
      known |= std::find(i.dim_names.begin(), i.dim_names.end(), symbol) != i.dim_names.end();
    }
    if (!known) {
      return ReportError(options.model_path, InvalidArgument("no input has a symbolic dim '", symbol, "'"));
    }
  }

  std::vector<NamedTensor> inputs;
  for (size_t i = 0; i < infos.size(); ++i) {
    const TensorInfo& info = infos[i];
    auto file = std::find_if(options.input_files.begin(), options.input_files.end(),
                             [&](const auto& f) { return f.first == info.name; });
    if (file != options.input_files.end()) {
      StatusOr<Tensor> t = tools::ReadNpy(file->second);
      if (!t.ok()) return ReportError(file->second, t.status());
      if (Status s = CheckAgainstInfo(*t, info); !s.ok()) return ReportError(file->second, s);
      std::printf("input %zu '%s': %s %s from %s\n", i, info.name.c_str(), DTypeName(t->dtype()),
                  DimsToString(t->dims()).c_str(), file->second.c_str());
      inputs.push_back({info.name, std::move(*t)});
      continue;
    }
    StatusOr<Dims> dims = GeneratedDims(info, options.dim_bindings);
    if (!dims.ok()) return ReportError(options.model_path, dims.status());
    if (info.dtype == DType::kUndefined) {
      return ReportError(
          options.model_path,
          InvalidArgument("input '", info.name, "' has no declared dtype; give --input ", info.name, "=FILE.npy"));
    }
    StatusOr<Tensor> t = Tensor::Allocate(info.dtype, *dims);
    if (!t.ok()) return ReportError(options.model_path, t.status().WithContext("input '" + info.name + "'"));
    FillRandom(*t, 0x6B696C6Eull + i);  // "kiln" + input index
    std::printf("input %zu '%s': %s %s (generated)\n", i, info.name.c_str(), DTypeName(info.dtype),
                DimsToString(*dims).c_str());
    inputs.push_back({info.name, std::move(*t)});
  }

  SessionOptions session_options;
  session_options.tier = options.tier;
  session_options.intra_op_threads = static_cast<int>(options.threads);
  session_options.enable_profiling = options.profile;
  session_options.enable_tracing = !options.trace_path.empty();
  std::string tier_run = TierPolicyName(options.tier);
  start = Clock::now();
  auto session = Session::Create(*model, session_options);
  if (!session.ok()) return ReportError(options.model_path, session.status());
  double create_ms = MillisecondsSince(start);

  start = Clock::now();
  auto outputs = (*session)->Run(inputs);
  double first_ms = MillisecondsSince(start);
  if (!outputs.ok()) return ReportError(options.model_path, outputs.status());
  for (int64_t i = 0; i < options.warmup; ++i) {
    auto r = (*session)->Run(inputs);
    if (!r.ok()) return ReportError(options.model_path, r.status());
  }
  std::vector<double> times;
  times.reserve(static_cast<size_t>(options.iters));
  if (options.tier == TierPolicy::kJit) (*session)->WaitForCompiles();
  for (int64_t i = 0; i < options.iters; ++i) {
    start = Clock::now();
    auto r = (*session)->Run(inputs);
    times.push_back(MillisecondsSince(start));
    if (!r.ok()) return ReportError(options.model_path, r.status());
    // The outputs written are the last run's: with a JIT tier they come from
    // compiled code, the first run's from the interpreter.
    if (i + 1 == options.iters) outputs = std::move(r);
  }
  std::sort(times.begin(), times.end());

  if (!options.output_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.output_dir, ec);
    if (ec) return ReportError(options.output_dir, IoError("cannot create directory: ", ec.message()));
  }
  for (size_t i = 0; i < outputs->size(); ++i) {
    const NamedTensor& out = (*outputs)[i];
    Checksum c = ChecksumOf(out.tensor);
    std::printf("output %zu '%s': %s %s sum=%.9g abs_sum=%.9g\n", i, out.name.c_str(), DTypeName(out.tensor.dtype()),
                DimsToString(out.tensor.dims()).c_str(), c.sum, c.abs_sum);
    if (!options.output_dir.empty()) {
      std::string path =
          (std::filesystem::path(options.output_dir) / ("output_" + std::to_string(i) + ".npy")).string();
      if (Status s = tools::WriteNpy(path, out.tensor); !s.ok()) return ReportError(path, s);
    }
  }
  std::printf("load %.3f ms, session %.3f ms, tier %s\n", load_ms, create_ms, tier_run.c_str());
  std::printf("latency: first %.3f ms", first_ms);
  if (!times.empty()) {
    std::printf(", median %.3f ms, p90 %.3f ms over %zu runs (after %lld warmup)", Median(times),
                Percentile(times, 0.9), times.size(), static_cast<long long>(options.warmup));
  }
  std::printf("\n");
  SessionStats stats = (*session)->stats();
  std::printf("memory: peak planned %lld bytes (%lld without reuse), %lld bytes of released outputs kept for reuse\n",
              static_cast<long long>(stats.peak_planned_bytes), static_cast<long long>(stats.unplanned_bytes),
              static_cast<long long>(stats.pooled_output_bytes));
  if (!stats.regions.empty()) {
    const RegionTotals totals = TotalsOf(stats);
    std::printf(
        "jit: %d of %zu regions compiled (%d reusing identical code, %d dropped as slower than the "
        "interpreter), %.1f ms compiling, %lld deopts, %lld compiled calls\n",
        totals.compiled, stats.regions.size(), totals.reused_code, totals.declined, totals.compile_ms,
        static_cast<long long>(totals.deopts), static_cast<long long>(totals.compiled_calls));
    double mean = 0;
    for (double v : times) mean += v;
    if (!times.empty()) mean /= static_cast<double>(times.size());
    const LatencySplit split = SplitOf(totals, stats.runs, mean);
    std::printf("per run: %.3f ms in compiled regions, %.3f ms in interpreted regions, %.3f ms in other nodes\n",
                split.compiled_region_ms, split.interpreted_region_ms, split.other_ms);
    for (const RegionStats& r : stats.regions) {
      if (r.compiled_calls == 0) continue;
      if (r.kind == "gemm") {
        std::printf("  gemm region %d (%s): %.1f GFLOP/s over %lld compiled calls, %lld bytes of packed weight\n", r.id,
                    r.description.c_str(), r.compiled_gflops, static_cast<long long>(r.compiled_calls),
                    static_cast<long long>(r.packed_weight_bytes));
      } else if (r.kind == "depthwise_conv") {
        std::printf("  depthwise region %d (%s): %.1f GFLOP/s over %lld compiled calls\n", r.id, r.description.c_str(),
                    r.compiled_gflops, static_cast<long long>(r.compiled_calls));
      }
    }
  }
  if (options.profile) PrintProfile(stats);
  if (!options.trace_path.empty()) {
    if (Status s = (*session)->WriteTrace(options.trace_path); !s.ok()) return ReportError(options.trace_path, s);
  }
  if (!options.report_path.empty()) {
    Status s = WriteReport(options, tier_run, load_ms, create_ms, first_ms, times, stats, *outputs);
    if (!s.ok()) return ReportError(options.report_path, s);
  }
  return 0;
}

}  // namespace

int RunCommand(const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args,
                          {"input", "dim", "output-dir", "tier", "graph-opt", "channels-last", "iters", "warmup",
                           "threads", "report", "trace"},
                          {"profile"});
  if (!parsed.ok()) return ReportUsageError(parsed.status().message());
  if (parsed->help) {
    std::fputs(UsageText(), stdout);
    return 0;
  }
  auto options = ParseRunOptions(*parsed);
  if (!options.ok()) return ReportUsageError(options.status().message());
  return Run(*options);
}

}  // namespace kiln::cli
