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

#include "tools/npy.h"

namespace kiln::bench {
namespace {

// A JSON value, just enough of it for the manifest. Objects keep member
// order so that inputs come out in the order the generator wrote them.
struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> array;
  // An object's members in file order, as parallel lists: a std::pair with
  // Json inside Json's own definition would need Json complete (std::vector
  // alone does not).
  std::vector<std::string> keys;
  std::vector<Json> values;

  const Json* Member(const std::string& key) const {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return &values[i];
    }
    return nullptr;
  }
};

// Recursive-descent parser over a whole document. Nesting is capped so a
// hostile file cannot exhaust the stack.
class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : text_(text) {}

  StatusOr<Json> ParseDocument() {
    Json value;
    KILN_RETURN_IF_ERROR(ParseValue(value, 0));
    SkipSpace();
    if (pos_ != text_.size()) return Error("trailing characters");
    return value;
  }

 private:
  static constexpr int kMaxDepth = 64;

  Status Error(const std::string& what) const { return InvalidArgument("JSON: ", what, " at offset ", pos_); }

  void SkipSpace() {
    while (pos_ < text_.size() && std::strchr(" \t\r\n", text_[pos_]) != nullptr) ++pos_;
  }

  bool Consume(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  bool ConsumeWord(const char* word) {
    const size_t n = std::strlen(word);
    if (text_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  Status ParseValue(Json& out, int depth) {
    if (depth > kMaxDepth) return Error("nesting too deep");
    SkipSpace();
    if (pos_ >= text_.size()) return Error("unexpected end");
    const char c = text_[pos_];
    if (c == '{') return ParseObject(out, depth);
    if (c == '[') return ParseArray(out, depth);
    if (c == '"') {
      out.kind = Json::Kind::kString;
      return ParseString(out.string);
    }
    if (ConsumeWord("true") || ConsumeWord("false")) {
      out.kind = Json::Kind::kBool;
      out.boolean = c == 't';
      return Status();
    }
    if (ConsumeWord("null")) return Status();
    return ParseNumber(out);
  }

  Status ParseObject(Json& out, int depth) {
    out.kind = Json::Kind::kObject;
    ++pos_;  // '{'
    if (Consume('}')) return Status();
    do {
      SkipSpace();
      std::string key;
      if (pos_ >= text_.size() || text_[pos_] != '"') return Error("expected a member name");
      KILN_RETURN_IF_ERROR(ParseString(key));
      if (!Consume(':')) return Error("expected ':'");
      Json value;
      KILN_RETURN_IF_ERROR(ParseValue(value, depth + 1));
      out.keys.push_back(std::move(key));
      out.values.push_back(std::move(value));
    } while (Consume(','));
    if (!Consume('}')) return Error("expected ',' or '}'");
    return Status();
  }

  Status ParseArray(Json& out, int depth) {
    out.kind = Json::Kind::kArray;
    ++pos_;  // '['
    if (Consume(']')) return Status();
    do {
      Json value;
      KILN_RETURN_IF_ERROR(ParseValue(value, depth + 1));
      out.array.push_back(std::move(value));
    } while (Consume(','));
    if (!Consume(']')) return Error("expected ',' or ']'");
    return Status();
  }

  // Escapes are decoded; \u escapes are written as UTF-8 (surrogate pairs
  // are not combined: the manifest is ASCII in practice).
  Status ParseString(std::string& out) {
    ++pos_;  // '"'
    while (pos_ < text_.size() && text_[pos_] != '"') {
      char c = text_[pos_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) break;
      c = text_[pos_++];
      if (c == 'u') {
        KILN_RETURN_IF_ERROR(AppendUnicodeEscape(out));
        continue;
      }
      static constexpr char kEscaped[] = "\"\\/bfnrt";
      static constexpr char kDecoded[] = "\"\\/\b\f\n\r\t";
      const char* found = std::strchr(kEscaped, c);
      if (c == '\0' || found == nullptr) return Error("bad escape");
      out += kDecoded[found - kEscaped];
    }
    if (pos_ >= text_.size()) return Error("unterminated string");
    ++pos_;  // '"'
    return Status();
  }

  // The four hex digits after a backslash-u, appended as UTF-8.
  Status AppendUnicodeEscape(std::string& out) {
    if (pos_ + 4 > text_.size()) return Error("short \\u escape");
    static constexpr char kHex[] = "0123456789abcdef";
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = text_[pos_++];
      const char* digit = std::strchr(kHex, h >= 'A' && h <= 'F' ? h - 'A' + 'a' : h);
      if (h == '\0' || digit == nullptr) return Error("bad \\u escape");
      code = code << 4 | static_cast<unsigned>(digit - kHex);
    }
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
    return Status();
  }

  Status ParseNumber(Json& out) {
    const size_t start = pos_;
    while (pos_ < text_.size() && std::strchr("+-0123456789.eE", text_[pos_]) != nullptr) ++pos_;
    if (pos_ == start) return Error("unexpected character");
    std::istringstream in(text_.substr(start, pos_ - start));
    in >> out.number;
    if (in.fail()) return Error("bad number");
    out.kind = Json::Kind::kNumber;
    return Status();
  }

  const std::string& text_;
  size_t pos_ = 0;
};

StatusOr<std::string> StringMember(const Json& object, const char* key, size_t index) {
  const Json* value = object.Member(key);
  if (value == nullptr || value->kind != Json::Kind::kString) {
    return InvalidArgument("manifest: case ", index, " needs a string \"", key, "\"");
  }
  return value->string;
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
  JsonParser parser(text);
  StatusOr<Json> parsed = parser.ParseDocument();
  if (!parsed.ok()) return InvalidArgument(path, ": ", parsed.status().message());
  const Json* cases = parsed->Member("cases");
  if (parsed->kind != Json::Kind::kObject || cases == nullptr || cases->kind != Json::Kind::kArray) {
    return InvalidArgument(path, ": expected {\"cases\": [...]}");
  }
  std::vector<ZooCase> out;
  for (size_t i = 0; i < cases->array.size(); ++i) {
    const Json& entry = cases->array[i];
    if (entry.kind != Json::Kind::kObject) return InvalidArgument(path, ": case ", i, " is not an object");
    ZooCase zoo_case;
    KILN_ASSIGN_OR_RETURN(zoo_case.name, StringMember(entry, "name", i));
    KILN_ASSIGN_OR_RETURN(std::string model, StringMember(entry, "model", i));
    zoo_case.model_path = zoo_dir + "/" + model;
    const Json* inputs = entry.Member("inputs");
    if (inputs == nullptr || inputs->kind != Json::Kind::kObject) {
      return InvalidArgument(path, ": case '", zoo_case.name, "' needs an \"inputs\" object");
    }
    for (size_t k = 0; k < inputs->keys.size(); ++k) {
      const std::string& name = inputs->keys[k];
      const Json& file_name = inputs->values[k];
      if (file_name.kind != Json::Kind::kString) {
        return InvalidArgument(path, ": case '", zoo_case.name, "': input '", name, "' must name a file");
      }
      zoo_case.input_paths.emplace_back(name, zoo_dir + "/" + file_name.string);
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
