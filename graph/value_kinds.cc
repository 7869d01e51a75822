#include "graph/value_kinds.h"

#include <string_view>

#include "graph/onnx_dtype.h"

namespace kiln::graph {
namespace {

bool IsTensorKind(ValueKind kind) { return kind == ValueKind::kTensor; }

void SetOutput(Graph& graph, const Node& node, size_t index, ValueKind kind, DType dtype) {
  if (index >= node.outputs.size() || node.outputs[index] == kNoValue) return;
  Value& v = graph.value(node.outputs[index]);
  if (v.constant) return;
  // A declared kind (graph output, value_info) stays: an optional the
  // model declares may hold the sequence the op makes.
  if (v.kind == ValueKind::kTensor) v.kind = kind;
  if (dtype != DType::kUndefined) v.dtype = dtype;
  if (kind != ValueKind::kTensor) v.shape = ShapeInfo::Unknown();
}

const Value* InputValue(const Graph& graph, const Node& node, size_t index) {
  if (index >= node.num_explicit_inputs() || node.inputs[index] == kNoValue) return nullptr;
  return &graph.value(node.inputs[index]);
}

DType InputDType(const Graph& graph, const Node& node, size_t index) {
  const Value* v = InputValue(graph, node, index);
  return v != nullptr ? v->dtype : DType::kUndefined;
}

// Passes the enclosing graph's kinds into the body's outer-scope values.
void RefreshCaptures(Graph& graph, Node& node) {
  size_t next = node.num_explicit_inputs();
  for (const auto& [name, body] : MutableSubgraphs(node)) {
    for (ValueId inner : body->outer_scope_values()) {
      if (next >= node.inputs.size()) return;
      const Value& outer = graph.value(node.inputs[next++]);
      Value& v = body->value(inner);
      v.kind = outer.kind;
      if (v.dtype == DType::kUndefined) v.dtype = outer.dtype;
    }
  }
}

void PropagateNode(Graph& graph, NodeId id) {
  Node& node = graph.node(id);
  if (!node.domain.empty()) return;
  const std::string& op = node.op_type;
  if (node.has_subgraphs()) {
    RefreshCaptures(graph, node);
    if (op == "Loop") {
      if (auto it = node.attributes.find("body"); it != node.attributes.end() && it->second.g) {
        Graph& body = *it->second.g;
        // Loop-carried values enter the body as its inputs 2..; an untyped
        // one takes the Loop's initial value's kind.
        for (size_t k = 2; k < node.num_explicit_inputs() && k < body.inputs().size(); ++k) {
          const Value* initial = InputValue(graph, node, k);
          Value& formal = body.value(body.inputs()[k]);
          if (initial == nullptr || IsTensorKind(initial->kind) || !IsTensorKind(formal.kind)) continue;
          formal.kind = initial->kind;
          if (formal.dtype == DType::kUndefined) formal.dtype = initial->dtype;
        }
      }
    }
    for (const auto& [name, body] : MutableSubgraphs(node)) PropagateValueKinds(*body);
    if (op == "If") {
      for (const char* branch : {"then_branch", "else_branch"}) {
        auto it = node.attributes.find(branch);
        if (it == node.attributes.end() || !it->second.g) continue;
        const Graph& body = *it->second.g;
        for (size_t o = 0; o < body.outputs().size() && o < node.outputs.size(); ++o) {
          const Value& out = body.value(body.outputs()[o]);
          if (!IsTensorKind(out.kind)) SetOutput(graph, node, o, out.kind, out.dtype);
        }
      }
    } else if (op == "SequenceMap") {
      // Output j is the sequence of the body's j-th outputs.
      auto it = node.attributes.find("body");
      if (it == node.attributes.end() || !it->second.g) return;
      const Graph& body = *it->second.g;
      for (size_t o = 0; o < body.outputs().size(); ++o) {
        SetOutput(graph, node, o, ValueKind::kSequence, body.value(body.outputs()[o]).dtype);
      }
    } else if (op == "Loop") {
      auto it = node.attributes.find("body");
      if (it == node.attributes.end() || !it->second.g) return;
      const Graph& body = *it->second.g;
      // Body outputs: the condition, then the loop-carried values (the
      // node's first outputs), then scan outputs (always tensors).
      const size_t carried = node.num_explicit_inputs() >= 2 ? node.num_explicit_inputs() - 2 : 0;
      for (size_t k = 0; k < carried && 1 + k < body.outputs().size(); ++k) {
        const Value& out = body.value(body.outputs()[1 + k]);
        if (!IsTensorKind(out.kind)) SetOutput(graph, node, k, out.kind, out.dtype);
      }
    }
    return;
  }
  const Value* in0 = InputValue(graph, node, 0);
  const DType dtype0 = InputDType(graph, node, 0);
  if (op == "SequenceEmpty") {
    auto code = node.GetInt("dtype", 1);
    std::optional<DType> dtype = code.ok() ? DTypeFromOnnxCode(*code) : std::nullopt;
    SetOutput(graph, node, 0, ValueKind::kSequence, dtype.value_or(DType::kUndefined));
  } else if (op == "SequenceConstruct" || op == "SequenceInsert" || op == "SequenceErase" || op == "SplitToSequence") {
    SetOutput(graph, node, 0, ValueKind::kSequence, dtype0);
  } else if (op == "SequenceAt" || op == "ConcatFromSequence") {
    SetOutput(graph, node, 0, ValueKind::kTensor, dtype0);
  } else if (op == "SequenceLength") {
    SetOutput(graph, node, 0, ValueKind::kTensor, DType::kInt64);
  } else if (op == "OptionalHasElement") {
    SetOutput(graph, node, 0, ValueKind::kTensor, DType::kBool);
  } else if (op == "Optional") {
    if (in0 != nullptr) {
      const bool sequence = in0->kind == ValueKind::kSequence || in0->kind == ValueKind::kOptionalSequence;
      SetOutput(graph, node, 0, sequence ? ValueKind::kOptionalSequence : ValueKind::kOptionalTensor, dtype0);
    } else if (const Attribute* type = node.FindAttribute("type");
               type != nullptr && type->kind == Attribute::Kind::kString) {
      // No input: an empty optional of the type the attribute names.
      ValueKind kind = ValueKind::kTensor;
      DType dtype = DType::kUndefined;
      if (ParseTypeNotation(type->s, kind, dtype)) {
        const bool sequence = kind == ValueKind::kSequence || kind == ValueKind::kOptionalSequence;
        SetOutput(graph, node, 0, sequence ? ValueKind::kOptionalSequence : ValueKind::kOptionalTensor, dtype);
      }
    }
  } else if (op == "OptionalGetElement") {
    if (in0 != nullptr) {
      const bool sequence = in0->kind == ValueKind::kSequence || in0->kind == ValueKind::kOptionalSequence;
      if (sequence) {
        SetOutput(graph, node, 0, ValueKind::kSequence, dtype0);
      } else {
        Value* out = node.outputs.empty() || node.outputs[0] == kNoValue ? nullptr : &graph.value(node.outputs[0]);
        if (out != nullptr && !out->constant) {
          out->kind = ValueKind::kTensor;
          if (out->dtype == DType::kUndefined) out->dtype = dtype0;
        }
      }
    }
  } else if (op == "Identity") {
    if (in0 != nullptr && !IsTensorKind(in0->kind)) SetOutput(graph, node, 0, in0->kind, dtype0);
  }
}

// The ops that read sequences or optionals, and which of their inputs may
// be one (-1: any).
int SequenceInputOf(const Node& node) {
  static constexpr std::pair<std::string_view, int> kReaders[] = {
      {"SequenceInsert", 0},     {"SequenceErase", 0}, {"SequenceAt", 0},         {"SequenceLength", 0},
      {"ConcatFromSequence", 0}, {"Optional", 0},      {"OptionalHasElement", 0}, {"OptionalGetElement", 0},
      {"Identity", 0},           {"Loop", -1},         {"SequenceMap", -1},
  };
  if (!node.domain.empty()) return -2;
  for (const auto& [op, input] : kReaders) {
    if (node.op_type == op) return input;
  }
  return -2;
}

}  // namespace

void PropagateValueKinds(Graph& graph) {
  auto order = graph.TopologicalOrder();
  if (!order.ok()) return;
  for (NodeId id : *order) PropagateNode(graph, id);
}

Status CheckValueKindUses(const Graph& graph) {
  for (size_t n = 0; n < graph.num_nodes(); ++n) {
    const Node& node = graph.node(static_cast<NodeId>(n));
    if (node.dead) continue;
    const int allowed = SequenceInputOf(node);
    for (size_t i = 0; i < node.num_explicit_inputs(); ++i) {
      if (node.inputs[i] == kNoValue) continue;
      const Value& v = graph.value(node.inputs[i]);
      if (IsTensorKind(v.kind) || allowed == -1 || allowed == static_cast<int>(i)) continue;
      return Unsupported(node.Describe(), " reads '", v.name, "', a ", ValueKindName(v.kind), ", as its input ", i,
                         "; kiln runs this op on tensors only");
    }
    for (const auto& [name, body] : Subgraphs(node)) {
      Status s = CheckValueKindUses(*body);
      if (!s.ok()) return s.WithContext(node.Describe() + " attribute '" + name + "'");
    }
  }
  return Status::Ok();
}

std::string TypeNotation(ValueKind kind, DType dtype) {
  const std::string element = DTypeName(dtype);
  switch (kind) {
    case ValueKind::kTensor: return element;
    case ValueKind::kSequence: return "seq(" + element + ")";
    case ValueKind::kOptionalTensor: return "optional(" + element + ")";
    case ValueKind::kOptionalSequence: return "optional(seq(" + element + "))";
  }
  return element;
}

bool ParseTypeNotation(const std::string& notation, ValueKind& kind, DType& dtype) {
  for (ValueKind k :
       {ValueKind::kTensor, ValueKind::kSequence, ValueKind::kOptionalTensor, ValueKind::kOptionalSequence}) {
    for (DType d : {DType::kFloat32, DType::kFloat64, DType::kInt64, DType::kInt32, DType::kInt16, DType::kInt8,
                    DType::kUint8, DType::kBool}) {
      if (TypeNotation(k, d) == notation) {
        kind = k;
        dtype = d;
        return true;
      }
    }
  }
  return false;
}

bool IsSequenceOrOptionalOp(const Node& node) {
  if (!node.domain.empty()) return false;
  static constexpr std::string_view kOps[] = {
      "SequenceEmpty", "SequenceConstruct",  "SequenceInsert",     "SequenceErase",
      "SequenceAt",    "SequenceLength",     "SplitToSequence",    "ConcatFromSequence",
      "Optional",      "OptionalHasElement", "OptionalGetElement", "SequenceMap",
  };
  for (std::string_view op : kOps) {
    if (node.op_type == op) return true;
  }
  return false;
}

}  // namespace kiln::graph
