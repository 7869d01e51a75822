// `kiln run`: loads a model, feeds it inputs from .npy files or generated
// data, runs it (optionally from several threads, for a length of time,
// after the JIT has tiered up) and reports outputs (checksums, optional
// .npy files), latency percentiles and throughput, optionally as JSON.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kiln/session.h"
#include "tools/generated_input.h"
#include "tools/input_shapes.h"
#include "tools/kiln_cli.h"
#include "tools/npy.h"
#include "tools/run_report.h"
#include "tools/tier_up.h"
#include "tools/timed_runs.h"
#include "tools/user_path.h"

namespace kiln::cli {
namespace {

constexpr int64_t kDefaultIters = 10;
constexpr int64_t kDefaultWarmup = 1;
constexpr double kDefaultJitTimeoutSeconds = 60;
// A day: far beyond any load test, small enough to stay exact in a
// steady_clock duration.
constexpr double kMaxSeconds = 24 * 60 * 60;
// Each thread keeps a latency histogram (~150 KB) and a run's outputs.
constexpr int64_t kMaxConcurrency = 1024;

using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The parsed command line of `kiln run`. Paths are already resolved
// against BUILD_WORKING_DIRECTORY.
struct RunCommandOptions {
  std::string model_path;
  std::vector<std::pair<std::string, std::string>> input_files;  // name, path
  // --feed: after each run, output `first` is passed back as input `second`.
  std::vector<std::pair<std::string, std::string>> feeds;
  ShapeFlags shape_flags;
  std::string output_dir;
  std::string report_path;
  std::string trace_path;
  TierPolicy tier = TierPolicy::kAuto;
  LoadOptions load;
  int64_t iters = kDefaultIters;
  double duration_s = 0;  // > 0: timed runs bounded by time, not count
  int64_t concurrency = 1;
  int64_t warmup = kDefaultWarmup;
  bool wait_for_jit = false;
  double jit_timeout_s = kDefaultJitTimeoutSeconds;
  int64_t threads = 0;
  bool profile = false;
  std::string jit_cache_dir;          // empty: KILN_JIT_CACHE, or off
  int64_t payback_horizon_calls = 0;  // SessionOptions::jit_payback_horizon_calls
  bool bitwise = false;               // SessionOptions::jit_bitwise_equivalent
  double compile_share = SessionOptions().jit_compile_cpu_share;
};

// Splits "NAME=VALUE"; both parts non-empty.
StatusOr<std::pair<std::string, std::string>> SplitBinding(const std::string& text, const std::string& flag) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    return InvalidArgument("--", flag, " expects NAME=VALUE, got '", text, "'");
  }
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

const std::vector<std::string>& ValuesOf(const ParsedArgs& args, const std::string& flag) {
  static const std::vector<std::string> kNone;
  auto it = args.values.find(flag);
  return it == args.values.end() ? kNone : it->second;
}

// Everything that can be checked without the model; the rest (input names,
// shapes) is checked once it is loaded.
StatusOr<RunCommandOptions> ParseRunCommandOptions(const ParsedArgs& args) {
  RunCommandOptions options;
  if (args.positional.size() != 1) {
    return InvalidArgument(args.positional.empty() ? "run: no MODEL given" : "run: expected one MODEL");
  }
  options.model_path = ResolveUserPath(args.positional[0]);
  for (const std::string& text : ValuesOf(args, "input")) {
    KILN_ASSIGN_OR_RETURN(auto binding, SplitBinding(text, "input"));
    for (const auto& [name, path] : options.input_files) {
      if (name == binding.first) return InvalidArgument("--input '", name, "' is given more than once");
    }
    options.input_files.emplace_back(binding.first, ResolveUserPath(binding.second));
  }
  for (const std::string& text : ValuesOf(args, "dim")) {
    KILN_ASSIGN_OR_RETURN(auto binding, SplitBinding(text, "dim"));
    KILN_ASSIGN_OR_RETURN(int64_t value, ParseInt(binding.second, "--dim " + binding.first, 0, kMaxFlagDim));
    options.shape_flags.dims[binding.first] = value;
  }
  for (const std::string& text : ValuesOf(args, "shape")) {
    KILN_ASSIGN_OR_RETURN(auto binding, SplitBinding(text, "shape"));
    const std::string& name = binding.first;
    KILN_ASSIGN_OR_RETURN(Dims dims, ParseShape(binding.second, "--shape " + name));
    if (options.shape_flags.shapes.count(name)) return InvalidArgument("--shape '", name, "' is given more than once");
    for (const auto& file : options.input_files) {
      if (file.first == name) {
        return InvalidArgument("--shape ", name, " and --input ", name, " both set input '", name,
                               "': its file fixes its shape");
      }
    }
    options.shape_flags.shapes[name] = std::move(dims);
  }
  options.output_dir = ResolveUserPath(args.Get("output-dir"));
  options.report_path = ResolveUserPath(args.Get("report"));
  options.trace_path = ResolveUserPath(args.Get("trace"));
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
  if (args.Has("iters") && args.Has("duration")) {
    return InvalidArgument("--iters and --duration both bound the timed runs: give one");
  }
  if (args.Has("iters")) {
    KILN_ASSIGN_OR_RETURN(options.iters, ParseInt(args.Get("iters"), "--iters", 0, 1000000000));
  }
  if (args.Has("duration")) {
    KILN_ASSIGN_OR_RETURN(options.duration_s, ParseSeconds(args.Get("duration"), "--duration", kMaxSeconds));
  }
  if (args.Has("concurrency")) {
    KILN_ASSIGN_OR_RETURN(options.concurrency, ParseInt(args.Get("concurrency"), "--concurrency", 1, kMaxConcurrency));
  }
  for (const std::string& text : ValuesOf(args, "feed")) {
    KILN_ASSIGN_OR_RETURN(auto binding, SplitBinding(text, "feed"));
    for (const auto& [output, input] : options.feeds) {
      if (input == binding.second) return InvalidArgument("--feed gives input '", input, "' more than once");
    }
    options.feeds.push_back(std::move(binding));
  }
  if (!options.feeds.empty() && options.concurrency != 1) {
    return InvalidArgument("--feed carries state from one run to the next: it needs --concurrency 1");
  }
  if (args.Has("warmup")) {
    KILN_ASSIGN_OR_RETURN(options.warmup, ParseInt(args.Get("warmup"), "--warmup", 0, 1000000000));
  }
  options.wait_for_jit = args.switches.count("wait-for-jit") != 0;
  if (options.wait_for_jit && options.tier == TierPolicy::kInterpreter) {
    return InvalidArgument("--wait-for-jit needs a JIT tier: --tier auto or jit, not interp");
  }
  if (args.Has("jit-timeout")) {
    if (!options.wait_for_jit) return InvalidArgument("--jit-timeout only applies with --wait-for-jit");
    KILN_ASSIGN_OR_RETURN(options.jit_timeout_s, ParseSeconds(args.Get("jit-timeout"), "--jit-timeout", kMaxSeconds));
  }
  if (args.Has("threads")) {
    KILN_ASSIGN_OR_RETURN(options.threads, ParseInt(args.Get("threads"), "--threads", 0, 4096));
  }
  options.profile = args.switches.count("profile") != 0;
  options.bitwise = args.switches.count("bitwise") != 0;
  if (options.bitwise && options.tier == TierPolicy::kInterpreter) {
    return InvalidArgument("--bitwise applies to the JIT tier: --tier auto or jit, not interp");
  }
  if (args.Has("jit-cache")) {
    if (args.Get("jit-cache").empty()) return InvalidArgument("--jit-cache needs a folder");
    options.jit_cache_dir = ResolveUserPath(args.Get("jit-cache"));
  }
  if (args.Has("payback-horizon")) {
    KILN_ASSIGN_OR_RETURN(options.payback_horizon_calls,
                          ParseInt(args.Get("payback-horizon"), "--payback-horizon", 0, int64_t{1} << 40));
  }
  if (args.Has("compile-share")) {
    const std::string& text = args.Get("compile-share");
    char* end = nullptr;
    const double share = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !(share >= 0 && share <= 1)) {
      return InvalidArgument("--compile-share must be a number from 0 to 1, got '", text, "'");
    }
    options.compile_share = share;
  }
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

// Nodes inside If/Loop/Scan bodies are listed beside the top level's, with
// their body; the total counts the top level only, since a control-flow
// node's time already holds its bodies'.
void PrintProfile(const SessionStats& stats) {
  std::vector<NodeProfile> nodes = stats.nodes;
  double total = 0;
  size_t top_level = 0;
  for (const NodeProfile& n : nodes) {
    if (!n.path.empty()) continue;
    total += n.total_ms;
    ++top_level;
  }
  std::stable_sort(nodes.begin(), nodes.end(),
                   [](const NodeProfile& a, const NodeProfile& b) { return a.total_ms > b.total_ms; });
  std::printf("profile (%zu nodes", top_level);
  if (nodes.size() > top_level) std::printf(" and %zu inside bodies", nodes.size() - top_level);
  std::printf(", %.3f ms total, slowest first):\n", total);
  for (size_t i = 0; i < nodes.size() && i < 20; ++i) {
    const NodeProfile& n = nodes[i];
    std::printf("  %10.3f ms  %5.1f%%  %-20s %s (%lld calls)", n.total_ms, total > 0 ? 100.0 * n.total_ms / total : 0.0,
                n.op_type.c_str(), n.node_name.c_str(), static_cast<long long>(n.calls));
    if (!n.path.empty()) std::printf(" in %s", n.path.c_str());
    std::printf("\n");
  }
}

// Whether compiling paid off: the totals, then the versions with the most
// time at stake (won or lost) first, since a large model has hundreds.
void PrintBreakEven(const SessionStats& stats) {
  const BreakEvenTotals t = BreakEvenTotalsOf(stats);
  if (t.versions == 0 && t.skipped_for_payback == 0) return;
  std::printf(
      "break-even: %.1f ms net saved by %d compiled version%s (%.1f ms compiling); %d of %d measured paid back, %d "
      "never will",
      t.net_saved_ms, t.versions, t.versions == 1 ? "" : "s", t.compile_ms, t.paid_back, t.measured, t.never);
  if (t.skipped_for_payback > 0) std::printf("; %d not compiled (payback beyond the horizon)", t.skipped_for_payback);
  std::printf("\n");
  struct Row {
    int region;
    const BreakEven* b;
  };
  std::vector<Row> rows;
  for (const RegionStats& r : stats.regions) {
    for (const BreakEven& b : r.break_even) rows.push_back({r.id, &b});
  }
  std::stable_sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
    return std::abs(x.b->net_saved_ms) > std::abs(y.b->net_saved_ms);
  });
  constexpr size_t kShown = 8;
  for (size_t i = 0; i < rows.size() && i < kShown; ++i) {
    const BreakEven& b = *rows[i].b;
    if (!b.measured) {
      std::printf("  region %d %s: %.1f ms compile, no trial timings, %lld compiled calls\n", rows[i].region,
                  b.signature.c_str(), b.compile_ms, static_cast<long long>(b.compiled_calls));
      continue;
    }
    const std::string payback =
        b.payback_calls >= 0 ? "pays back after " + std::to_string(b.payback_calls) + " calls" : "never pays back";
    std::printf("  region %d %s: %.1f ms compile, %.4f ms saved per call, %s, %lld compiled calls, %.2f ms net\n",
                rows[i].region, b.signature.c_str(), b.compile_ms, b.saving_ms_per_call, payback.c_str(),
                static_cast<long long>(b.compiled_calls), b.net_saved_ms);
  }
  if (rows.size() > kShown) std::printf("  ... %zu more in --report\n", rows.size() - kShown);
}

