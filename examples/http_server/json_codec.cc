#include "json_codec.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>

namespace kiln_http {
namespace {

using nlohmann::json;

kiln::StatusOr<kiln::DType> DTypeFromName(const std::string& name) {
  for (kiln::DType dtype : {kiln::DType::kFloat32, kiln::DType::kFloat64, kiln::DType::kInt64, kiln::DType::kInt32,
                            kiln::DType::kInt16, kiln::DType::kInt8, kiln::DType::kUint8, kiln::DType::kBool}) {
    if (name == kiln::DTypeName(dtype)) return dtype;
  }
  return kiln::InvalidArgument("unknown dtype \"", name, "\"");
}

// Converts one JSON number to T, refusing what T cannot hold exactly
// (a fraction for an integer type, an out-of-range integer): a silently
// truncated input would give a wrong answer instead of an error.
template <typename T>
kiln::Status StoreElement(const json& value, T* out) {
  if constexpr (std::is_floating_point_v<T>) {
    if (!value.is_number()) return kiln::InvalidArgument("expected a number, got ", value.type_name());
    *out = static_cast<T>(value.get<double>());
  } else if constexpr (std::is_same_v<T, bool>) {
    if (value.is_boolean()) {
      *out = value.get<bool>();
    } else if (value.is_number_integer() && (value.get<int64_t>() == 0 || value.get<int64_t>() == 1)) {
      *out = value.get<int64_t>() == 1;
    } else {
      return kiln::InvalidArgument("expected true, false, 0 or 1, got ", value.dump());
    }
  } else {
    if (value.is_number_unsigned()) {
      const uint64_t v = value.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
        return kiln::InvalidArgument(v, " does not fit ", kiln::DTypeName(kiln::DTypeOf<T>()));
      }
      *out = static_cast<T>(v);
    } else if (value.is_number_integer()) {
      const int64_t v = value.get<int64_t>();
      if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          (v > 0 && static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
        return kiln::InvalidArgument(v, " does not fit ", kiln::DTypeName(kiln::DTypeOf<T>()));
      }
      *out = static_cast<T>(v);
    } else {
      return kiln::InvalidArgument("expected an integer, got ", value.dump());
    }
  }
  return kiln::Status::Ok();
}

template <typename T>
kiln::Status FillTensor(const json& data, kiln::Tensor& tensor) {
  T* out = tensor.data<T>();
  for (size_t i = 0; i < data.size(); ++i) {
    kiln::Status status = StoreElement<T>(data[i], &out[i]);
    if (!status.ok()) return status.WithContext("data[" + std::to_string(i) + "]");
  }
  return kiln::Status::Ok();
}

kiln::Status Fill(const json& data, kiln::Tensor& tensor) {
  switch (tensor.dtype()) {
    case kiln::DType::kFloat32: return FillTensor<float>(data, tensor);
    case kiln::DType::kFloat64: return FillTensor<double>(data, tensor);
    case kiln::DType::kInt64: return FillTensor<int64_t>(data, tensor);
    case kiln::DType::kInt32: return FillTensor<int32_t>(data, tensor);
    case kiln::DType::kInt16: return FillTensor<int16_t>(data, tensor);
    case kiln::DType::kInt8: return FillTensor<int8_t>(data, tensor);
    case kiln::DType::kUint8: return FillTensor<uint8_t>(data, tensor);
    case kiln::DType::kBool: return FillTensor<bool>(data, tensor);
    case kiln::DType::kUndefined:
    case kiln::DType::kSequence: break;
  }
  return kiln::InvalidArgument("cannot read data of dtype ", kiln::DTypeName(tensor.dtype()));
}

kiln::StatusOr<kiln::Tensor> DecodeTensor(const json& spec, kiln::DType model_dtype) {
  if (!spec.is_object()) return kiln::InvalidArgument("expected an object with \"shape\" and \"data\"");
  for (const auto& [key, unused] : spec.items()) {
    if (key != "shape" && key != "data" && key != "dtype") return kiln::InvalidArgument("unknown field \"", key, "\"");
  }
  if (auto it = spec.find("dtype"); it != spec.end()) {
    if (!it->is_string()) return kiln::InvalidArgument("\"dtype\" must be a string");
    kiln::StatusOr<kiln::DType> dtype = DTypeFromName(it->get<std::string>());
    if (!dtype.ok()) return dtype.status();
    if (*dtype != model_dtype) {
      return kiln::InvalidArgument("dtype ", kiln::DTypeName(*dtype), " given, the model takes ",
                                   kiln::DTypeName(model_dtype));
    }
  }
  auto shape_it = spec.find("shape");
  if (shape_it == spec.end() || !shape_it->is_array()) return kiln::InvalidArgument("\"shape\" must be an array");
  kiln::Dims dims;
  for (const json& dim : *shape_it) {
    if (!dim.is_number_integer() || dim.get<int64_t>() < 0) {
      return kiln::InvalidArgument("\"shape\" must hold non-negative integers, got ", dim.dump());
    }
    dims.push_back(dim.get<int64_t>());
  }
  auto data_it = spec.find("data");
  if (data_it == spec.end() || !data_it->is_array()) return kiln::InvalidArgument("\"data\" must be a flat array");
  // A shape too large to hold is the request's fault (400), not a server
  // out of memory (CheckedNumElements says ResourceExhausted).
  kiln::StatusOr<int64_t> count = kiln::CheckedNumElements(dims, model_dtype);
  if (!count.ok()) return kiln::InvalidArgument(count.status().message());
  if (static_cast<uint64_t>(*count) != data_it->size()) {
    return kiln::InvalidArgument("shape ", kiln::DimsToString(dims), " holds ", *count, " elements, \"data\" has ",
                                 data_it->size());
  }
  kiln::StatusOr<kiln::Tensor> tensor = kiln::Tensor::Allocate(model_dtype, dims);
  if (!tensor.ok()) return tensor.status();
  kiln::Status filled = Fill(*data_it, *tensor);
  if (!filled.ok()) return filled;
  return tensor;
}

// The double whose shortest decimal form is the float's shortest one, so
// that 0.1f prints as 0.1 rather than 0.10000000149011612: a third of the
// bytes, and it still reads back as the same float.
double ShortestDouble(float value) {
  char text[32];
  const std::to_chars_result end = std::to_chars(text, text + sizeof(text) - 1, value);
  *end.ptr = '\0';
  return std::strtod(text, nullptr);
}

template <typename T>
json DataArray(const kiln::Tensor& tensor) {
  json data = json::array();
  const T* values = tensor.data<T>();
  for (int64_t i = 0; i < tensor.num_elements(); ++i) {
    if constexpr (std::is_floating_point_v<T>) {
      // JSON has no NaN or infinity; null keeps the position.
      if (!std::isfinite(values[i])) {
        data.push_back(nullptr);
        continue;
      }
    }
    if constexpr (std::is_same_v<T, float>) {
      data.push_back(ShortestDouble(values[i]));
    } else {
      data.push_back(values[i]);
    }
  }
  return data;
}

json DataArrayOf(const kiln::Tensor& tensor) {
  switch (tensor.dtype()) {
    case kiln::DType::kFloat32: return DataArray<float>(tensor);
    case kiln::DType::kFloat64: return DataArray<double>(tensor);
    case kiln::DType::kInt64: return DataArray<int64_t>(tensor);
    case kiln::DType::kInt32: return DataArray<int32_t>(tensor);
    case kiln::DType::kInt16: return DataArray<int16_t>(tensor);
    case kiln::DType::kInt8: return DataArray<int8_t>(tensor);
    case kiln::DType::kUint8: return DataArray<uint8_t>(tensor);
    case kiln::DType::kBool: return DataArray<bool>(tensor);
    case kiln::DType::kUndefined:
    case kiln::DType::kSequence: break;
  }
  return json::array();
}

}  // namespace

