// kiln_http_server: serves every ONNX model of a folder over HTTP with the
// installed libkiln (see http_routes.h for the API).
//
//   kiln_http_server --models DIR [--host 127.0.0.1] [--port 8080] ...
//
// Prints "listening on http://HOST:PORT" once it accepts requests (with
// --port 0, the port the system chose). SIGTERM or SIGINT: stop accepting,
// let in-flight requests finish (cancelling runs still going after
// --drain-timeout-ms), then exit 0.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include <httplib.h>
#include <kiln/session.h>

#include "http_routes.h"
#include "metrics.h"
#include "model_registry.h"

namespace {

struct Flags {
  std::string models_dir;
  std::string host = "127.0.0.1";
  int port = 8080;
  // HTTP worker threads. A keep-alive connection holds one for its
  // lifetime, so this is the number of clients served at once; keep it
  // above the load's connections so /metrics and /healthz still get a turn.
  int http_threads = 16;
  kiln::TierPolicy tier = kiln::TierPolicy::kAuto;
  // One thread per run: under load, concurrent requests already keep every
  // core busy, and a run's OpenMP team would take cores from the HTTP
  // threads (its workers spin between parallel regions). Measured on 2
  // cores with 8 connections on transformer_tiny: 9065 QPS with 1 thread
  // against 6508 with 2 (JIT tier; 8420 and 7665 interpreted).
  int intra_op_threads = 1;
  // Compute threads over all models and requests (kiln::ThreadBudget); 0:
  // one per core.
  int compute_threads = 0;
  size_t max_body_bytes = size_t{16} << 20;
  double default_deadline_ms = 0;
  double drain_timeout_ms = 10000;
};

void PrintUsage(FILE* out) {
  std::fprintf(out,
               "usage: kiln_http_server --models DIR [options]\n"
               "  --host ADDR               address to listen on (default 127.0.0.1)\n"
               "  --port N                  port; 0 picks a free one (default 8080)\n"
               "  --http-threads N          HTTP worker threads = connections served at once (default 16)\n"
               "  --tier auto|jit|interp    kiln tier policy (default auto)\n"
               "  --intra-op-threads N      threads per run; 0 = one per core (default 1)\n"
               "  --compute-threads N       compute threads shared by all runs; 0 = one per core (default 0)\n"
               "  --max-body-bytes N        larger bodies get 413 (default 16777216)\n"
               "  --deadline-ms MS          deadline without X-Kiln-Deadline-Ms; 0 = none (default 0)\n"
               "  --drain-timeout-ms MS     on SIGTERM, cancel runs still going after this (default 10000)\n");
}

bool ParseFlags(int argc, char** argv, Flags& flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      PrintUsage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "kiln_http_server: %s needs a value\n", flag.c_str());
      return false;
    }
    const std::string value = argv[++i];
    if (flag == "--models") {
      flags.models_dir = value;
      continue;
    }
    if (flag == "--host") {
      flags.host = value;
      continue;
    }
    if (flag == "--tier") {
      if (value == "auto") {
        flags.tier = kiln::TierPolicy::kAuto;
      } else if (value == "jit") {
        flags.tier = kiln::TierPolicy::kJit;
      } else if (value == "interp") {
        flags.tier = kiln::TierPolicy::kInterpreter;
      } else {
        std::fprintf(stderr, "kiln_http_server: --tier must be auto, jit or interp\n");
        return false;
      }
      continue;
    }
    // Every other flag takes a number.
    char* end = nullptr;
    const double n = std::strtod(value.c_str(), &end);
    if (end == value.c_str() || *end != '\0' || !(n >= 0)) {
      std::fprintf(stderr, "kiln_http_server: %s needs a non-negative number, got \"%s\"\n", flag.c_str(),
                   value.c_str());
      return false;
    }
    if (flag == "--port") {
      flags.port = static_cast<int>(n);
    } else if (flag == "--http-threads") {
      flags.http_threads = std::max(1, static_cast<int>(n));
    } else if (flag == "--intra-op-threads") {
      flags.intra_op_threads = static_cast<int>(n);
    } else if (flag == "--compute-threads") {
      flags.compute_threads = static_cast<int>(n);
    } else if (flag == "--max-body-bytes") {
      flags.max_body_bytes = static_cast<size_t>(n);
    } else if (flag == "--deadline-ms") {
      flags.default_deadline_ms = n;
    } else if (flag == "--drain-timeout-ms") {
      flags.drain_timeout_ms = n;
    } else {
      std::fprintf(stderr, "kiln_http_server: unknown flag %s\n", flag.c_str());
      return false;
    }
  }
  if (flags.models_dir.empty()) {
    std::fprintf(stderr, "kiln_http_server: --models DIR is required\n");
    return false;
  }
  return true;
}

