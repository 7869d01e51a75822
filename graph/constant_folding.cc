#include "graph/constant_folding.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "graph/log.h"

namespace kiln::graph {
namespace {

// Ops whose result differs between runs even on equal inputs. Folding them
// would freeze one sample into the model.
bool IsNondeterministic(const Node& node) {
  if (!node.domain.empty()) return false;
  static constexpr std::string_view kRandomOps[] = {
      "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
  };
  for (std::string_view op : kRandomOps) {
    if (node.op_type == op) return true;
  }
  // Dropout is the identity at inference time, unless the model passes a
  // training_mode input (opset 12+), which may switch the random mask on.
  if (node.op_type == "Dropout") return node.inputs.size() > 2 && node.inputs[2] != kNoValue;
  return false;
}

bool HasSubgraph(const Node& node) {
  return std::any_of(node.attributes.begin(), node.attributes.end(),
                     [](const auto& entry) { return entry.second.kind == Attribute::Kind::kGraph; });
}

bool IsDefaultDomainOp(const Node& node, std::string_view op) { return node.domain.empty() && node.op_type == op; }

// The dims of `id` when they are all known: from its constant if it has one,
// else from its ShapeInfo.
std::optional<Dims> ConcreteDimsOf(const Value& v) {
  if (v.constant) return v.constant->dims();
  if (v.shape.is_concrete()) return v.shape.ConcreteDims();
  return std::nullopt;
}

StatusOr<Tensor> Int64Tensor(const Dims& dims, const std::vector<int64_t>& values) {
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Allocate(DType::kInt64, dims));
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(int64_t));
  return t;
}