// The tier-up lines: what the JIT settled on, and the latency before it did
// (interpreted warm-up runs) against after (the timed runs).
void PrintTierUp(const TierUpResult& tier_up, const TimedRunResult& timed, TierPolicy tier, double timeout_s) {
  const TierUpProgress& p = tier_up.progress;
  std::printf("tier-up: %d of %d hot regions compiled, %d dropped as slower than the interpreter, %d failed",
              p.compiled, p.hot, p.declined, p.failed);
  if (p.skipped > 0) std::printf(", %d left interpreted (payback beyond the horizon)", p.skipped);
  if (p.waiting > 0) std::printf(", %d still waiting (timed out after %g s)", p.waiting, timeout_s);
  std::printf("; %lld warm-up runs, %.1f ms\n", static_cast<long long>(tier_up.runs), tier_up.elapsed_ms);
  const double after = timed.latency.PercentileMs(0.5);
  if (tier_up.before.count() == 0) {
    std::printf("tier-up latency: p50 %.3f ms after; none measured before (%s)\n", after,
                tier == TierPolicy::kJit ? "--tier jit compiles at the first run"
                                         : "compiled code was in place before the warm-up ended");
    return;
  }
  const double before = tier_up.before.PercentileMs(0.5);
  std::printf("tier-up latency: p50 %.3f ms before (%lld interpreted runs), %.3f ms after", before,
              static_cast<long long>(tier_up.before.count()), after);
  // A median of a few runs is mostly the first run's set-up (a warm code
  // cache puts code in place after one or two): no ratio from those.
  constexpr int64_t kMinBeforeRunsForRatio = 5;
  if (tier_up.before.count() < kMinBeforeRunsForRatio) {
    std::printf(" (too few interpreted runs to compare)");
  } else if (after > 0 && timed.latency.count() > 0) {
    std::printf(" (%.2fx)", before / after);
  }
  std::printf("\n");
}

