#include "tools/run_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

namespace kiln::cli {
namespace {

using Json = nlohmann::ordered_json;  // keys in the order written

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

// `v` at 10 significant digits (timings and checksums carry no more); JSON
// has no NaN or infinity, so those become null.
Json Rounded(double v) {
  if (!std::isfinite(v)) return nullptr;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.10g", v);
  return std::strtod(buf, nullptr);
}

Json TierUpJson(const TierUpResult& t, const TimedRunResult& timed) {
  const double before = t.before.PercentileMs(0.5);
  const double after = timed.latency.PercentileMs(0.5);
  return {{"settled", t.settled},
          {"warmup_runs", t.runs},
          {"elapsed_ms", Rounded(t.elapsed_ms)},
          {"regions_hot", t.progress.hot},
          {"regions_compiled", t.progress.compiled},
          {"regions_declined", t.progress.declined},
          {"regions_failed", t.progress.failed},
          {"regions_skipped_for_payback", t.progress.skipped},
          {"regions_waiting", t.progress.waiting},
          {"before_runs", t.before.count()},
          {"before_p50_ms", t.before.count() > 0 ? Rounded(before) : Json(nullptr)},
          {"after_p50_ms", timed.latency.count() > 0 ? Rounded(after) : Json(nullptr)},
          {"speedup", t.before.count() > 0 && after > 0 ? Rounded(before / after) : Json(nullptr)}};
}

}  // namespace

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
    case DType::kUndefined:
    case DType::kSequence: break;
  }
  return {};
}

RegionTotals TotalsOf(const SessionStats& stats) {
  RegionTotals t;
  for (const RegionStats& r : stats.regions) {
    t.compiled += r.specializations > 0 ? 1 : 0;
    t.reused_code += r.reused_code;
    t.declined += r.declined;
    t.verify_failures += r.verify_failures;
    t.compile_ms += r.compile_ms;
    t.deopts += r.deopts;
    t.compiled_calls += r.compiled_calls;
    t.interpreted_calls += r.interpreted_calls;
    t.compiled_ms += r.compiled_ms;
    t.interpreted_ms += r.interpreted_ms;
  }
  return t;
}

BreakEvenTotals BreakEvenTotalsOf(const SessionStats& stats) {
  BreakEvenTotals t;
  for (const RegionStats& r : stats.regions) {
    t.skipped_for_payback += r.skipped_for_payback;
    for (const BreakEven& b : r.break_even) {
      ++t.versions;
      t.compile_ms += b.compile_ms;
      t.net_saved_ms += b.net_saved_ms;
      if (!b.measured) continue;
      ++t.measured;
      if (b.payback_calls < 0) {
        ++t.never;
      } else if (b.compiled_calls >= b.payback_calls) {
        ++t.paid_back;
      }
    }
  }
  return t;
}

LatencySplit SplitOf(const RegionTotals& totals, int64_t runs, double mean_ms) {
  LatencySplit split;
  if (runs <= 0) return split;
  split.compiled_region_ms = totals.compiled_ms / static_cast<double>(runs);
  split.interpreted_region_ms = totals.interpreted_ms / static_cast<double>(runs);
  split.other_ms = std::max(0.0, mean_ms - split.compiled_region_ms - split.interpreted_region_ms);
  return split;
}

