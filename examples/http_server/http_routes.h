// The server's HTTP API, installed on a cpp-httplib server:
//
//   POST /v1/models/{name}:predict   .npy (application/x-npy, single-input
//                                    models) or JSON (application/json, see
//                                    json_codec.h), answered in the same form
//   GET  /v1/models                  every model's inputs and outputs
//   GET  /v1/models/{name}           one model's
//   GET  /healthz                    200 while serving, 503 while draining
//   GET  /metrics                    Prometheus text (metrics.h)
//
// Every error is a 4xx or 5xx with a JSON body
// {"error": {"code": "...", "message": "..."}}; a request header
// X-Kiln-Deadline-Ms bounds the run (504 when it passes).
#pragma once

#include <atomic>
#include <cstddef>

#include <httplib.h>

#include "metrics.h"
#include "model_registry.h"

namespace kiln_http {

struct ServingOptions {
  // Larger request bodies get 413 before they are read.
  size_t max_body_bytes = size_t{16} << 20;
  // Deadline of a predict request without X-Kiln-Deadline-Ms; 0: none.
  double default_deadline_ms = 0;
};

// What the handlers share; owned by main and outliving the server.
struct ServingState {
  const ModelRegistry& registry;
  ServerMetrics& metrics;
  // Set on SIGTERM: /healthz answers 503 so that a load balancer stops
  // sending new work while in-flight requests finish.
  const std::atomic<bool>& draining;
  // Set when draining takes too long: runs still going stop at their next
  // check (RunOptions::cancel) and answer 503.
  const std::atomic<bool>& cancel_runs;
  ServingOptions options;
};

// Installs the routes, the JSON error responses for the errors the HTTP
// library answers itself (unknown route, oversized body), the response
// counter and the body size limit on `server`.
void InstallRoutes(httplib::Server& server, const ServingState& state);

}  // namespace kiln_http
