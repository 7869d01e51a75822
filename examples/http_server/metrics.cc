#include "metrics.h"

#include <cstdio>

namespace kiln_http {
namespace {

void AppendHeader(const char* name, const char* type, const char* help, std::string& out) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void AppendSample(const std::string& name, const std::string& labels, double value, std::string& out) {
  char number[64];
  std::snprintf(number, sizeof(number), "%.17g", value);
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += ' ';
  out += number;
  out += '\n';
}

// Model names come from file names; Prometheus label values escape \, " and
// newlines.
std::string ModelLabel(const std::string& model) {
  std::string label = "model=\"";
  for (char c : model) {
    if (c == '\\' || c == '"') label += '\\';
    if (c == '\n') {
      label += "\\n";
      continue;
    }
    label += c;
  }
  return label + "\"";
}

}  // namespace

void LatencyHistogram::Observe(double seconds) {
  size_t bucket = 0;
  while (bucket < kBucketSeconds.size() && seconds > kBucketSeconds[bucket]) ++bucket;
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_nanoseconds_.fetch_add(static_cast<uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

void LatencyHistogram::Render(const std::string& name, const std::string& labels, std::string& out) const {
  const std::string prefix = labels.empty() ? "" : labels + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kBucketSeconds.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    char bound[32];
    if (i < kBucketSeconds.size()) {
      std::snprintf(bound, sizeof(bound), "%g", kBucketSeconds[i]);
    } else {
      std::snprintf(bound, sizeof(bound), "+Inf");
    }
    AppendSample(name + "_bucket", prefix + "le=\"" + bound + "\"", static_cast<double>(cumulative), out);
  }
  AppendSample(name + "_sum", labels, static_cast<double>(sum_nanoseconds_.load(std::memory_order_relaxed)) * 1e-9,
               out);
  AppendSample(name + "_count", labels, static_cast<double>(cumulative), out);
}

ServerMetrics::ServerMetrics(const ModelRegistry& registry)
    : registry_(registry), per_model_(new PerModel[registry.models().size()]) {}

void ServerMetrics::CountResponse(int http_status) {
  if (http_status < 0 || http_status >= kMaxHttpStatus) return;
  responses_[static_cast<size_t>(http_status)].fetch_add(1, std::memory_order_relaxed);
}

void ServerMetrics::CountPredict(int model_index, bool ok, double seconds) {
  PerModel& model = per_model_[static_cast<size_t>(model_index)];
  model.requests.fetch_add(1, std::memory_order_relaxed);
  if (!ok) model.errors.fetch_add(1, std::memory_order_relaxed);
  model.latency.Observe(seconds);
}

std::string ServerMetrics::RenderPrometheus() const {
  std::string out;
  AppendHeader("kiln_build_info", "gauge", "kiln library version the server runs on.", out);
  AppendSample("kiln_build_info", std::string("version=\"") + kiln::Version() + "\"", 1, out);

  AppendHeader("kiln_http_responses_total", "counter", "HTTP responses sent, by status code.", out);
  for (int code = 0; code < kMaxHttpStatus; ++code) {
    const uint64_t count = responses_[static_cast<size_t>(code)].load(std::memory_order_relaxed);
    if (count > 0) AppendSample("kiln_http_responses_total", "code=\"" + std::to_string(code) + "\"", count, out);
  }
  AppendHeader("kiln_in_flight_requests", "gauge", "Predict requests being served now.", out);
  AppendSample("kiln_in_flight_requests", "", static_cast<double>(in_flight_.load()), out);

  const std::vector<ServedModel>& models = registry_.models();
  AppendHeader("kiln_predict_requests_total", "counter", "Predict requests per model.", out);
  for (size_t i = 0; i < models.size(); ++i) {
    AppendSample("kiln_predict_requests_total", ModelLabel(models[i].name),
                 static_cast<double>(per_model_[i].requests.load(std::memory_order_relaxed)), out);
  }
  AppendHeader("kiln_predict_errors_total", "counter", "Predict requests answered with an error, per model.", out);
  for (size_t i = 0; i < models.size(); ++i) {
    AppendSample("kiln_predict_errors_total", ModelLabel(models[i].name),
                 static_cast<double>(per_model_[i].errors.load(std::memory_order_relaxed)), out);
  }
  AppendHeader("kiln_predict_latency_seconds", "histogram",
               "Time from a predict request's arrival at its handler to its response, per model.", out);
  for (size_t i = 0; i < models.size(); ++i) {
    per_model_[i].latency.Render("kiln_predict_latency_seconds", ModelLabel(models[i].name), out);
  }

  // Tier state: how far each model has moved from the interpreter to JIT
  // code. stats() takes a consistent snapshot under the session's own locks.
  struct TierState {
    double runs = 0, regions = 0, compiled = 0, specializations = 0, declined = 0, failed = 0, compile_seconds = 0,
           deopts = 0;
  };
  std::vector<TierState> tiers;
  for (const ServedModel& model : models) {
    const kiln::SessionStats stats = model.session->stats();
    TierState tier;
    tier.runs = static_cast<double>(stats.runs);
    tier.regions = static_cast<double>(stats.regions.size());
    for (const kiln::RegionStats& region : stats.regions) {
      if (region.tier == "jit") tier.compiled += 1;
      tier.specializations += region.specializations;
      tier.declined += region.declined;
      tier.failed += region.failed_compiles;
      tier.compile_seconds += region.compile_ms * 1e-3;
      tier.deopts += static_cast<double>(region.deopts);
    }
    tiers.push_back(tier);
  }
  struct TierMetric {
    const char* name;
    const char* type;
    const char* help;
    double TierState::*field;
  };
  static constexpr TierMetric kTierMetrics[] = {
      {"kiln_model_runs_total", "counter", "Session runs per model.", &TierState::runs},
      {"kiln_model_regions", "gauge", "Fused regions the JIT may compile, per model.", &TierState::regions},
      {"kiln_model_regions_compiled", "gauge", "Regions running JIT code for at least one shape signature.",
       &TierState::compiled},
      {"kiln_model_jit_specializations", "gauge", "Compiled shape signatures over all regions.",
       &TierState::specializations},
      {"kiln_model_jit_declined_total", "counter",
       "Compiled signatures dropped because the interpreter ran them faster.", &TierState::declined},
      {"kiln_model_jit_failed_compiles_total", "counter", "Region compiles that failed.", &TierState::failed},
      {"kiln_model_jit_compile_seconds_total", "counter", "Time spent compiling regions.", &TierState::compile_seconds},
      {"kiln_model_deopts_total", "counter",
       "Interpreted region calls while JIT code for other shape signatures existed.", &TierState::deopts},
  };
  for (const TierMetric& metric : kTierMetrics) {
    AppendHeader(metric.name, metric.type, metric.help, out);
    for (size_t i = 0; i < models.size(); ++i) {
      AppendSample(metric.name, ModelLabel(models[i].name), tiers[i].*metric.field, out);
    }
  }
  return out;
}

}  // namespace kiln_http
