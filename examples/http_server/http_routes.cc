#include "http_routes.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <exception>
#include <string>

#include <nlohmann/json.hpp>

#include "json_codec.h"
#include "tools/npy.h"

namespace kiln_http {
namespace {

using nlohmann::json;

constexpr const char* kJson = "application/json";
constexpr const char* kNpy = "application/x-npy";

// Which HTTP status says what a kiln status says. Errors in the request
// (bad input, passed deadline) are the client's; the rest are the server's.
int HttpStatusOf(kiln::StatusCode code) {
  switch (code) {
    case kiln::StatusCode::kInvalidArgument:
    case kiln::StatusCode::kOutOfRange: return 400;
    case kiln::StatusCode::kNotFound: return 404;
    case kiln::StatusCode::kDeadlineExceeded: return 504;
    case kiln::StatusCode::kCancelled:
    case kiln::StatusCode::kResourceExhausted: return 503;
    default: return 500;
  }
}

void SendError(httplib::Response& res, int http_status, const std::string& code, const std::string& message) {
  res.status = http_status;
  res.set_content(json{{"error", {{"code", code}, {"message", message}}}}.dump(), kJson);
}

// "deadline exceeded" -> "DEADLINE_EXCEEDED" ("I/O error" -> "IO_ERROR"),
// the form of the codes this file gives its own errors.
std::string ErrorCode(kiln::StatusCode code) {
  std::string name;
  for (const char* c = kiln::StatusCodeName(code); *c != '\0'; ++c) {
    if (*c == ' ') {
      name += '_';
    } else if (std::isalnum(static_cast<unsigned char>(*c))) {
      name += static_cast<char>(std::toupper(static_cast<unsigned char>(*c)));
    }
  }
  return name;
}

void SendStatus(httplib::Response& res, const kiln::Status& status) {
  SendError(res, HttpStatusOf(status.code()), ErrorCode(status.code()), status.message());
}

// "application/json; charset=utf-8" -> "application/json".
std::string MediaType(const httplib::Request& req) {
  std::string type = req.get_header_value("Content-Type");
  type = type.substr(0, type.find(';'));
  type.erase(std::remove_if(type.begin(), type.end(), [](unsigned char c) { return std::isspace(c); }), type.end());
  std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::tolower(c); });
  return type;
}

// The run's deadline: X-Kiln-Deadline-Ms milliseconds from now, else the
// server's default, else none.
kiln::StatusOr<kiln::RunOptions::Clock::time_point> Deadline(const httplib::Request& req,
                                                             const ServingOptions& options) {
  double ms = options.default_deadline_ms;
  if (req.has_header("X-Kiln-Deadline-Ms")) {
    const std::string text = req.get_header_value("X-Kiln-Deadline-Ms");
    const std::from_chars_result parsed = std::from_chars(text.data(), text.data() + text.size(), ms);
    if (parsed.ec != std::errc() || parsed.ptr != text.data() + text.size() || !std::isfinite(ms) || ms <= 0) {
      return kiln::InvalidArgument("X-Kiln-Deadline-Ms must be a positive number of milliseconds, got \"", text, "\"");
    }
  }
  if (ms <= 0) return kiln::RunOptions::Clock::time_point::max();
  return kiln::RunOptions::DeadlineIn(ms);
}

struct Reply {
  std::string body;
  const char* content_type;
  std::string output_name;  // the .npy reply's tensor
};

kiln::StatusOr<Reply> PredictNpy(const ServedModel& served, const httplib::Request& req,
                                 kiln::RunOptions& run_options) {
  const kiln::Model& model = *served.model;
  if (model.inputs().size() != 1) {
    return kiln::InvalidArgument("a .npy body is for single-input models; ", served.name, " has ",
                                 model.inputs().size(), " inputs: send JSON");
  }
  kiln::StatusOr<kiln::Tensor> input = kiln::tools::ParseNpy(req.body.data(), req.body.size());
  if (!input.ok()) return kiln::InvalidArgument("malformed .npy body: ", input.status().message());

  // One tensor comes back: ?output=NAME, else the model's first output.
  // Naming it lets the run skip what only the other outputs need.
  const std::string output = req.has_param("output") ? req.get_param_value("output") : model.outputs().front().name;
  run_options.output_names = {output};
  kiln::StatusOr<std::vector<kiln::NamedTensor>> outputs =
      served.session->Run({{model.inputs().front().name, std::move(*input)}}, run_options);
  if (!outputs.ok()) return outputs.status();
  kiln::StatusOr<std::string> bytes = kiln::tools::SerializeNpy(outputs->front().tensor);
  if (!bytes.ok()) return bytes.status();
  return Reply{std::move(*bytes), kNpy, output};
}

kiln::StatusOr<Reply> PredictJson(const ServedModel& served, const httplib::Request& req,
                                  kiln::RunOptions& run_options) {
  kiln::StatusOr<JsonRequest> request = DecodeJsonRequest(req.body, served.model->inputs());
  if (!request.ok()) return request.status();
  run_options.output_names = std::move(request->output_names);
  kiln::StatusOr<std::vector<kiln::NamedTensor>> outputs = served.session->Run(request->inputs, run_options);
  if (!outputs.ok()) return outputs.status();
  return Reply{EncodeJsonOutputs(*outputs), kJson, ""};
}

