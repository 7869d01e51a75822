// The server's Prometheus metrics. Request threads count into fixed arrays
// of atomics (no lock, no allocation on the request path); GET /metrics
// renders them, with each model's tier state read from Session::stats(), in
// Prometheus' text exposition format.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "model_registry.h"

namespace kiln_http {

// Request latencies in fixed buckets, as a Prometheus histogram.
class LatencyHistogram {
 public:
  // Upper bounds in seconds: 100 us to 10 s, so both a JIT-compiled MLP
  // and an interpreted CNN land in a bucket of their own.
  static constexpr std::array<double, 16> kBucketSeconds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                            0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

  void Observe(double seconds);
  // Appends the _bucket, _sum and _count lines of metric `name`, each with
  // `labels` (`model="mlp"`, or empty).
  void Render(const std::string& name, const std::string& labels, std::string& out) const;

 private:
  // Per bucket (not cumulative; the last is +Inf), summed when rendering.
  std::array<std::atomic<uint64_t>, kBucketSeconds.size() + 1> counts_{};
  std::atomic<uint64_t> sum_nanoseconds_{0};
};

class ServerMetrics {
 public:
  // Counters for each model of `registry`, which must outlive this.
  explicit ServerMetrics(const ModelRegistry& registry);

  // Every response the server sends, by HTTP status (any route, including
  // the 404s and 413s the HTTP library answers itself).
  void CountResponse(int http_status);
  // A predict request for registry model `model_index` finished.
  void CountPredict(int model_index, bool ok, double seconds);

  std::atomic<int64_t>& in_flight() { return in_flight_; }

  // The whole exposition, including every model's tier state now.
  std::string RenderPrometheus() const;

 private:
  struct PerModel {
    std::atomic<uint64_t> requests{0};
    std::atomic<uint64_t> errors{0};
    LatencyHistogram latency;
  };

  static constexpr int kMaxHttpStatus = 600;
  const ModelRegistry& registry_;
  std::unique_ptr<PerModel[]> per_model_;  // one per registry model; atomics cannot live in a growing vector
  std::array<std::atomic<uint64_t>, kMaxHttpStatus> responses_{};
  std::atomic<int64_t> in_flight_{0};
};

}  // namespace kiln_http
