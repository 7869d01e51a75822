#include "bench/zoo_bench.h"

#include <benchmark/benchmark.h>
#include <malloc.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "bench/zoo.h"
#include "kiln/session.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::bench {
namespace {

// JIT against the interpreter: the JIT contracts multiply-adds and has its
// own exp/erf approximations, so bit equality is not expected.
constexpr double kJitRtol = 1e-4;
constexpr double kJitAtol = 1e-5;
// kiln against ONNX Runtime: different kernels (GEMM blocking, conv
// algorithms) sum in different orders through whole networks.
constexpr double kOrtRtol = 1e-3;
constexpr double kOrtAtol = 1e-4;

// Untimed runs at the start of every steady-state benchmark. Besides
// warming caches they touch every page the run uses (weights, inputs,
// buffers): memory idle for a minute or so gets paged out on the shared
// benchmark machines, and a page fault storm is not kiln's run time.
constexpr int kWarmupRuns = 2;

// Timed runs for BM_ZooColdStart's steady reference (their median).
constexpr int kSteadySamples = 7;

// Tier-up gives up after this many runs or seconds per session.
constexpr int kMaxTierUpRuns = 5000;
constexpr double kMaxTierUpSeconds = 120;

using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::vector<Tensor> TensorsOf(std::vector<NamedTensor> named) {
  std::vector<Tensor> out;
  out.reserve(named.size());
  for (NamedTensor& t : named) out.push_back(std::move(t.tensor));
  return out;
}

StatusOr<std::vector<Tensor>> RunNTimes(const Session& session, const std::vector<NamedTensor>& inputs, int runs) {
  StatusOr<std::vector<NamedTensor>> outputs = Internal("no run");
  for (int i = 0; i < runs; ++i) {
    outputs = session.Run(inputs);
    if (!outputs.ok()) return outputs.status();
  }
  return TensorsOf(std::move(outputs).value());
}

// A field of /proc/self/status in KiB ("VmRSS", "VmHWM"); -1 when absent.
int64_t ProcStatusKb(const std::string& key) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.compare(0, key.size() + 1, key + ":") == 0) {
      std::istringstream in(line.substr(key.size() + 1));
      int64_t kb = -1;
      in >> kb;
      return kb;
    }
  }
  return -1;
}

// Returns free heap memory to the system, then resets the process's RSS
// high-water mark to its current RSS (Linux 4.0+); false where that is not
// possible. Without the trim, a cold start would reuse pages that earlier
// benchmarks freed but glibc kept, and its peak would read as nothing.
bool ResetPeakRss() {
  malloc_trim(0);
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.flush();
  return static_cast<bool>(clear_refs);
}

// ---------------------------------------------------------------------------
// One case at one thread count: both tiers' sessions, checked against each
// other and against ONNX Runtime.

struct ZooPair {
  std::string setup_error;    // loading or running failed: every benchmark reports it
  std::string interp_error;   // the interpreter disagrees with ONNX Runtime
  std::string jit_error;      // the JIT disagrees with the interpreter or ONNX Runtime
  std::string bitwise_error;  // the bitwise-equivalent JIT's outputs are not the interpreter's bits
  std::string ort_note;       // why there was no ONNX Runtime check, if there was none
  std::shared_ptr<const Model> model;
  std::unique_ptr<Session> interp;
  std::unique_ptr<Session> jit;
  // SessionOptions::jit_bitwise_equivalent: what bit-for-bit equality costs.
  std::unique_ptr<Session> bitwise;
  std::vector<NamedTensor> inputs;
  std::vector<Tensor> reference;  // the interpreter's outputs
  Closeness jit_vs_interp;
  bool ort_checked = false;
  Closeness interp_vs_ort;
  Closeness jit_vs_ort;
};

SessionOptions Options(TierPolicy tier, int threads) {
  SessionOptions options;
  options.tier = tier;
  options.intra_op_threads = threads;
  return options;
}