// Waits for SIGTERM or SIGINT (blocked in every thread, so only this one
// sees them: no async-signal-safety to worry about), then drains: the
// server stops accepting and its workers finish what they hold; runs still
// going after the drain timeout are cancelled. Also returns when `stopped`
// is set (the server ended by itself).
void DrainOnSignal(const sigset_t& signals, httplib::Server& server, std::atomic<bool>& draining,
                   std::atomic<bool>& cancel_runs, std::atomic<int64_t>& in_flight, double drain_timeout_ms,
                   const std::atomic<bool>& stopped) {
  const timespec poll = {0, 200 * 1000 * 1000};
  int signal = -1;
  while (!stopped.load()) {
    signal = sigtimedwait(&signals, nullptr, &poll);
    if (signal > 0) break;
  }
  if (signal <= 0) return;
  std::fprintf(stderr, "kiln_http_server: %s: no new connections; finishing requests in progress (%lld running)\n",
               strsignal(signal), static_cast<long long>(in_flight.load()));
  draining.store(true);
  // A signal that came before listening began would otherwise be lost:
  // stop() does nothing to a server not yet running.
  while (!server.is_running() && !stopped.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  server.stop();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double, std::milli>(drain_timeout_ms);
  while (in_flight.load() > 0 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (in_flight.load() > 0) {
    std::fprintf(stderr, "kiln_http_server: drain timeout: cancelling %lld runs\n",
                 static_cast<long long>(in_flight.load()));
    cancel_runs.store(true);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, flags)) {
    PrintUsage(stderr);
    return 2;
  }
  if (kiln::Status cpu = kiln::CheckHostCpu(); !cpu.ok()) {
    std::fprintf(stderr, "kiln_http_server: %s\n", cpu.ToString().c_str());
    return 1;
  }

  // Before any thread starts, so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  kiln::SessionOptions session_options;
  session_options.tier = flags.tier;
  session_options.intra_op_threads = flags.intra_op_threads;
  // One budget for every model: requests to different models never
  // oversubscribe the cores between them either.
  session_options.thread_budget = kiln::ThreadBudget::Create(flags.compute_threads);
  kiln::StatusOr<kiln_http::ModelRegistry> registry =
      kiln_http::ModelRegistry::LoadDirectory(flags.models_dir, session_options);
  if (!registry.ok()) {
    std::fprintf(stderr, "kiln_http_server: %s\n", registry.status().ToString().c_str());
    return 1;
  }

  kiln_http::ServerMetrics metrics(*registry);
  std::atomic<bool> draining{false};
  std::atomic<bool> cancel_runs{false};
  kiln_http::ServingOptions serving_options;
  serving_options.max_body_bytes = flags.max_body_bytes;
  serving_options.default_deadline_ms = flags.default_deadline_ms;
  const kiln_http::ServingState state{*registry, metrics, draining, cancel_runs, serving_options};

  httplib::Server server;
  const size_t http_threads = static_cast<size_t>(flags.http_threads);
  server.new_task_queue = [http_threads] { return new httplib::ThreadPool(http_threads); };
  // Small request/response pairs: without TCP_NODELAY, Nagle's algorithm
  // and delayed ACKs add tens of milliseconds to a response.
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(100000);
  // An idle keep-alive connection holds a worker, and a drain waits for it.
  server.set_keep_alive_timeout(2);
  kiln_http::InstallRoutes(server, state);

  int port = flags.port;
  if (port == 0) {
    port = server.bind_to_any_port(flags.host);
  } else if (!server.bind_to_port(flags.host, port)) {
    port = -1;
  }
  if (port < 0) {
    std::fprintf(stderr, "kiln_http_server: cannot listen on %s:%d\n", flags.host.c_str(), flags.port);
    return 1;
  }
  for (const kiln_http::ServedModel& served : registry->models()) {
    std::printf("serving %s (%s)\n", served.name.c_str(), served.path.c_str());
  }
  std::printf("kiln %s, listening on http://%s:%d\n", kiln::Version(), flags.host.c_str(), port);
  std::fflush(stdout);

  std::atomic<bool> stopped{false};
  std::thread drainer(DrainOnSignal, std::cref(signals), std::ref(server), std::ref(draining), std::ref(cancel_runs),
                      std::ref(metrics.in_flight()), flags.drain_timeout_ms, std::cref(stopped));
  // Returns once stopped and every worker has finished its connection.
  const bool listened = server.listen_after_bind();
  stopped.store(true);
  drainer.join();
  std::printf("kiln_http_server: stopped\n");
  return listened || draining.load() ? 0 : 1;
}