// Counts a predict request as in flight for as long as it lives.
class InFlight {
 public:
  explicit InFlight(std::atomic<int64_t>& count) : count_(count) { count_.fetch_add(1); }
  ~InFlight() { count_.fetch_sub(1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<int64_t>& count_;
};

void HandlePredict(const ServingState& state, const httplib::Request& req, httplib::Response& res) {
  const auto start = std::chrono::steady_clock::now();
  const std::string name = req.matches[1];
  const int index = state.registry.IndexOf(name);
  if (index < 0) {
    SendError(res, 404, "NOT_FOUND", "no model named \"" + name + "\"");
    return;
  }
  InFlight in_flight(state.metrics.in_flight());
  const ServedModel& served = state.registry.models()[static_cast<size_t>(index)];

  const std::string media_type = MediaType(req);
  const bool npy = media_type == kNpy || media_type == "application/octet-stream";
  if (!npy && media_type != kJson) {
    SendError(res, 415, "UNSUPPORTED_MEDIA_TYPE",
              "Content-Type must be application/json or application/x-npy, got \"" + media_type + "\"");
  } else if (kiln::StatusOr<kiln::RunOptions::Clock::time_point> deadline = Deadline(req, state.options);
             !deadline.ok()) {
    SendStatus(res, deadline.status());
  } else {
    kiln::RunOptions run_options;
    run_options.deadline = *deadline;
    run_options.cancel = &state.cancel_runs;
    kiln::StatusOr<Reply> reply = npy ? PredictNpy(served, req, run_options) : PredictJson(served, req, run_options);
    if (!reply.ok()) {
      SendStatus(res, reply.status().WithContext(served.name));
    } else {
      if (!reply->output_name.empty()) res.set_header("X-Kiln-Output", reply->output_name);
      res.set_content(std::move(reply->body), reply->content_type);
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  state.metrics.CountPredict(index, res.status < 400, seconds);
}

json DescribeModel(const ServedModel& served) {
  const kiln::Model& model = *served.model;
  const kiln::ModelMetadata& metadata = model.metadata();
  return {
      {"name", served.name},
      {"inputs", DescribeTensors(model.inputs())},
      {"outputs", DescribeTensors(model.outputs())},
      {"opset", model.opset()},
      {"producer", metadata.producer_name + (metadata.producer_version.empty() ? "" : " " + metadata.producer_version)},
      {"tier", kiln::TierPolicyName(served.session->options().tier)},
  };
}

const char* ReasonCode(int http_status) {
  switch (http_status) {
    case 400: return "BAD_REQUEST";
    case 404: return "NOT_FOUND";
    case 405: return "METHOD_NOT_ALLOWED";
    case 413: return "PAYLOAD_TOO_LARGE";
    case 414: return "URI_TOO_LONG";
    case 416: return "RANGE_NOT_SATISFIABLE";
    default: return http_status < 500 ? "CLIENT_ERROR" : "SERVER_ERROR";
  }
}

}  // namespace

void InstallRoutes(httplib::Server& server, const ServingState& state) {
  server.set_payload_max_length(state.options.max_body_bytes);

  server.Post(R"(/v1/models/([^/]+):predict)",
              [&state](const httplib::Request& req, httplib::Response& res) { HandlePredict(state, req, res); });
  server.Get("/v1/models", [&state](const httplib::Request&, httplib::Response& res) {
    json models = json::array();
    for (const ServedModel& served : state.registry.models()) models.push_back(DescribeModel(served));
    res.set_content(json{{"models", std::move(models)}}.dump(), kJson);
  });
  server.Get(R"(/v1/models/([^/:]+))", [&state](const httplib::Request& req, httplib::Response& res) {
    const ServedModel* served = state.registry.Find(req.matches[1].str());
    if (served == nullptr) {
      SendError(res, 404, "NOT_FOUND", "no model named \"" + req.matches[1].str() + "\"");
      return;
    }
    res.set_content(DescribeModel(*served).dump(), kJson);
  });
  server.Get("/healthz", [&state](const httplib::Request&, httplib::Response& res) {
    const bool draining = state.draining.load();
    res.status = draining ? 503 : 200;
    res.set_content(json{{"status", draining ? "draining" : "ok"}}.dump(), kJson);
  });
  server.Get("/metrics", [&state](const httplib::Request&, httplib::Response& res) {
    res.set_content(state.metrics.RenderPrometheus(), "text/plain; version=0.0.4");
  });

  // Errors the library answers by itself (no route, body over the limit,
  // a malformed request line) come with an empty body: give them the same
  // JSON form as ours, and leave ours alone.
  server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    SendError(res, res.status, ReasonCode(res.status), "HTTP " + std::to_string(res.status));
    return httplib::Server::HandlerResponse::Handled;
  }));
  // kiln returns errors as values, and the codecs do not throw; this is the
  // last line for what remains (std::bad_alloc), so that one request's
  // failure is a 500 and never the server's end.
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(res, 500, "INTERNAL", what);
  });
  server.set_logger(
      [&state](const httplib::Request&, const httplib::Response& res) { state.metrics.CountResponse(res.status); });
}

}  // namespace kiln_http