// Reads or generates every input. An error starts with the file it
// concerns: the input's .npy file, or the model.
StatusOr<std::vector<NamedTensor>> PrepareInputs(const RunCommandOptions& options,
                                                 const std::vector<TensorInfo>& infos) {
  const std::string& model = options.model_path;
  // Every --input must refer to something in the model.
  for (const auto& [name, path] : options.input_files) {
    bool known = std::any_of(infos.begin(), infos.end(), [&](const TensorInfo& i) { return i.name == name; });
    if (!known) {
      return InvalidArgument("the model has no input '", name, "' (its inputs: ", QuotedNames(infos), ")")
          .WithContext(model);
    }
  }
  StatusOr<std::map<std::string, int64_t>> symbols = BindSymbols(infos, options.shape_flags);
  if (!symbols.ok()) return symbols.status().WithContext(model);

  std::vector<NamedTensor> inputs;
  for (size_t i = 0; i < infos.size(); ++i) {
    const TensorInfo& info = infos[i];
    auto file = std::find_if(options.input_files.begin(), options.input_files.end(),
                             [&](const auto& f) { return f.first == info.name; });
    if (file != options.input_files.end()) {
      StatusOr<Tensor> t = tools::ReadNpy(file->second);
      if (!t.ok()) return t.status().WithContext(file->second);
      if (Status s = CheckAgainstInfo(*t, info); !s.ok()) return s.WithContext(file->second);
      std::printf("input %zu '%s': %s %s from %s\n", i, info.name.c_str(), DTypeName(t->dtype()),
                  DimsToString(t->dims()).c_str(), file->second.c_str());
      inputs.push_back({info.name, std::move(*t)});
      continue;
    }
    StatusOr<Dims> dims = GeneratedDims(info, *symbols, options.shape_flags.shapes);
    if (!dims.ok()) return dims.status().WithContext(model);
    if (info.dtype == DType::kUndefined) {
      return InvalidArgument("input '", info.name, "' has no declared dtype; give --input ", info.name, "=FILE.npy")
          .WithContext(model);
    }
    StatusOr<Tensor> t = Tensor::Allocate(info.dtype, *dims);
    if (!t.ok()) return t.status().WithContext("input '" + info.name + "'").WithContext(model);
    FillPseudoRandom(*t, 0x6B696C6Eull + i);  // "kiln" + input index
    std::printf("input %zu '%s': %s %s (generated)\n", i, info.name.c_str(), DTypeName(info.dtype),
                DimsToString(*dims).c_str());
    inputs.push_back({info.name, std::move(*t)});
  }
  return inputs;
}

