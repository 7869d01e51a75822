#include "kernels/recurrent_spec.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "kernels/fast_math.h"

namespace kiln::kernels {
namespace {

using Kind = RecurrentActivation::Kind;

struct ActivationInfo {
  const char* name;
  Kind kind;
  bool takes_alpha, takes_beta;
  // The defaults of the ONNX operators of the same name.
  float default_alpha, default_beta;
};

constexpr ActivationInfo kActivations[] = {
    {"Relu", Kind::kRelu, false, false, 0.0f, 0.0f},
    {"Tanh", Kind::kTanh, false, false, 0.0f, 0.0f},
    {"Sigmoid", Kind::kSigmoid, false, false, 0.0f, 0.0f},
    {"Affine", Kind::kAffine, true, true, 1.0f, 0.0f},
    {"LeakyRelu", Kind::kLeakyRelu, true, false, 0.01f, 0.0f},
    {"ThresholdedRelu", Kind::kThresholdedRelu, true, false, 1.0f, 0.0f},
    {"ScaledTanh", Kind::kScaledTanh, true, true, 1.0f, 1.0f},
    {"HardSigmoid", Kind::kHardSigmoid, true, true, 0.2f, 0.5f},
    {"Elu", Kind::kElu, true, false, 1.0f, 0.0f},
    {"Softsign", Kind::kSoftsign, false, false, 0.0f, 0.0f},
    {"Softplus", Kind::kSoftplus, false, false, 0.0f, 0.0f},
};

// Exporters disagree on the case ("sigmoid", "Sigmoid"); ONNX Runtime
// accepts any, and so does kiln.
const ActivationInfo* FindActivation(const std::string& name) {
  for (const ActivationInfo& info : kActivations) {
    const std::string candidate = info.name;
    if (candidate.size() == name.size() &&
        std::equal(candidate.begin(), candidate.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        })) {
      return &info;
    }
  }
  return nullptr;
}

std::vector<std::string> DefaultActivationNames(RecurrentCell cell) {
  switch (cell) {
    case RecurrentCell::kRnn: return {"Tanh"};
    case RecurrentCell::kGru: return {"Sigmoid", "Tanh"};
    case RecurrentCell::kLstm: return {"Sigmoid", "Tanh", "Tanh"};
  }
  return {};
}

}  // namespace

const char* RecurrentCellOp(RecurrentCell cell) {
  switch (cell) {
    case RecurrentCell::kRnn: return "RNN";
    case RecurrentCell::kGru: return "GRU";
    case RecurrentCell::kLstm: return "LSTM";
  }
  return "?";
}

int RecurrentGateCount(RecurrentCell cell) {
  switch (cell) {
    case RecurrentCell::kRnn: return 1;
    case RecurrentCell::kGru: return 3;
    case RecurrentCell::kLstm: return 4;
  }
  return 0;
}

int RecurrentActivationCount(RecurrentCell cell) { return static_cast<int>(DefaultActivationNames(cell).size()); }

void RecurrentActivation::Apply(float* x, int64_t n) const {
  // One loop per kind, so that each vectorises on its own. `omp simd`: at
  // -O2 GCC's cheap cost model leaves these loops scalar (n is unknown);
  // each element's result is the same either way.
  const float a = alpha, b = beta;
  switch (kind) {
    case Kind::kRelu:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
      return;
    case Kind::kTanh:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = FastTanh(x[i]);
      return;
    case Kind::kSigmoid:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = FastSigmoid(x[i]);
      return;
    case Kind::kAffine:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = a * x[i] + b;
      return;
    case Kind::kLeakyRelu:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= 0.0f ? x[i] : a * x[i];
      return;
    case Kind::kThresholdedRelu:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > a ? x[i] : 0.0f;
      return;
    case Kind::kScaledTanh:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = a * FastTanh(b * x[i]);
      return;
    case Kind::kHardSigmoid:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = std::min(1.0f, std::max(0.0f, a * x[i] + b));
      return;
    case Kind::kElu:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= 0.0f ? x[i] : a * (FastExp(x[i]) - 1.0f);
      return;
    case Kind::kSoftsign:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::fabs(x[i]));
      return;
    case Kind::kSoftplus:
// log(1 + e^x) = max(x, 0) + log(1 + e^-|x|), which cannot overflow.
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = std::max(x[i], 0.0f) + std::log1p(FastExp(-std::fabs(x[i])));
      return;
  }
}

bool RecurrentSpec::default_activations() const {
  const std::vector<std::string> names = DefaultActivationNames(cell);
  for (int d = 0; d < num_directions(); ++d) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (activation(d, static_cast<int>(i)).kind != FindActivation(names[i])->kind) return false;
    }
  }
  return true;
}