Status WriteRunReport(const RunMeasurements& m, const std::string& path) {
  const SessionStats& stats = *m.stats;
  const LatencyHistogram& latency = m.timed->latency;
  const RegionTotals totals = TotalsOf(stats);
  const LatencySplit split = SplitOf(totals, stats.runs, latency.mean_ms());
  Json report;
  report["model"] = m.model_path;
  report["tier"] = m.tier;
  report["tier_requested"] = TierPolicyName(m.tier_requested);
  report["graph_optimization"] = GraphOptimizationName(m.graph_optimization);
  report["threads"] = m.intra_op_threads;
  report["load_ms"] = Rounded(m.load_ms);
  report["session_create_ms"] = Rounded(m.session_create_ms);
  report["first_run_ms"] = Rounded(m.first_run_ms);
  // median_ms and p50_ms are the same number: median_ms for the scripts
  // that read the reports before percentiles came, p50_ms beside p90/p99.
  report["median_ms"] = Rounded(latency.PercentileMs(0.5));
  report["p50_ms"] = Rounded(latency.PercentileMs(0.5));
  report["p90_ms"] = Rounded(latency.PercentileMs(0.9));
  report["p99_ms"] = Rounded(latency.PercentileMs(0.99));
  report["max_ms"] = Rounded(latency.max_ms());
  report["min_ms"] = Rounded(latency.min_ms());
  report["mean_ms"] = Rounded(latency.mean_ms());
  report["runs"] = latency.count();
  report["concurrency"] = m.concurrency;
  report["duration_s"] = m.duration_s > 0 ? Rounded(m.duration_s) : Json(nullptr);
  report["wall_s"] = Rounded(m.timed->wall_seconds);
  report["qps"] = Rounded(m.timed->RunsPerSecond());
  report["warmup"] = m.warmup;
  report["tier_up"] = m.tier_up != nullptr ? TierUpJson(*m.tier_up, *m.timed) : Json(nullptr);
  report["total_runs"] = stats.runs;
  report["peak_planned_bytes"] = stats.peak_planned_bytes;
  report["unplanned_bytes"] = stats.unplanned_bytes;
  report["pooled_output_bytes"] = stats.pooled_output_bytes;
  report["regions_total"] = stats.regions.size();
  report["regions_compiled"] = totals.compiled;
  report["compile_ms_total"] = Rounded(totals.compile_ms);
  report["reused_code"] = totals.reused_code;
  report["declined_specializations"] = totals.declined;
  report["verify_failures"] = totals.verify_failures;
  report["deopts"] = totals.deopts;
  report["cache_hits"] = stats.jit_cache_hits;
  report["cache_misses"] = stats.jit_cache_misses;
  report["cache_rejected"] = stats.jit_cache_rejected;
  report["compiled_calls"] = totals.compiled_calls;
  report["interpreted_region_calls"] = totals.interpreted_calls;
  // The compute regions, whose work is counted in FLOPs.
  Json& gemm_json = report["gemm_regions"] = Json::array();
  Json& depthwise_json = report["depthwise_regions"] = Json::array();
  Json& attention_json = report["attention_regions"] = Json::array();
  for (const RegionStats& r : stats.regions) {
    if (r.kind != "gemm" && r.kind != "depthwise_conv" && r.kind != "attention") continue;
    Json region = {
        {"id", r.id},
        {"path", r.path},
        {"description", r.description},
        {"tier", r.tier},
        {"compiled_calls", r.compiled_calls},
        {"flops_per_call", r.compiled_calls > 0 ? r.compiled_flops / static_cast<double>(r.compiled_calls) : 0.0},
        {"gflops", Rounded(r.compiled_gflops)}};
    if (r.kind == "gemm") {
      region["packed_weight_bytes"] = r.packed_weight_bytes;
      gemm_json.push_back(std::move(region));
    } else if (r.kind == "attention") {
      attention_json.push_back(std::move(region));
    } else {
      depthwise_json.push_back(std::move(region));
    }
  }
  // Regions inside If branches and Loop/Scan bodies, with where they sit.
  Json& body_json = report["body_regions"] = Json::array();
  for (const RegionStats& r : stats.regions) {
    if (r.path.empty()) continue;
    body_json.push_back({{"id", r.id},
                         {"path", r.path},
                         {"kind", r.kind},
                         {"description", r.description},
                         {"tier", r.tier},
                         {"compiled_calls", r.compiled_calls},
                         {"interpreted_calls", r.interpreted_calls},
                         {"deopts", r.deopts}});
  }
  // Per compiled version: what it cost, what each call saves, and whether
  // it has paid back (docs/ARCHITECTURE.md "Break-even").
  const BreakEvenTotals break_even = BreakEvenTotalsOf(stats);
  Json versions = Json::array();
  for (const RegionStats& r : stats.regions) {
    for (const BreakEven& b : r.break_even) {
      // Unknown numbers are null, not 0: a 0 saving would read as measured.
      auto measured_or_null = [&b](double v) { return b.measured ? Json(Rounded(v)) : Json(nullptr); };
      versions.push_back({{"region", r.id},
                          {"kind", r.kind},
                          {"signature", b.signature},
                          {"compile_ms", Rounded(b.compile_ms)},
                          {"measured", b.measured},
                          {"interpreted_ms_per_call", measured_or_null(b.interpreted_ms_per_call)},
                          {"compiled_ms_per_call", measured_or_null(b.compiled_ms_per_call)},
                          {"saving_ms_per_call", measured_or_null(b.saving_ms_per_call)},
                          {"payback_calls", b.payback_calls >= 0 ? Json(b.payback_calls) : Json(nullptr)},
                          {"compiled_calls", b.compiled_calls},
                          {"net_saved_ms", Rounded(b.net_saved_ms)}});
    }
  }
  report["break_even"] = {{"versions", break_even.versions},
                          {"measured", break_even.measured},
                          {"paid_back", break_even.paid_back},
                          {"never_pays_back", break_even.never},
                          {"skipped_for_payback", break_even.skipped_for_payback},
                          {"compile_ms", Rounded(break_even.compile_ms)},
                          {"net_saved_ms", Rounded(break_even.net_saved_ms)},
                          {"specializations", std::move(versions)}};
  report["latency_split_ms_per_run"] = {{"compiled_regions", Rounded(split.compiled_region_ms)},
                                        {"interpreted_regions", Rounded(split.interpreted_region_ms)},
                                        {"other_interpreted", Rounded(split.other_ms)}};
  Json& outputs_json = report["outputs"] = Json::array();
  const std::vector<NamedTensor>& outputs = *m.outputs;
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
      Json node = {{"name", n.node_name}, {"op", n.op_type}, {"calls", n.calls}, {"total_ms", Rounded(n.total_ms)}};
      if (!n.path.empty()) node["path"] = n.path;
      nodes.push_back(std::move(node));
    }
  }
  // Names come from the model file and need not be UTF-8: replace what is
  // not, rather than throw.
  const std::string text = report.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  std::ofstream out(path, std::ios::trunc);
  if (!out) return IoError("cannot open for writing");
  out << text;
  out.close();
  if (!out) return IoError("write failed");
  return Status::Ok();
}

}  // namespace kiln::cli
