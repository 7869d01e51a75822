#include "graph/lstm_pattern.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

namespace kiln::graph {
namespace {

// ONNX's LSTM inputs and outputs by position.
enum LstmInput { kX, kW, kR, kB, kSequenceLens, kInitialH, kInitialC, kP };
enum LstmOutput { kY, kYH, kYC };

ValueId InputAt(const Node& node, int i) {
  return static_cast<size_t>(i) < node.inputs.size() ? node.inputs[static_cast<size_t>(i)] : kNoValue;
}
ValueId OutputAt(const Node& node, int i) {
  return static_cast<size_t>(i) < node.outputs.size() ? node.outputs[static_cast<size_t>(i)] : kNoValue;
}

// A float32 constant of exactly `dims`, or null.
const Tensor* FloatConstant(const Graph& graph, ValueId v, const Dims& dims) {
  if (v == kNoValue) return nullptr;
  const Value& value = graph.value(v);
  if (!value.constant || value.constant->dtype() != DType::kFloat32 || value.constant->dims() != dims) return nullptr;
  return &*value.constant;
}

bool SameLetters(const std::string& a, const char* b) {
  const std::string lower(b);
  return a.size() == lower.size() && std::equal(a.begin(), a.end(), lower.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// The activations attribute names the default cell: absent, or sigmoid,
// tanh, tanh for each direction (or once for both).
bool DefaultActivations(const Node& node, int directions) {
  const Attribute* attr = node.FindAttribute("activations");
  if (attr == nullptr) return true;
  if (attr->kind != Attribute::Kind::kStrings) return false;
  const std::vector<std::string>& names = attr->strings;
  if (names.size() != 3 && names.size() != static_cast<size_t>(3 * directions)) return false;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!SameLetters(names[i], i % 3 == 0 ? "sigmoid" : "tanh")) return false;
  }
  return true;
}

// Optional state input: absent, or float32 of rank 3 whose dims do not
// contradict [dirs, batch, hidden].
bool StateFits(const Graph& graph, ValueId v, int directions, int64_t hidden) {
  if (v == kNoValue) return true;
  const Value& value = graph.value(v);
  if (value.dtype != DType::kFloat32 || !value.shape.rank_known || value.shape.dims.size() != 3) return false;
  const Dim& d = value.shape.dims[0];
  const Dim& h = value.shape.dims[2];
  return !(d.is_concrete() && d.size != directions) && !(h.is_concrete() && h.size != hidden);
}

}  // namespace

std::optional<LstmPattern> AsLstm(const Graph& graph, const Node& node) {
  if (node.dead || !node.domain.empty() || node.op_type != "LSTM") return std::nullopt;
  if (node.FindAttribute("output_sequence") != nullptr || node.FindAttribute("clip") != nullptr) return std::nullopt;
  StatusOr<int64_t> layout = node.GetInt("layout", 0);
  StatusOr<int64_t> input_forget = node.GetInt("input_forget", 0);
  StatusOr<int64_t> hidden = node.GetInt("hidden_size", 0);
  StatusOr<std::string> direction = node.GetString("direction", "forward");
  if (!layout.ok() || *layout != 0 || !input_forget.ok() || *input_forget != 0 || !hidden.ok() || *hidden <= 0 ||
      !direction.ok()) {
    return std::nullopt;
  }
  LstmPattern p;
  if (*direction == "reverse") {
    p.reverse = true;
  } else if (*direction == "bidirectional") {
    p.num_directions = 2;
  } else if (*direction != "forward") {
    return std::nullopt;
  }
  if (!DefaultActivations(node, p.num_directions)) return std::nullopt;
  p.hidden_size = *hidden;

  p.x = InputAt(node, kX);
  if (p.x == kNoValue) return std::nullopt;
  const Value& x = graph.value(p.x);
  if (x.dtype != DType::kFloat32 || !x.shape.rank_known || x.shape.dims.size() != 3 || !x.shape.dims[2].is_concrete() ||
      x.shape.dims[2].size <= 0) {
    return std::nullopt;
  }
  p.input_size = x.shape.dims[2].size;
  const int64_t dirs = p.num_directions, gates = 4 * p.hidden_size;
  p.w = InputAt(node, kW);
  p.r = InputAt(node, kR);
  p.b = InputAt(node, kB);
  if (FloatConstant(graph, p.w, {dirs, gates, p.input_size}) == nullptr ||
      FloatConstant(graph, p.r, {dirs, gates, p.hidden_size}) == nullptr) {
    return std::nullopt;
  }
  if (p.b != kNoValue && FloatConstant(graph, p.b, {dirs, 2 * gates}) == nullptr) return std::nullopt;
  if (InputAt(node, kSequenceLens) != kNoValue) return std::nullopt;
  if (const ValueId peepholes = InputAt(node, kP); peepholes != kNoValue) {
    const Tensor* weights = FloatConstant(graph, peepholes, {dirs, 3 * p.hidden_size});
    if (weights == nullptr) return std::nullopt;
    const float* data = weights->data<float>();
    if (!std::all_of(data, data + weights->num_elements(), [](float v) { return v == 0.0f; })) return std::nullopt;
  }
  p.initial_h = InputAt(node, kInitialH);
  p.initial_c = InputAt(node, kInitialC);
  if (!StateFits(graph, p.initial_h, p.num_directions, p.hidden_size) ||
      !StateFits(graph, p.initial_c, p.num_directions, p.hidden_size)) {
    return std::nullopt;
  }
  p.y = OutputAt(node, kY);
  p.y_h = OutputAt(node, kYH);
  p.y_c = OutputAt(node, kYC);
  for (ValueId out : {p.y, p.y_h, p.y_c}) {
    if (out != kNoValue && graph.value(out).dtype != DType::kFloat32) return std::nullopt;
  }
  return p;
}

}  // namespace kiln::graph