StatusOr<RecurrentSpec> ParseRecurrentSpec(const graph::Node& node, RecurrentCell cell) {
  const char* op = RecurrentCellOp(cell);
  RecurrentSpec spec;
  spec.cell = cell;

  KILN_ASSIGN_OR_RETURN(std::string direction, node.GetString("direction", "forward"));
  if (direction == "forward") {
    spec.direction = RecurrentDirection::kForward;
  } else if (direction == "reverse") {
    spec.direction = RecurrentDirection::kReverse;
  } else if (direction == "bidirectional") {
    spec.direction = RecurrentDirection::kBidirectional;
  } else {
    return InvalidModel(op, ": direction '", direction, "' is not one of forward, reverse, bidirectional");
  }

  KILN_ASSIGN_OR_RETURN(spec.hidden_size, node.GetInt("hidden_size", 0));
  if (node.FindAttribute("hidden_size") != nullptr && spec.hidden_size <= 0) {
    return InvalidModel(op, ": hidden_size must be positive, got ", spec.hidden_size);
  }
  KILN_ASSIGN_OR_RETURN(spec.layout, node.GetInt("layout", 0));
  if (spec.layout != 0 && spec.layout != 1) return InvalidModel(op, ": layout must be 0 or 1, got ", spec.layout);
  if (node.FindAttribute("clip") != nullptr) {
    KILN_ASSIGN_OR_RETURN(spec.clip, node.GetFloat("clip", 0.0f));
    if (!(spec.clip > 0.0f)) return InvalidModel(op, ": clip must be positive, got ", spec.clip);
  }
  if (cell == RecurrentCell::kGru) {
    KILN_ASSIGN_OR_RETURN(int64_t lbr, node.GetInt("linear_before_reset", 0));
    spec.linear_before_reset = lbr != 0;
  }
  if (cell == RecurrentCell::kLstm) {
    KILN_ASSIGN_OR_RETURN(int64_t input_forget, node.GetInt("input_forget", 0));
    spec.input_forget = input_forget != 0;
  }
  if (node.FindAttribute("output_sequence") != nullptr) {
    return Unsupported(op, ": the output_sequence attribute (opset 1) is not supported");
  }

  const int per_direction = RecurrentActivationCount(cell);
  const int directions = spec.num_directions();
  std::vector<std::string> names;
  bool shared_by_directions = false;
  if (const graph::Attribute* attr = node.FindAttribute("activations")) {
    if (attr->kind != graph::Attribute::Kind::kStrings) {
      return InvalidModel(op, ": activations must be a list of strings, got ", graph::AttributeKindName(attr->kind));
    }
    names = attr->strings;
    // A bidirectional node given one direction's list (and its alphas and
    // betas) uses it for both, as ONNX Runtime does.
    if (directions == 2 && static_cast<int>(names.size()) == per_direction) {
      shared_by_directions = true;
    } else if (static_cast<int>(names.size()) != per_direction * directions) {
      return InvalidModel(op, ": activations lists ", attr->strings.size(), " functions, expected ",
                          per_direction * directions, " (", per_direction, " per direction, ", directions,
                          directions == 1 ? " direction)" : " directions)");
    }
  } else {
    for (int d = 0; d < directions; ++d) {
      const std::vector<std::string> defaults = DefaultActivationNames(cell);
      names.insert(names.end(), defaults.begin(), defaults.end());
    }
  }
  KILN_ASSIGN_OR_RETURN(std::vector<float> alphas, node.GetFloats("activation_alpha"));
  KILN_ASSIGN_OR_RETURN(std::vector<float> betas, node.GetFloats("activation_beta"));
  // The alphas (betas) are consumed in order by the functions that take
  // one; a function past the end of the list gets its operator's default.
  size_t next_alpha = 0, next_beta = 0;
  for (const std::string& name : names) {
    const ActivationInfo* info = FindActivation(name);
    if (info == nullptr) {
      return InvalidModel(op, ": unknown activation function '", name,
                          "' (known: Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, "
                          "HardSigmoid, Elu, Softsign, Softplus)");
    }
    RecurrentActivation activation;
    activation.kind = info->kind;
    activation.alpha = info->default_alpha;
    activation.beta = info->default_beta;
    if (info->takes_alpha && next_alpha < alphas.size()) activation.alpha = alphas[next_alpha++];
    if (info->takes_beta && next_beta < betas.size()) activation.beta = betas[next_beta++];
    spec.activations.push_back(activation);
  }
  if (shared_by_directions) {
    const std::vector<RecurrentActivation> forward = spec.activations;
    spec.activations.insert(spec.activations.end(), forward.begin(), forward.end());
  }
  return spec;
}

}  // namespace kiln::kernels
