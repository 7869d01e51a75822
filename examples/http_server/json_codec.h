// The JSON form of predict requests and responses:
//
//   request:  {"inputs": {"NAME": {"shape": [2, 32], "data": [0.5, ...]}},
//              "outputs": ["y"]}                      (optional: which outputs)
//   response: {"outputs": {"y": {"dtype": "float32", "shape": [2, 10],
//                                "data": [...]}}}
//
// "data" is the tensor's elements flattened in row-major order. The element
// type is the one the model declares for that input; a request may state it
// as "dtype" ("float32", "int64", ...), and it must then agree.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <kiln/session.h>
#include <nlohmann/json.hpp>

namespace kiln_http {

struct JsonRequest {
  std::vector<kiln::NamedTensor> inputs;
  std::vector<std::string> output_names;  // empty: all
};

// Parses a request body against the model's declared inputs. Every problem
// (malformed JSON, an unknown input, a dtype the model does not take, a
// data length that is not the shape's element count, a value that does not
// fit the dtype) is InvalidArgument naming it. Inputs the model has but the
// request lacks are left to Session::Run, which names them.
kiln::StatusOr<JsonRequest> DecodeJsonRequest(std::string_view body, const std::vector<kiln::TensorInfo>& model_inputs);

std::string EncodeJsonOutputs(const std::vector<kiln::NamedTensor>& outputs);

// A model's inputs or outputs as [{"name", "dtype", "shape"}], a dim that is
// not fixed given by its symbol (or null).
nlohmann::json DescribeTensors(const std::vector<kiln::TensorInfo>& infos);

}  // namespace kiln_http
