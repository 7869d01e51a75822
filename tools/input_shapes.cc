#include "tools/input_shapes.h"

#include <algorithm>
#include <charconv>

namespace kiln::cli {
namespace {

std::string ShapeText(const Dims& dims) {
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i) out += (i > 0 ? "x" : "") + std::to_string(dims[i]);
  return out;
}

}  // namespace

std::string QuotedNames(const std::vector<TensorInfo>& inputs) {
  std::string names;
  for (const TensorInfo& i : inputs) names += (names.empty() ? "'" : ", '") + i.name + "'";
  return names;
}

std::string FormatShape(const TensorInfo& info) {
  if (!info.rank_known) return "?";
  std::string out = "[";
  for (size_t i = 0; i < info.dims.size(); ++i) {
    if (i > 0) out += ", ";
    const std::string symbol = i < info.dim_names.size() ? info.dim_names[i] : std::string();
    out += info.dims[i] >= 0 ? std::to_string(info.dims[i]) : symbol.empty() ? "?" : symbol;
  }
  return out + "]";
}

StatusOr<Dims> ParseShape(const std::string& text, const std::string& flag) {
  Dims dims;
  size_t start = 0;
  while (true) {
    const size_t end = std::min(text.find('x', start), text.size());
    const char* first = text.data() + start;
    const char* last = text.data() + end;
    int64_t value = -1;
    auto [ptr, ec] = std::from_chars(first, last, value);
    if (first == last || ec != std::errc() || ptr != last || value < 0 || value > kMaxFlagDim) {
      return InvalidArgument(flag, " expects dims like 1x3x224x224 (each in [0, ", kMaxFlagDim, "]), got '", text, "'");
    }
    dims.push_back(value);
    if (end == text.size()) break;
    start = end + 1;
  }
  return dims;
}

StatusOr<std::map<std::string, int64_t>> BindSymbols(const std::vector<TensorInfo>& inputs, const ShapeFlags& flags) {
  for (const auto& [symbol, value] : flags.dims) {
    const bool known = std::any_of(inputs.begin(), inputs.end(), [&](const TensorInfo& i) {
      return std::find(i.dim_names.begin(), i.dim_names.end(), symbol) != i.dim_names.end();
    });
    if (!known) return InvalidArgument("no input has a symbolic dim '", symbol, "'");
  }
  std::map<std::string, int64_t> symbols = flags.dims;
  // Which flag set each symbol, for an error that names both sides.
  std::map<std::string, std::string> set_by;
  for (const auto& [symbol, value] : flags.dims) set_by[symbol] = "--dim " + symbol + "=" + std::to_string(value);

  for (const auto& [name, dims] : flags.shapes) {
    auto input = std::find_if(inputs.begin(), inputs.end(), [&](const TensorInfo& i) { return i.name == name; });
    const std::string flag = "--shape " + name + "=" + ShapeText(dims);
    if (input == inputs.end()) {
      return InvalidArgument(flag, ": the model has no input '", name, "' (its inputs: ", QuotedNames(inputs), ")");
    }
    if (!input->rank_known) continue;  // the flag is all there is to go on
    if (dims.size() != input->dims.size()) {
      return InvalidArgument(flag, ": input '", name, "' has rank ", input->dims.size(), " ", FormatShape(*input),
                             ", the flag gives ", dims.size(), " dims");
    }
    for (size_t d = 0; d < dims.size(); ++d) {
      if (input->dims[d] >= 0) {
        if (dims[d] != input->dims[d]) {
          return InvalidArgument(flag, ": input '", name, "' fixes dim ", d, " at ", input->dims[d], " ",
                                 FormatShape(*input), ", the flag gives ", dims[d]);
        }
        continue;
      }
      const std::string symbol = d < input->dim_names.size() ? input->dim_names[d] : std::string();
      if (symbol.empty()) continue;  // an anonymous dim binds nothing else
      auto [it, inserted] = symbols.emplace(symbol, dims[d]);
      if (inserted) {
        set_by[symbol] = flag;
      } else if (it->second != dims[d]) {
        return InvalidArgument(flag, " sets '", symbol, "' to ", dims[d], ", but ", set_by[symbol], " sets it to ",
                               it->second);
      }
    }
  }
  return symbols;
}

StatusOr<Dims> GeneratedDims(const TensorInfo& input, const std::map<std::string, int64_t>& symbols,
                             const std::map<std::string, Dims>& shapes) {
  if (auto it = shapes.find(input.name); it != shapes.end()) return it->second;
  if (input.is_sequence) {
    return Unsupported("input '", input.name, "' is a sequence of ", DTypeName(input.dtype),
                       " tensors; kiln run reads and generates tensors only (the C++ API takes sequences, see "
                       "kiln/sequence.h)");
  }
  const std::string hint = "; give --input " + input.name + "=FILE.npy or --shape " + input.name + "=DIMS";
  if (!input.rank_known) return InvalidArgument("input '", input.name, "' has an unknown rank", hint);
  Dims dims;
  for (size_t i = 0; i < input.dims.size(); ++i) {
    if (input.dims[i] >= 0) {
      dims.push_back(input.dims[i]);
      continue;
    }
    const std::string symbol = i < input.dim_names.size() ? input.dim_names[i] : std::string();
    if (symbol.empty()) {
      return InvalidArgument("input '", input.name, "' has an unknown dim ", i, " in ", FormatShape(input), hint);
    }
    auto it = symbols.find(symbol);
    if (it == symbols.end()) {
      return InvalidArgument("input '", input.name, "' has symbolic dim '", symbol, "' in ", FormatShape(input), hint,
                             " or --dim ", symbol, "=VALUE");
    }
    dims.push_back(it->second);
  }
  return dims;
}

}  // namespace kiln::cli
