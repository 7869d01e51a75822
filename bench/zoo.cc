#include "bench/zoo.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tools/npy.h"

namespace kiln::bench {
namespace {

// Objects keep member order, so that inputs come out in the order the
// generator wrote them.
using Json = nlohmann::ordered_json;

StatusOr<Json> ParseJson(const std::string& text) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    return InvalidArgument("JSON: ", e.what());
  }
}

StatusOr<std::string> StringMember(const Json& object, const char* key, size_t index) {
  const auto value = object.find(key);
  if (value == object.end() || !value->is_string()) {
    return InvalidArgument("manifest: case ", index, " needs a string \"", key, "\"");
  }
  return value->get<std::string>();
}

// "[0, 3, 5]" for flat index `i` of a tensor with `dims`.
std::string IndexToString(int64_t i, const Dims& dims) {
  std::vector<int64_t> index(dims.size());
  for (size_t d = dims.size(); d-- > 0;) {
    if (dims[d] > 0) {
      index[d] = i % dims[d];
      i /= dims[d];
    }
  }
  std::string out = "[";
  for (size_t d = 0; d < index.size(); ++d) out += (d ? ", " : "") + std::to_string(index[d]);
  return out + "]";
}

}  // namespace

StatusOr<std::vector<ZooCase>> ReadZooManifest(const std::string& zoo_dir) {
  const std::string path = zoo_dir + "/manifest.json";
  std::ifstream file(path, std::ios::binary);
  if (!file) return NotFound("cannot open ", path);
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  StatusOr<Json> parsed = ParseJson(text);
  if (!parsed.ok()) return InvalidArgument(path, ": ", parsed.status().message());
  if (!parsed->is_object() || !parsed->contains("cases") || !(*parsed)["cases"].is_array()) {
    return InvalidArgument(path, ": expected {\"cases\": [...]}");
  }
  const Json& cases = (*parsed)["cases"];
  std::vector<ZooCase> out;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Json& entry = cases[i];
    if (!entry.is_object()) return InvalidArgument(path, ": case ", i, " is not an object");
    ZooCase zoo_case;
    KILN_ASSIGN_OR_RETURN(zoo_case.name, StringMember(entry, "name", i));
    KILN_ASSIGN_OR_RETURN(std::string model, StringMember(entry, "model", i));
    zoo_case.model_path = zoo_dir + "/" + model;
    const auto inputs = entry.find("inputs");
    if (inputs == entry.end() || !inputs->is_object()) {
      return InvalidArgument(path, ": case '", zoo_case.name, "' needs an \"inputs\" object");
    }
    for (const auto& [name, file_name] : inputs->items()) {
      if (!file_name.is_string()) {
        return InvalidArgument(path, ": case '", zoo_case.name, "': input '", name, "' must name a file");
      }
      zoo_case.input_paths.emplace_back(name, zoo_dir + "/" + file_name.get<std::string>());
    }
    out.push_back(std::move(zoo_case));
  }
  return out;
}

StatusOr<std::vector<NamedTensor>> LoadZooInputs(const ZooCase& zoo_case) {
  std::vector<NamedTensor> inputs;
  for (const auto& [name, path] : zoo_case.input_paths) {
    KILN_ASSIGN_OR_RETURN(Tensor tensor, tools::ReadNpy(path));
    inputs.push_back({name, std::move(tensor)});
  }
  return inputs;
}

std::string ZooOutputDirName(const std::string& case_name) {
  std::string out = case_name;
  std::replace(out.begin(), out.end(), '/', '_');
  std::replace(out.begin(), out.end(), ':', '_');
  return out;
}

StatusOr<std::vector<Tensor>> ReadOrtOutputs(const std::string& ort_dir, const std::string& case_name,
                                             size_t num_outputs) {
  const std::string dir = ort_dir + "/" + ZooOutputDirName(case_name);
  std::vector<Tensor> outputs;
  for (size_t i = 0; i < num_outputs; ++i) {
    const std::string path = dir + "/output_" + std::to_string(i) + ".npy";
    StatusOr<Tensor> tensor = tools::ReadNpy(path);
    if (!tensor.ok()) {
      if (i == 0 && tensor.status().code() == StatusCode::kNotFound) return tensor.status();
      return Internal("ONNX Runtime output ", path, ": ", tensor.status().message());
    }
    outputs.push_back(std::move(tensor).value());
  }
  return outputs;
}

Closeness CompareOutputs(const std::vector<Tensor>& expected, const std::vector<Tensor>& actual, double rtol,
                         double atol) {
  Closeness result;
  auto fail = [&result](const std::string& why) {
    result.ok = false;
    result.max_abs_diff = std::numeric_limits<double>::infinity();
    result.max_rel_diff = std::numeric_limits<double>::infinity();
    result.worst = why;
    return result;
  };
  if (expected.size() != actual.size()) {
    return fail("expected " + std::to_string(expected.size()) + " outputs, got " + std::to_string(actual.size()));
  }
  const double rel_floor = rtol > 0 ? atol / rtol : 0;
  double worst_excess = 0;  // largest |diff| / (atol + rtol * |expected|) seen
  for (size_t o = 0; o < expected.size(); ++o) {
    const Tensor& e = expected[o];
    const Tensor& a = actual[o];
    const std::string where = "output " + std::to_string(o);
    if (e.dtype() != a.dtype() || e.dims() != a.dims()) {
      return fail(where + ": expected " + DTypeName(e.dtype()) + " " + DimsToString(e.dims()) + ", got " +
                  DTypeName(a.dtype()) + " " + DimsToString(a.dims()));
    }
    if (e.dtype() != DType::kFloat32 && e.dtype() != DType::kFloat64) {
      if (std::memcmp(e.raw_data(), a.raw_data(), e.byte_size()) != 0) return fail(where + ": values differ");
      continue;
    }
    for (int64_t i = 0; i < e.num_elements(); ++i) {
      const double x = e.dtype() == DType::kFloat32 ? double{e.data<float>()[i]} : e.data<double>()[i];
      const double y = a.dtype() == DType::kFloat32 ? double{a.data<float>()[i]} : a.data<double>()[i];
      if (x == y) continue;  // also equal infinities
      const std::string at = where + " " + IndexToString(i, e.dims());
      if (std::isnan(x) || std::isnan(y)) {
        if (std::isnan(x) && std::isnan(y)) continue;
        return fail(at + ": expected " + std::to_string(x) + ", got " + std::to_string(y));
      }
      const double diff = std::fabs(x - y);
      if (!std::isfinite(diff)) {
        return fail(at + ": expected " + std::to_string(x) + ", got " + std::to_string(y));
      }
      result.max_abs_diff = std::max(result.max_abs_diff, diff);
      result.max_rel_diff = std::max(result.max_rel_diff, diff / std::max(std::fabs(x), rel_floor));
      const double excess = diff / (atol + rtol * std::fabs(x));
      if (excess > worst_excess) {
        worst_excess = excess;
        if (excess > 1) {
          std::ostringstream s;
          s << at << ": expected " << x << ", got " << y;
          result.worst = s.str();
        }
      }
    }
  }
  result.ok = worst_excess <= 1;
  return result;
}

std::string DescribeMismatch(const Closeness& closeness, const std::string& what, double rtol, double atol) {
  std::ostringstream s;
  s << what << " disagree: max |diff| " << closeness.max_abs_diff << " (max rel " << closeness.max_rel_diff
    << "), worst at " << closeness.worst << " (rtol " << rtol << ", atol " << atol << ")";
  return s.str();
}

}  // namespace kiln::bench