Status PrepareZooPair(const ZooCase& zoo_case, int threads, const std::string& ort_dir, GraphOptimization level,
                      ZooPair& pair) {
  LoadOptions load_options;
  load_options.graph_optimization = level;
  KILN_ASSIGN_OR_RETURN(pair.model, Model::Load(zoo_case.model_path, load_options));
  KILN_ASSIGN_OR_RETURN(pair.inputs, LoadZooInputs(zoo_case));
  KILN_ASSIGN_OR_RETURN(pair.interp, Session::Create(pair.model, Options(TierPolicy::kInterpreter, threads)));
  KILN_ASSIGN_OR_RETURN(pair.jit, Session::Create(pair.model, Options(TierPolicy::kJit, threads)));
  KILN_ASSIGN_OR_RETURN(pair.reference, RunNTimes(*pair.interp, pair.inputs, 1));
  // kJit compiles every region at its first call; wait in case any compile
  // went to the background, then run the compiled code.
  KILN_RETURN_IF_ERROR(RunNTimes(*pair.jit, pair.inputs, 1).status());
  pair.jit->WaitForCompiles();
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> jit_out, RunNTimes(*pair.jit, pair.inputs, 1));

  SessionOptions bitwise_options = Options(TierPolicy::kJit, threads);
  bitwise_options.jit_bitwise_equivalent = true;
  KILN_ASSIGN_OR_RETURN(pair.bitwise, Session::Create(pair.model, bitwise_options));
  KILN_RETURN_IF_ERROR(RunNTimes(*pair.bitwise, pair.inputs, 1).status());
  pair.bitwise->WaitForCompiles();
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> bitwise_out, RunNTimes(*pair.bitwise, pair.inputs, 1));
  // The reference comes from an interpreter that has finished its
  // background preparation (the mode makes Session::Create wait for it):
  // the interp session's first run may have computed convolutions another
  // way.
  SessionOptions settled_options = Options(TierPolicy::kInterpreter, threads);
  settled_options.jit_bitwise_equivalent = true;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> settled, Session::Create(pair.model, settled_options));
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> settled_out, RunNTimes(*settled, pair.inputs, 1));
  for (size_t o = 0; o < bitwise_out.size() && o < settled_out.size(); ++o) {
    const Tensor& got = bitwise_out[o];
    const Tensor& want = settled_out[o];
    if (got.dims() != want.dims() || std::memcmp(got.raw_data(), want.raw_data(), got.byte_size()) != 0) {
      pair.bitwise_error = "bitwise mode: output " + std::to_string(o) + " differs from the interpreter's bits";
      break;
    }
  }

  pair.jit_vs_interp = CompareOutputs(pair.reference, jit_out, kJitRtol, kJitAtol);
  if (!pair.jit_vs_interp.ok) {
    pair.jit_error = DescribeMismatch(pair.jit_vs_interp, "jit vs interp", kJitRtol, kJitAtol);
  }
  if (ort_dir.empty()) {
    pair.ort_note = "no --ort_outputs";
    return Status();
  }
  StatusOr<std::vector<Tensor>> ort = ReadOrtOutputs(ort_dir, zoo_case.name, pair.reference.size());
  if (!ort.ok()) {
    if (ort.status().code() != StatusCode::kNotFound) return ort.status();
    pair.ort_note = "no ONNX Runtime outputs for this case";
    return Status();
  }
  pair.ort_checked = true;
  pair.interp_vs_ort = CompareOutputs(*ort, pair.reference, kOrtRtol, kOrtAtol);
  if (!pair.interp_vs_ort.ok) {
    pair.interp_error = DescribeMismatch(pair.interp_vs_ort, "interp vs onnxruntime", kOrtRtol, kOrtAtol);
  }
  pair.jit_vs_ort = CompareOutputs(*ort, jit_out, kOrtRtol, kOrtAtol);
  if (!pair.jit_vs_ort.ok && pair.jit_error.empty()) {
    pair.jit_error = DescribeMismatch(pair.jit_vs_ort, "jit vs onnxruntime", kOrtRtol, kOrtAtol);
  }
  return Status();
}

// The pair for (case, threads, level), built on first use and kept: bench/run
// interleaves the repetitions of all benchmarks at random
// (--benchmark_enable_random_interleaving), so that a change in the machine's
// load spreads over every row instead of skewing the rows that happened to run
// during it, and rebuilding a pair (load, compile) for every repetition would
// cost more than the runs. BM_ZooSteady's warm-up runs touch a pair's memory
// again before timing, in case it was paged out while idle. Benchmarks run one
// at a time on the main thread.
ZooPair& GetZooPair(const ZooCase& zoo_case, int threads, const std::string& ort_dir, GraphOptimization level) {
  static std::map<std::string, std::unique_ptr<ZooPair>> pairs;
  const std::string key =
      zoo_case.name + "/threads:" + std::to_string(threads) + "/graph_opt:" + GraphOptimizationName(level);
  std::unique_ptr<ZooPair>& pair = pairs[key];
  if (pair == nullptr) {
    pair = std::make_unique<ZooPair>();
    const Status status = PrepareZooPair(zoo_case, threads, ort_dir, level, *pair);
    if (!status.ok()) pair->setup_error = status.ToString() + " [" + zoo_case.name + "]";
  }
  return *pair;
}