// Shape and Size need only the input's dims, which ShapeInfo often knows
// even though the input's data depends on the graph inputs. Returns nullopt
// when the node is not such a case (or its dims are not all known).
std::optional<Tensor> FoldShapeOrSize(const Graph& graph, const Node& node) {
  const bool is_shape = IsDefaultDomainOp(node, "Shape");
  if (!is_shape && !IsDefaultDomainOp(node, "Size")) return std::nullopt;
  if (node.inputs.size() != 1 || node.inputs[0] == kNoValue || node.outputs.size() != 1) return std::nullopt;
  std::optional<Dims> dims = ConcreteDimsOf(graph.value(node.inputs[0]));
  if (!dims) return std::nullopt;

  if (!is_shape) {
    auto count = CheckedNumElements(*dims);
    if (!count.ok()) return std::nullopt;
    auto t = Int64Tensor({}, {*count});
    return t.ok() ? std::optional<Tensor>(std::move(t).value()) : std::nullopt;
  }

  // Shape-15's start/end slice the shape; negative values count from the
  // back and both clamp to [0, rank], as in Slice.
  const int64_t rank = static_cast<int64_t>(dims->size());
  auto start = node.GetInt("start", 0);
  auto end = node.GetInt("end", rank);
  if (!start.ok() || !end.ok()) return std::nullopt;
  auto clamp = [rank](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
  const int64_t begin = clamp(*start);
  const int64_t stop = std::max(begin, clamp(*end));
  std::vector<int64_t> values(dims->begin() + begin, dims->begin() + stop);
  auto t = Int64Tensor({static_cast<int64_t>(values.size())}, values);
  return t.ok() ? std::optional<Tensor>(std::move(t).value()) : std::nullopt;
}

// Constant needs no kernel: its value sits in an attribute. Folding it here
// lets graph-only tools (and the chains it feeds) fold without an
// evaluator. nullopt for a form kiln has no tensor for (sparse, strings).
std::optional<Tensor> FoldConstantNode(const Node& node) {
  if (!IsDefaultDomainOp(node, "Constant") || node.outputs.size() != 1 || node.attributes.size() != 1) {
    return std::nullopt;
  }
  const auto& [name, attr] = *node.attributes.begin();
  StatusOr<Tensor> t = Status(StatusCode::kUnsupported, "");
  if (name == "value" && attr.kind == Attribute::Kind::kTensor && attr.t.defined()) {
    // Share the attribute's data unless it is borrowed (see EvaluateConstantNode).
    t = attr.t.is_view() ? attr.t.Clone() : StatusOr<Tensor>(attr.t);
  } else if (name == "value_float" && attr.kind == Attribute::Kind::kFloat) {
    t = Tensor::Allocate(DType::kFloat32, {});
    if (t.ok()) *t->data<float>() = attr.f;
  } else if (name == "value_floats" && attr.kind == Attribute::Kind::kFloats) {
    t = Tensor::Allocate(DType::kFloat32, {static_cast<int64_t>(attr.floats.size())});
    if (t.ok() && !attr.floats.empty()) std::memcpy(t->raw_data(), attr.floats.data(), t->byte_size());
  } else if (name == "value_int" && attr.kind == Attribute::Kind::kInt) {
    t = Int64Tensor({}, {attr.i});
  } else if (name == "value_ints" && attr.kind == Attribute::Kind::kInts) {
    t = Int64Tensor({static_cast<int64_t>(attr.ints.size())}, attr.ints);
  }
  if (!t.ok() || t->byte_size() > kMaxFoldedBytes) return std::nullopt;
  return std::move(t).value();
}

// Whether a known declared output already rules folding out, so that the
// evaluator does not build a huge tensor only for it to be dropped.
bool DeclaredOutputTooLarge(const Graph& graph, const Node& node) {
  for (ValueId out : node.outputs) {
    if (out == kNoValue) continue;
    const Value& v = graph.value(out);
    if (v.dtype == DType::kUndefined || !v.shape.is_concrete()) continue;
    auto count = CheckedNumElements(v.shape.ConcreteDims(), v.dtype);
    if (!count.ok() || static_cast<size_t>(*count) * DTypeSize(v.dtype) > kMaxFoldedBytes) return true;
  }
  return false;
}

// Evaluates a node whose present inputs are all constants; nullopt when it
// should stay a node (not foldable, evaluator error, bad or huge result).
std::optional<std::vector<Tensor>> EvaluateConstantNode(const Graph& graph, const Node& node,
                                                        const NodeEvaluator& evaluate) {
  if (!evaluate || IsNondeterministic(node) || HasSubgraph(node)) return std::nullopt;
  std::vector<const Tensor*> inputs;
  inputs.reserve(node.inputs.size());
  for (ValueId in : node.inputs) {
    if (in == kNoValue) {
      inputs.push_back(nullptr);
      continue;
    }
    const Value& v = graph.value(in);
    if (!v.constant) return std::nullopt;
    inputs.push_back(&*v.constant);
  }
  const bool has_output =
      std::any_of(node.outputs.begin(), node.outputs.end(), [](ValueId out) { return out != kNoValue; });
  if (!has_output || DeclaredOutputTooLarge(graph, node)) return std::nullopt;

  auto result = evaluate(node, inputs);
  if (!result.ok()) {
    Log().debug("constant folding: leaving {} in place: {}", node.Describe(), result.status().ToString());
    return std::nullopt;
  }
  std::vector<Tensor>& outputs = *result;
  if (outputs.size() != node.outputs.size()) {
    Log().debug("constant folding: leaving {} in place: the evaluator returned {} outputs, expected {}",
                node.Describe(), outputs.size(), node.outputs.size());
    return std::nullopt;
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (node.outputs[i] == kNoValue) continue;
    Tensor& t = outputs[i];
    // Constants are tensors; a sequence stays a node.
    if (!t.defined() || t.dtype() == DType::kSequence) return std::nullopt;
    if (t.byte_size() > kMaxFoldedBytes) {
      Log().debug("constant folding: keeping {} lazy: output {} has {} bytes", node.Describe(), i, t.byte_size());
      return std::nullopt;
    }
    // A borrowed view (e.g. an Identity aliasing its input) would dangle
    // once dead-code elimination drops the input constant: own the data.
    if (t.is_view()) {
      auto copy = t.Clone();
      if (!copy.ok()) return std::nullopt;
      t = std::move(copy).value();
    }
  }
  return std::move(outputs);
}

}  // namespace

StatusOr<bool> FoldConstants(Graph& graph, const NodeEvaluator& evaluate) {
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  bool changed = false;
  for (NodeId id : order) {
    const Node& node = graph.node(id);
    if (node.dead) continue;

    std::optional<std::vector<Tensor>> folded;
    if (std::optional<Tensor> shape = FoldShapeOrSize(graph, node)) {
      folded.emplace();
      folded->push_back(std::move(*shape));
    } else if (std::optional<Tensor> value = FoldConstantNode(node)) {
      folded.emplace();
      folded->push_back(std::move(*value));
    } else {
      folded = EvaluateConstantNode(graph, node, evaluate);
    }
    if (!folded) continue;

    // Every check is done: from here the rewrite cannot fail halfway.
    const std::vector<ValueId> outputs = node.outputs;
    graph.RemoveNode(id);
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i] == kNoValue) continue;
      Value& v = graph.value(outputs[i]);
      Tensor& t = (*folded)[i];
      v.dtype = t.dtype();
      v.shape = ShapeInfo::FromDims(t.dims());
      v.constant = std::move(t);
    }
    changed = true;
  }
  return changed;
}

}  // namespace kiln::graph