// A sequence output: its length, then each element's dims and checksums;
// with an output folder, element k goes to output_<i>_<k>.npy.
Status ReportSequenceOutput(size_t i, const NamedTensor& out, const std::string& output_dir) {
  const std::vector<Tensor>* elements = SequenceElements(out.tensor);
  if (elements == nullptr) {
    std::printf("output %zu '%s': an empty optional\n", i, out.name.c_str());
    return Status::Ok();
  }
  std::printf("output %zu '%s': a sequence of %zu %s tensors\n", i, out.name.c_str(), elements->size(),
              DTypeName(SequenceElementDType(out.tensor)));
  for (size_t k = 0; k < elements->size(); ++k) {
    const Tensor& e = (*elements)[k];
    Checksum c = ChecksumOf(e);
    std::printf("  element %zu: %s sum=%.9g abs_sum=%.9g\n", k, DimsToString(e.dims()).c_str(), c.sum, c.abs_sum);
    if (output_dir.empty()) continue;
    const std::string name = "output_" + std::to_string(i) + "_" + std::to_string(k) + ".npy";
    KILN_RETURN_IF_ERROR(tools::WriteNpy((std::filesystem::path(output_dir) / name).string(), e));
  }
  return Status::Ok();
}

int Run(const RunCommandOptions& options) {
  Clock::time_point start = Clock::now();
  auto model = LoadModel(options.model_path, options.load);
  if (!model.ok()) return ReportError(model.status());
  double load_ms = MillisecondsSince(start);

  StatusOr<std::vector<NamedTensor>> prepared = PrepareInputs(options, (*model)->inputs());
  if (!prepared.ok()) return ReportError(prepared.status());
  std::vector<NamedTensor> inputs = std::move(prepared).value();
  // --feed as (output index, input index) pairs.
  std::vector<std::pair<size_t, size_t>> feeds;
  for (const auto& [output, input] : options.feeds) {
    const auto& outs = (*model)->outputs();
    const auto out_it = std::find_if(outs.begin(), outs.end(), [&](const TensorInfo& t) { return t.name == output; });
    if (out_it == outs.end()) return ReportError(InvalidArgument("--feed: the model has no output '", output, "'"));
    const auto in_it =
        std::find_if(inputs.begin(), inputs.end(), [&](const NamedTensor& t) { return t.name == input; });
    if (in_it == inputs.end()) return ReportError(InvalidArgument("--feed: the model has no input '", input, "'"));
    feeds.emplace_back(static_cast<size_t>(out_it - outs.begin()), static_cast<size_t>(in_it - inputs.begin()));
  }
  // The returned tensor itself becomes the next input: no copy.
  const auto feed_back = [&feeds, &inputs](std::vector<NamedTensor>& outputs) {
    for (const auto& [out, in] : feeds) inputs[in].tensor = outputs[out].tensor;
  };

  SessionOptions session_options;
  session_options.tier = options.tier;
  session_options.intra_op_threads = static_cast<int>(options.threads);
  session_options.enable_profiling = options.profile;
  session_options.jit_cache_dir = options.jit_cache_dir;
  session_options.jit_payback_horizon_calls = options.payback_horizon_calls;
  session_options.jit_compile_cpu_share = options.compile_share;
  session_options.jit_bitwise_equivalent = options.bitwise;
  session_options.enable_tracing = !options.trace_path.empty();
  std::string tier_run = TierPolicyName(options.tier);
  start = Clock::now();
  auto session = Session::Create(*model, session_options);
  if (!session.ok()) return ReportError(options.model_path, session.status());
  double create_ms = MillisecondsSince(start);

  start = Clock::now();
  auto first = (*session)->Run(inputs);
  double first_ms = MillisecondsSince(start);
  if (!first.ok()) return ReportError(options.model_path, first.status());
  feed_back(*first);
  for (int64_t i = 0; i < options.warmup; ++i) {
    auto r = (*session)->Run(inputs);
    if (!r.ok()) return ReportError(options.model_path, r.status());
    feed_back(*r);
  }
  std::optional<TierUpResult> tier_up;
  if (options.wait_for_jit) {
    auto result = WarmUpUntilTieredUp(**session, inputs, std::chrono::duration<double>(options.jit_timeout_s));
    if (!result.ok()) return ReportError(options.model_path, result.status());
    tier_up = std::move(result).value();
    if (!tier_up->settled) {
      std::fprintf(stderr,
                   "kiln: warning: --wait-for-jit: %d hot region(s) still compiling or on trial after %g s "
                   "(--jit-timeout); timing anyway\n",
                   tier_up->progress.waiting, options.jit_timeout_s);
    }
  } else if (options.tier == TierPolicy::kJit) {
    (*session)->WaitForCompiles();
  }

  TimedRunPlan plan;
  plan.threads = static_cast<int>(options.concurrency);
  plan.runs = options.iters;
  plan.duration = std::chrono::duration<double>(options.duration_s);
  plan.feeds = feeds;
  StatusOr<TimedRunResult> timed = RunTimed(**session, inputs, plan);
  if (!timed.ok()) return ReportError(options.model_path, timed.status());
  // The outputs written are from a timed run when there was one: with a JIT
  // tier they come from compiled code, the first run's from the interpreter.
  const std::vector<NamedTensor>& outputs = timed->last_outputs.empty() ? *first : timed->last_outputs;

  if (!options.output_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.output_dir, ec);
    if (ec) return ReportError(options.output_dir, IoError("cannot create directory: ", ec.message()));
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    const NamedTensor& out = outputs[i];
    if (out.tensor.dtype() == DType::kSequence) {
      if (Status s = ReportSequenceOutput(i, out, options.output_dir); !s.ok()) return ReportError(out.name, s);
      continue;
    }
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
  const LatencyHistogram& latency = timed->latency;
  std::printf("latency: first %.3f ms", first_ms);
  if (latency.count() > 0) {
    std::printf(", median (p50) %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms over %lld runs (after %lld warmup)",
                latency.PercentileMs(0.5), latency.PercentileMs(0.9), latency.PercentileMs(0.99), latency.max_ms(),
                static_cast<long long>(latency.count()), static_cast<long long>(options.warmup));
  }
  std::printf("\n");
  if (latency.count() > 0) {
    std::printf("throughput: %.1f runs/s over %.3f s, %lld thread%s calling Run on one session\n",
                timed->RunsPerSecond(), timed->wall_seconds, static_cast<long long>(options.concurrency),
                options.concurrency == 1 ? "" : "s");
  }
  if (tier_up) PrintTierUp(*tier_up, *timed, options.tier, options.jit_timeout_s);
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
    if (stats.jit_cache_hits + stats.jit_cache_misses + stats.jit_cache_rejected > 0) {
      std::printf(
          "jit cache: %lld linked from the cache, %lld compiled and stored, %lld damaged or foreign entries "
          "replaced\n",
          static_cast<long long>(stats.jit_cache_hits), static_cast<long long>(stats.jit_cache_misses),
          static_cast<long long>(stats.jit_cache_rejected));
    }
    if (totals.verify_failures > 0) {
      // A JIT bug: say so where it cannot be missed (the log has the details).
      std::printf("jit: %d compiled version%s dropped: %s outputs differed from the interpreter's\n",
                  totals.verify_failures, totals.verify_failures == 1 ? "" : "s",
                  totals.verify_failures == 1 ? "its" : "their");
    }
    const TierUpProgress progress = ProgressOf(stats);
    if (!tier_up && progress.waiting > 0) {
      // The demo's old "0 of 2 regions compiled": the timed runs ended
      // before the background compiles did.
      std::printf(
          "jit: %d hot region%s still compiling or on trial when the timed runs ended; --wait-for-jit "
          "times the runs after tier-up\n",
          progress.waiting, progress.waiting == 1 ? " was" : "s were");
    }
    PrintBreakEven(stats);
    const LatencySplit split = SplitOf(totals, stats.runs, latency.mean_ms());
    std::printf("per run: %.3f ms in compiled regions, %.3f ms in interpreted regions, %.3f ms in other nodes\n",
                split.compiled_region_ms, split.interpreted_region_ms, split.other_ms);
    for (const RegionStats& r : stats.regions) {
      if (!r.path.empty()) {
        // Regions inside If branches and Loop/Scan bodies: called once per
        // iteration, so their calls outnumber the runs.
        std::printf("  %s region %d in %s (%s): %s, %lld compiled and %lld interpreted calls\n", r.kind.c_str(), r.id,
                    r.path.c_str(), r.description.c_str(), r.tier.c_str(), static_cast<long long>(r.compiled_calls),
                    static_cast<long long>(r.interpreted_calls));
      }
      if (r.compiled_calls == 0) continue;
      if (r.kind == "gemm") {
        std::printf("  gemm region %d (%s): %.1f GFLOP/s over %lld compiled calls, %lld bytes of packed weight\n", r.id,
                    r.description.c_str(), r.compiled_gflops, static_cast<long long>(r.compiled_calls),
                    static_cast<long long>(r.packed_weight_bytes));
      } else if (r.kind == "depthwise_conv" || r.kind == "attention") {
        std::printf("  %s region %d (%s): %.1f GFLOP/s, %.1f MFLOP per call, over %lld compiled calls\n",
                    r.kind == "attention" ? "attention" : "depthwise", r.id, r.description.c_str(), r.compiled_gflops,
                    r.compiled_flops / static_cast<double>(r.compiled_calls) * 1e-6,
                    static_cast<long long>(r.compiled_calls));
      }
    }
  }
  if (options.profile) PrintProfile(stats);
  if (!options.trace_path.empty()) {
    if (Status s = (*session)->WriteTrace(options.trace_path); !s.ok()) return ReportError(options.trace_path, s);
  }
  if (!options.report_path.empty()) {
    RunMeasurements m;
    m.model_path = options.model_path;
    m.tier = tier_run;
    m.tier_requested = options.tier;
    m.graph_optimization = options.load.graph_optimization;
    m.intra_op_threads = options.threads;
    m.warmup = options.warmup;
    m.concurrency = static_cast<int>(options.concurrency);
    m.duration_s = options.duration_s;
    m.load_ms = load_ms;
    m.session_create_ms = create_ms;
    m.first_run_ms = first_ms;
    m.timed = &*timed;
    m.tier_up = tier_up ? &*tier_up : nullptr;
    m.stats = &stats;
    m.outputs = &outputs;
    if (Status s = WriteRunReport(m, options.report_path); !s.ok()) return ReportError(options.report_path, s);
  }
  return 0;
}

}  // namespace

int RunCommand(const std::vector<std::string>& args) {
  auto parsed = ParseArgs(
      args,
      {"input", "dim", "shape", "output-dir", "tier", "graph-opt", "channels-last", "iters", "duration", "concurrency",
       "warmup", "jit-timeout", "threads", "report", "trace", "jit-cache", "payback-horizon", "compile-share", "feed"},
      {"profile", "wait-for-jit", "bitwise"});
  if (!parsed.ok()) return ReportUsageError(parsed.status().message(), RunUsage());
  if (parsed->help) {
    std::fputs(RunUsage(), stdout);
    return 0;
  }
  auto options = ParseRunCommandOptions(*parsed);
  if (!options.ok()) return ReportUsageError(options.status().message(), RunUsage());
  return Run(*options);
}

}  // namespace kiln::cli