kiln::StatusOr<JsonRequest> DecodeJsonRequest(std::string_view body,
                                              const std::vector<kiln::TensorInfo>& model_inputs) {
  // The non-throwing parse: a malformed body is a value, not an exception.
  const json request = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) return kiln::InvalidArgument("the body is not valid JSON");
  if (!request.is_object()) return kiln::InvalidArgument("the body must be a JSON object");
  for (const auto& [key, unused] : request.items()) {
    if (key != "inputs" && key != "outputs") return kiln::InvalidArgument("unknown field \"", key, "\"");
  }
  auto inputs_it = request.find("inputs");
  if (inputs_it == request.end() || !inputs_it->is_object()) {
    return kiln::InvalidArgument("\"inputs\" must be an object of input name to {\"shape\", \"data\"}");
  }

  JsonRequest decoded;
  for (const auto& [name, spec] : inputs_it->items()) {
    const kiln::TensorInfo* info = nullptr;
    for (const kiln::TensorInfo& candidate : model_inputs) {
      if (candidate.name == name) info = &candidate;
    }
    if (info == nullptr) return kiln::InvalidArgument("the model has no input \"", name, "\"");
    kiln::StatusOr<kiln::Tensor> tensor = DecodeTensor(spec, info->dtype);
    if (!tensor.ok()) return tensor.status().WithContext("input \"" + name + "\"");
    decoded.inputs.push_back({name, std::move(*tensor)});
  }

  if (auto outputs_it = request.find("outputs"); outputs_it != request.end()) {
    if (!outputs_it->is_array()) return kiln::InvalidArgument("\"outputs\" must be an array of output names");
    for (const json& name : *outputs_it) {
      if (!name.is_string()) return kiln::InvalidArgument("\"outputs\" must be an array of output names");
      decoded.output_names.push_back(name.get<std::string>());
    }
  }
  return decoded;
}

std::string EncodeJsonOutputs(const std::vector<kiln::NamedTensor>& outputs) {
  json encoded = json::object();
  for (const kiln::NamedTensor& output : outputs) {
    encoded[output.name] = {
        {"dtype", kiln::DTypeName(output.tensor.dtype())},
        {"shape", output.tensor.dims()},
        {"data", DataArrayOf(output.tensor)},
    };
  }
  return json{{"outputs", std::move(encoded)}}.dump();
}

nlohmann::json DescribeTensors(const std::vector<kiln::TensorInfo>& infos) {
  json described = json::array();
  for (const kiln::TensorInfo& info : infos) {
    json shape = nullptr;  // rank unknown
    if (info.rank_known) {
      shape = json::array();
      for (size_t i = 0; i < info.dims.size(); ++i) {
        if (info.dims[i] >= 0) {
          shape.push_back(info.dims[i]);
        } else if (i < info.dim_names.size() && !info.dim_names[i].empty()) {
          shape.push_back(info.dim_names[i]);
        } else {
          shape.push_back(nullptr);
        }
      }
    }
    described.push_back({{"name", info.name}, {"dtype", kiln::DTypeName(info.dtype)}, {"shape", std::move(shape)}});
  }
  return described;
}

}  // namespace kiln_http