// Region counters as bench/report.py reads them ("regions",
// "regions_compiled", "compile_ms"), plus "regions_total" and
// "regions_failed". An interpreter benchmark reports the regions the JIT
// would have but none compiled.
void AddRegionCounters(benchmark::State& state, const SessionStats& stats, bool jit) {
  int compiled = 0, failed = 0;
  double compile_ms = 0;
  for (const RegionStats& region : stats.regions) {
    if (region.specializations > 0) ++compiled;
    if (region.specializations == 0 && region.failed_compiles > 0) ++failed;
    compile_ms += region.compile_ms;
  }
  const double total = static_cast<double>(stats.regions.size());
  state.counters["regions"] = total;
  state.counters["regions_total"] = total;
  state.counters["regions_compiled"] = jit ? compiled : 0;
  state.counters["regions_failed"] = jit ? failed : 0;
  state.counters["compile_ms"] = jit ? compile_ms : 0;
}

// Every region the runs reach has compiled or failed to. A region no run
// reaches (inside an If branch the inputs never take) never turns hot, so
// it does not hold tier-up back.
bool AllRegionsSettled(const SessionStats& stats) {
  for (const RegionStats& region : stats.regions) {
    if (region.interpreted_calls + region.compiled_calls == 0) continue;
    if (region.specializations == 0 && region.failed_compiles == 0) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Benchmarks

struct ZooContext {
  ZooCase zoo_case;
  std::string ort_dir;
  int threads = 1;
  // kBasic for the op-by-op rows (tier:opbyop), which time the interpreter.
  GraphOptimization graph_optimization = GraphOptimization::kAll;
};

// The session a zoo row times.
enum class ZooTier { kInterp, kJit, kBitwise };

void BM_ZooSteady(benchmark::State& state, const ZooContext& ctx, ZooTier tier) {
  ZooPair& pair = GetZooPair(ctx.zoo_case, ctx.threads, ctx.ort_dir, ctx.graph_optimization);
  const bool jit = tier != ZooTier::kInterp;
  const std::string& error = !pair.setup_error.empty()   ? pair.setup_error
                             : tier == ZooTier::kJit     ? pair.jit_error
                             : tier == ZooTier::kBitwise ? pair.bitwise_error
                                                         : pair.interp_error;
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  const Session& session = tier == ZooTier::kJit ? *pair.jit : tier == ZooTier::kBitwise ? *pair.bitwise : *pair.interp;
  const Status warm = RunNTimes(session, pair.inputs, kWarmupRuns).status();
  if (!warm.ok()) {
    state.SkipWithError(warm.ToString().c_str());
    return;
  }
  for (auto _ : state) {
    StatusOr<std::vector<NamedTensor>> outputs = session.Run(pair.inputs);
    if (!outputs.ok()) {
      state.SkipWithError(outputs.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(outputs->data());
  }
  // The bitwise row reports its own session's regions (fewer compile).
  const SessionStats jit_stats = tier == ZooTier::kBitwise ? pair.bitwise->stats() : pair.jit->stats();
  AddRegionCounters(state, jit_stats, jit);
  state.counters["peak_planned_bytes"] = static_cast<double>(session.stats().peak_planned_bytes);
  // Bitwise outputs equal the interpreter's (checked in PrepareZooPair).
  const bool approximate = tier == ZooTier::kJit;
  state.counters["max_abs_diff"] = approximate ? pair.jit_vs_interp.max_abs_diff : 0;
  state.counters["max_rel_diff"] = approximate ? pair.jit_vs_interp.max_rel_diff : 0;
  state.counters["ort_checked"] = pair.ort_checked ? 1 : 0;
  if (pair.ort_checked) {
    const Closeness& ort = approximate ? pair.jit_vs_ort : pair.interp_vs_ort;
    state.counters["ort_max_abs_diff"] = ort.max_abs_diff;
    state.counters["ort_max_rel_diff"] = ort.max_rel_diff;
  }
  std::string label = pair.ort_note;
  int compiled = 0;
  for (const RegionStats& region : jit_stats.regions) compiled += region.specializations > 0 ? 1 : 0;
  if (jit && compiled == 0 && !jit_stats.regions.empty()) {
    label += std::string(label.empty() ? "" : "; ") + "JIT compiled no region: timing is interpreted";
  }
  if (!label.empty()) state.SetLabel(label);
}

// Turns off oneDNN's process-wide primitive cache while it lives. Without
// that, every cold start after the first would find the primitives (and
// their generated code) an earlier session built, which a new process
// serving its first request never does.
class NoDnnlPrimitiveCache {
 public:
  NoDnnlPrimitiveCache() : saved_(dnnl::get_primitive_cache_capacity()) { dnnl::set_primitive_cache_capacity(0); }
  ~NoDnnlPrimitiveCache() { dnnl::set_primitive_cache_capacity(saved_); }
  NoDnnlPrimitiveCache(const NoDnnlPrimitiveCache&) = delete;
  NoDnnlPrimitiveCache& operator=(const NoDnnlPrimitiveCache&) = delete;

 private:
  int saved_;
};

// What a process serving its first request sees: load, create a session
// with the default tier policy, run once. The file is in the page cache
// (one untimed round first), as it is for a restarted service, and oneDNN's
// primitive cache is off, as it is empty in a new process. Counters: the
// three phases, and the first run over the steady interpreted run (the tier
// that serves a first run), which is what preparation costs the first request.
void BM_ZooColdStart(benchmark::State& state, const ZooContext& ctx) {
  ZooPair& pair = GetZooPair(ctx.zoo_case, ctx.threads, ctx.ort_dir, ctx.graph_optimization);
  if (!pair.setup_error.empty()) {
    state.SkipWithError(pair.setup_error.c_str());
    return;
  }
  SessionOptions options;
  options.intra_op_threads = ctx.threads;
  const NoDnnlPrimitiveCache no_primitive_cache;
  double load_ms = 0, create_ms = 0, run_ms = 0;
  // The last cold start's session, destroyed outside the timed part: a
  // session's teardown is not part of serving its first request.
  std::unique_ptr<Session> last_session;
  auto cold_start = [&]() -> StatusOr<std::vector<Tensor>> {
    const Clock::time_point start = Clock::now();
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model, Model::Load(ctx.zoo_case.model_path));
    const Clock::time_point loaded = Clock::now();
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Create(model, options));
    const Clock::time_point created = Clock::now();
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outputs, RunNTimes(*session, pair.inputs, 1));
    load_ms += std::chrono::duration<double, std::milli>(loaded - start).count();
    create_ms += std::chrono::duration<double, std::milli>(created - loaded).count();
    run_ms += MillisecondsSince(created);
    last_session = std::move(session);
    return outputs;
  };

  StatusOr<std::vector<Tensor>> first = cold_start();
  if (!first.ok()) {
    state.SkipWithError(first.status().ToString().c_str());
    return;
  }
  const Closeness check = CompareOutputs(pair.reference, *first, kJitRtol, kJitAtol);
  if (!check.ok) {
    state.SkipWithError(DescribeMismatch(check, "cold start vs interp", kJitRtol, kJitAtol).c_str());
    return;
  }
  load_ms = create_ms = run_ms = 0;
  const bool rss_reset = ResetPeakRss();
  const int64_t rss_before_kb = ProcStatusKb("VmRSS");
  for (auto _ : state) {
    StatusOr<std::vector<Tensor>> outputs = cold_start();
    if (!outputs.ok()) {
      state.SkipWithError(outputs.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(outputs->data());
    state.PauseTiming();
    last_session.reset();
    state.ResumeTiming();
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["load_ms"] = load_ms / n;
  state.counters["create_ms"] = create_ms / n;
  state.counters["first_run_ms"] = run_ms / n;
  state.counters["cold_ms"] = (load_ms + create_ms + run_ms) / n;
  // The steady interpreted run beside it, measured here so the ratio holds
  // even when the steady-state benchmarks were filtered out.
  if (RunNTimes(*pair.interp, pair.inputs, kWarmupRuns).ok()) {
    std::vector<double> steady;
    for (int i = 0; i < kSteadySamples; ++i) {
      const Clock::time_point start = Clock::now();
      if (!RunNTimes(*pair.interp, pair.inputs, 1).ok()) break;
      steady.push_back(MillisecondsSince(start));
    }
    if (!steady.empty()) {
      std::nth_element(steady.begin(), steady.begin() + steady.size() / 2, steady.end());
      const double median = steady[steady.size() / 2];
      state.counters["steady_interp_ms"] = median;
      state.counters["first_over_steady"] = run_ms / n / median;
    }
  }
  const int64_t hwm_kb = ProcStatusKb("VmHWM");
  if (rss_reset && rss_before_kb >= 0 && hwm_kb >= 0) {
    // What a cold start adds to the process at its peak: model, session,
    // first run's buffers (the harness's own pair is already resident).
    state.counters["peak_rss_delta_mb"] = static_cast<double>(hwm_kb - rss_before_kb) / 1024.0;
  }
}

// One new session over the loaded model, run back to back until every
// region has compiled or failed to (or a cap is reached).
struct TierUpRun {
  int runs = 0;
  bool settled = false;
  double first_run_ms = 0;
  double ms = 0;  // from Session::Create to the end of the run that settled it
  SessionStats stats;
  std::vector<Tensor> outputs;
};

StatusOr<TierUpRun> RunUntilSettled(const ZooPair& pair, const SessionOptions& options) {
  TierUpRun run;
  const Clock::time_point start = Clock::now();
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Create(pair.model, options));
  while (!run.settled && run.runs < kMaxTierUpRuns && MillisecondsSince(start) < kMaxTierUpSeconds * 1e3) {
    const Clock::time_point run_start = Clock::now();
    KILN_ASSIGN_OR_RETURN(run.outputs, RunNTimes(*session, pair.inputs, 1));
    if (run.runs == 0) run.first_run_ms = MillisecondsSince(run_start);
    ++run.runs;
    run.settled = AllRegionsSettled(session->stats());
  }
  run.ms = MillisecondsSince(start);
  session->WaitForCompiles();
  run.stats = session->stats();
  return run;
}

// Why `run` does not count: not settled, or outputs unlike the reference.
std::string TierUpProblem(const ZooPair& pair, const TierUpRun& run) {
  if (!run.settled) {
    int compiled = 0;
    for (const RegionStats& region : run.stats.regions) compiled += region.specializations > 0 ? 1 : 0;
    return "not tiered up after " + std::to_string(run.runs) + " runs: " + std::to_string(compiled) + " of " +
           std::to_string(run.stats.regions.size()) + " regions compiled";
  }
  const Closeness check = CompareOutputs(pair.reference, run.outputs, kJitRtol, kJitAtol);
  return check.ok ? "" : DescribeMismatch(check, "tiered-up vs interp", kJitRtol, kJitAtol);
}

// How long the default (background) policy takes to reach full speed: a new
// session over the loaded model runs back to back until every region has
// compiled or failed to. Timed from Session::Create to the end of the first
// run after which that is true; counters: runs it took, the first run, and
// the regions.
//
// With `warm_cache`, as a new process finds a code cache folder that an
// earlier one filled: one untimed session fills a fresh folder first, then
// every timed session is created on it (SessionOptions::jit_cache_dir), so
// its regions link instead of compiling, queued from the hot set at once.
void BM_ZooTierUp(benchmark::State& state, const ZooContext& ctx, bool warm_cache) {
  ZooPair& pair = GetZooPair(ctx.zoo_case, ctx.threads, ctx.ort_dir, ctx.graph_optimization);
  if (!pair.setup_error.empty()) {
    state.SkipWithError(pair.setup_error.c_str());
    return;
  }
  SessionOptions options = Options(TierPolicy::kAuto, ctx.threads);
  const Status warm = RunNTimes(*pair.interp, pair.inputs, kWarmupRuns).status();  // touch inputs and weights
  if (!warm.ok()) {
    state.SkipWithError(warm.ToString().c_str());
    return;
  }
  if (warm_cache) {
    std::string name = ctx.zoo_case.name;
    std::replace(name.begin(), name.end(), '/', '_');
    options.jit_cache_dir = (std::filesystem::temp_directory_path() / "kiln_bench_code_cache" /
                             (name + "_threads" + std::to_string(ctx.threads)))
                                .string();
    std::error_code ec;
    std::filesystem::remove_all(options.jit_cache_dir, ec);
    StatusOr<TierUpRun> filled = RunUntilSettled(pair, options);
    const std::string problem = filled.ok() ? TierUpProblem(pair, *filled) : filled.status().ToString();
    if (!problem.empty()) {
      state.SkipWithError(("filling the code cache: " + problem).c_str());
      return;
    }
  }
  int64_t total_runs = 0;
  double first_run_ms = 0;
  SessionStats last_stats;
  for (auto _ : state) {
    StatusOr<TierUpRun> run = RunUntilSettled(pair, options);
    state.PauseTiming();
    const std::string problem = run.ok() ? TierUpProblem(pair, *run) : run.status().ToString();
    if (!problem.empty()) {
      state.SkipWithError(problem.c_str());
      return;
    }
    // Timed to the settling run; the wait for trailing compiles and the
    // session's teardown are not part of tier-up.
    state.SetIterationTime(run->ms * 1e-3);
    total_runs += run->runs;
    first_run_ms += run->first_run_ms;
    last_stats = run->stats;
    state.ResumeTiming();
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["runs_to_tier_up"] = static_cast<double>(total_runs) / n;
  state.counters["first_run_ms"] = first_run_ms / n;
  if (warm_cache) {
    state.counters["cache_hits"] = static_cast<double>(last_stats.jit_cache_hits);
    state.counters["cache_misses"] = static_cast<double>(last_stats.jit_cache_misses);
  }
  AddRegionCounters(state, last_stats, /*jit=*/true);
  if (last_stats.regions.empty()) state.SetLabel("no JIT regions: one run");
}

void BM_ZooManifestError(benchmark::State& state, const std::string& error) { state.SkipWithError(error.c_str()); }

}  // namespace

void RegisterZoo(const std::string& zoo_dir, const std::string& ort_dir) {
  StatusOr<std::vector<ZooCase>> cases = ReadZooManifest(zoo_dir);
  if (!cases.ok()) {
    benchmark::RegisterBenchmark("BM_Zoo/manifest", BM_ZooManifestError, cases.status().ToString());
    return;
  }
  // Case by case and thread count by thread count; bench/run interleaves the
  // repetitions at random anyway, and GetZooPair keeps every pair it builds.
  for (const ZooCase& zoo_case : *cases) {
    for (int threads : {1, 2}) {
      const ZooContext ctx{zoo_case, ort_dir, threads};
      const std::string model = "/model:" + zoo_case.name;
      const std::string suffix = "/threads:" + std::to_string(threads);
      for (ZooTier tier : {ZooTier::kInterp, ZooTier::kJit, ZooTier::kBitwise}) {
        const char* tier_name = tier == ZooTier::kInterp ? "interp" : tier == ZooTier::kJit ? "jit" : "bitwise";
        const std::string name = "BM_Zoo" + model + "/tier:" + tier_name + suffix;
        benchmark::RegisterBenchmark(name.c_str(), BM_ZooSteady, ctx, tier)->UseRealTime();
      }
      benchmark::RegisterBenchmark(("BM_ZooColdStart" + model + suffix).c_str(), BM_ZooColdStart, ctx)->UseRealTime();
      benchmark::RegisterBenchmark(("BM_ZooTierUp" + model + suffix).c_str(), BM_ZooTierUp, ctx, false)
          ->UseManualTime();
      benchmark::RegisterBenchmark(("BM_ZooTierUpWarmCache" + model + suffix).c_str(), BM_ZooTierUp, ctx, true)
          ->UseManualTime();
      if (threads == 1) {
        // The interpreter on the basic graph (no load-time fusion): the
        // op-by-op baseline, at one thread like the whole-model goal.
        ZooContext op_by_op = ctx;
        op_by_op.graph_optimization = GraphOptimization::kBasic;
        const std::string name = "BM_Zoo" + model + "/tier:opbyop" + suffix;
        benchmark::RegisterBenchmark(name.c_str(), BM_ZooSteady, op_by_op, ZooTier::kInterp)->UseRealTime();
      }
    }
  }
}

}  // namespace kiln::bench
