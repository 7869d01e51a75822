#include "graph/graph.h"

#include <algorithm>
#include <queue>

namespace kiln::graph {

ShapeInfo ShapeInfo::FromDims(const Dims& dims) {
  ShapeInfo info;
  info.rank_known = true;
  for (int64_t d : dims) info.dims.push_back(Dim::Concrete(d));
  return info;
}

bool ShapeInfo::is_concrete() const {
  return rank_known && std::all_of(dims.begin(), dims.end(), [](const Dim& d) { return d.is_concrete(); });
}

Dims ShapeInfo::ConcreteDims() const {
  Dims out;
  out.reserve(dims.size());
  for (const Dim& d : dims) out.push_back(d.size);
  return out;
}

std::string ShapeInfo::ToString() const {
  if (!rank_known) return "?";
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    if (dims[i].is_concrete()) {
      s += std::to_string(dims[i].size);
    } else {
      s += dims[i].symbol.empty() ? "?" : dims[i].symbol;
    }
  }
  return s + "]";
}

const char* ValueKindName(ValueKind kind) {
  switch (kind) {
    case ValueKind::kTensor: return "tensor";
    case ValueKind::kSequence: return "sequence";
    case ValueKind::kOptionalTensor: return "optional tensor";
    case ValueKind::kOptionalSequence: return "optional sequence";
  }
  return "tensor";
}

const char* AttributeKindName(Attribute::Kind kind) {
  switch (kind) {
    case Attribute::Kind::kFloat: return "float";
    case Attribute::Kind::kInt: return "int";
    case Attribute::Kind::kString: return "string";
    case Attribute::Kind::kTensor: return "tensor";
    case Attribute::Kind::kGraph: return "graph";
    case Attribute::Kind::kFloats: return "floats";
    case Attribute::Kind::kInts: return "ints";
    case Attribute::Kind::kStrings: return "strings";
  }
  return "?";
}

const Attribute* Node::FindAttribute(const std::string& attr_name) const {
  auto it = attributes.find(attr_name);
  return it == attributes.end() ? nullptr : &it->second;
}

namespace {
Status WrongKind(const Node& node, const std::string& attr_name, const Attribute& attr, const char* expected) {
  return InvalidModel(node.Describe(), ": attribute '", attr_name, "' has type ", AttributeKindName(attr.kind),
                      ", expected ", expected);
}
}  // namespace

StatusOr<int64_t> Node::GetInt(const std::string& attr_name, int64_t default_value) const {
  const Attribute* a = FindAttribute(attr_name);
  if (!a) return default_value;
  if (a->kind != Attribute::Kind::kInt) return WrongKind(*this, attr_name, *a, "int");
  return a->i;
}

StatusOr<float> Node::GetFloat(const std::string& attr_name, float default_value) const {
  const Attribute* a = FindAttribute(attr_name);
  if (!a) return default_value;
  if (a->kind != Attribute::Kind::kFloat) return WrongKind(*this, attr_name, *a, "float");
  return a->f;
}

StatusOr<std::string> Node::GetString(const std::string& attr_name, const std::string& default_value) const {
  const Attribute* a = FindAttribute(attr_name);
  if (!a) return default_value;
  if (a->kind != Attribute::Kind::kString) return WrongKind(*this, attr_name, *a, "string");
  return a->s;
}

StatusOr<std::vector<int64_t>> Node::GetInts(const std::string& attr_name,
                                             const std::vector<int64_t>& default_value) const {
  const Attribute* a = FindAttribute(attr_name);
  if (!a) return default_value;
  if (a->kind != Attribute::Kind::kInts) return WrongKind(*this, attr_name, *a, "ints");
  return a->ints;
}

StatusOr<std::vector<float>> Node::GetFloats(const std::string& attr_name,
                                             const std::vector<float>& default_value) const {
  const Attribute* a = FindAttribute(attr_name);
  if (!a) return default_value;
  if (a->kind != Attribute::Kind::kFloats) return WrongKind(*this, attr_name, *a, "floats");
  return a->floats;
}

std::string Node::Label() const {
  std::string s = domain.empty() ? op_type : domain + "." + op_type;
  if (!name.empty()) s += " '" + name + "'";
  return s;
}

std::string Node::Describe() const { return "node " + Label(); }

bool Node::has_subgraphs() const {
  return std::any_of(attributes.begin(), attributes.end(),
                     [](const auto& entry) { return entry.second.kind == Attribute::Kind::kGraph && entry.second.g; });
}

std::vector<std::pair<std::string, const Graph*>> Subgraphs(const Node& node) {
  std::vector<std::pair<std::string, const Graph*>> result;
  for (const auto& [name, attr] : node.attributes) {
    if (attr.kind == Attribute::Kind::kGraph && attr.g) result.emplace_back(name, attr.g.get());
  }
  return result;
}

std::vector<std::pair<std::string, Graph*>> MutableSubgraphs(Node& node) {
  std::vector<std::pair<std::string, Graph*>> result;
  for (auto& [name, attr] : node.attributes) {
    if (attr.kind == Attribute::Kind::kGraph && attr.g) result.emplace_back(name, attr.g.get());
  }
  return result;
}

Attribute Attribute::Float(float value) {
  Attribute a;
  a.kind = Kind::kFloat;
  a.f = value;
  return a;
}

Attribute Attribute::Int(int64_t value) {
  Attribute a;
  a.kind = Kind::kInt;
  a.i = value;
  return a;
}

Attribute Attribute::Ints(std::vector<int64_t> values) {
  Attribute a;
  a.kind = Kind::kInts;
  a.ints = std::move(values);
  return a;
}

Attribute Attribute::String(std::string value) {
  Attribute a;
  a.kind = Kind::kString;
  a.s = std::move(value);
  return a;
}

std::string Graph::UniqueValueName(const std::string& base) const {
  std::string candidate = base;
  for (int i = 1; FindValue(candidate); ++i) candidate = base + "_" + std::to_string(i);
  return candidate;
}

StatusOr<ValueId> Graph::AddConstant(const std::string& base, Tensor t) {
  const DType dtype = t.dtype();
  KILN_ASSIGN_OR_RETURN(ValueId id, AddValue(UniqueValueName(base), dtype, ShapeInfo::FromDims(t.dims())));
  value(id).constant = std::move(t);
  return id;
}

StatusOr<ValueId> Graph::AddValue(std::string value_name, DType dtype, ShapeInfo shape) {
  if (!value_name.empty() && value_by_name_.count(value_name)) {
    return InvalidModel("value '", value_name, "' is defined more than once");
  }
  ValueId id = static_cast<ValueId>(values_.size());
  Value v;
  v.name = std::move(value_name);
  v.dtype = dtype;
  v.shape = std::move(shape);
  if (!v.name.empty()) value_by_name_[v.name] = id;
  values_.push_back(std::move(v));
  return id;
}

StatusOr<NodeId> Graph::AddNode(Node node) {
  for (ValueId in : node.inputs) {
    if (in != kNoValue && (in < 0 || static_cast<size_t>(in) >= values_.size())) {
      return Internal(node.Describe(), ": input id ", in, " does not exist");
    }
  }
  for (ValueId out : node.outputs) {
    if (out == kNoValue) continue;
    if (out < 0 || static_cast<size_t>(out) >= values_.size()) {
      return Internal(node.Describe(), ": output id ", out, " does not exist");
    }
    if (value(out).producer != kNoNode || value(out).constant || value(out).is_graph_input) {
      return InvalidModel(node.Describe(), ": output '", value(out).name, "' is already defined elsewhere");
    }
  }
  NodeId id = static_cast<NodeId>(nodes_.size());
  for (ValueId in : node.inputs) {
    if (in != kNoValue) value(in).users.push_back(id);
  }
  for (ValueId out : node.outputs) {
    if (out != kNoValue) value(out).producer = id;
  }
  nodes_.push_back(std::move(node));
  return id;
}

void Graph::RemoveNode(NodeId id) {
  Node& n = node(id);
  if (n.dead) return;
  n.dead = true;
  for (ValueId in : n.inputs) {
    if (in == kNoValue) continue;
    auto& users = value(in).users;
    auto it = std::find(users.begin(), users.end(), id);
    if (it != users.end()) users.erase(it);
  }
  for (ValueId out : n.outputs) {
    if (out != kNoValue && value(out).producer == id) value(out).producer = kNoNode;
  }
}

void Graph::ReplaceAllUses(ValueId from, ValueId to) {
  if (from == to) return;
  for (NodeId user : value(from).users) {
    for (ValueId& in : node(user).inputs) {
      if (in == from) in = to;
    }
    value(to).users.push_back(user);
  }
  // `users` holds one entry per use, so appending once per entry keeps the
  // use counts of `to` exact even for a node that uses `from` twice.
  value(from).users.clear();
  for (size_t i = 0; i < outputs_.size(); ++i) {
    if (outputs_[i] == from) SetOutput(i, to);
  }
}

std::optional<ValueId> Graph::FindValue(const std::string& value_name) const {
  auto it = value_by_name_.find(value_name);
  if (it == value_by_name_.end()) return std::nullopt;
  return it->second;
}

size_t Graph::num_live_nodes() const {
  return static_cast<size_t>(std::count_if(nodes_.begin(), nodes_.end(), [](const Node& n) { return !n.dead; }));
}

StatusOr<ValueId> Graph::AddOuterScopeValue(std::string value_name, DType dtype, ShapeInfo shape) {
  KILN_ASSIGN_OR_RETURN(ValueId id, AddValue(std::move(value_name), dtype, std::move(shape)));
  value(id).is_outer_scope = true;
  outer_scope_values_.push_back(id);
  return id;
}

void Graph::AddInput(ValueId id) {
  inputs_.push_back(id);
  value(id).is_graph_input = true;
}

void Graph::AddOutput(ValueId id) {
  outputs_.push_back(id);
  value(id).is_graph_output = true;
}

void Graph::SetOutput(size_t index, ValueId id) {
  ValueId old = outputs_[index];
  outputs_[index] = id;
  value(old).is_graph_output = std::count(outputs_.begin(), outputs_.end(), old) > 0;
  value(id).is_graph_output = true;
}

int Graph::default_opset() const {
  auto it = opset_imports_.find("");
  if (it == opset_imports_.end()) it = opset_imports_.find("ai.onnx");
  return it == opset_imports_.end() ? 0 : it->second;
}

StatusOr<std::vector<NodeId>> Graph::TopologicalOrder() const {
  // Kahn's algorithm with a min-heap on node id so that independent nodes
  // keep the model's order: deterministic, and close to what the exporter
  // intended for memory use.
  std::vector<int> pending(nodes_.size(), 0);
  std::priority_queue<NodeId, std::vector<NodeId>, std::greater<>> ready;
  size_t live = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    if (n.dead) continue;
    ++live;
    for (ValueId in : n.inputs) {
      if (in != kNoValue && value(in).producer != kNoNode) ++pending[i];
    }
    if (pending[i] == 0) ready.push(static_cast<NodeId>(i));
  }
  std::vector<NodeId> order;
  order.reserve(live);
  while (!ready.empty()) {
    NodeId id = ready.top();
    ready.pop();
    order.push_back(id);
    for (ValueId out : node(id).outputs) {
      if (out == kNoValue) continue;
      for (NodeId user : value(out).users) {
        if (--pending[static_cast<size_t>(user)] == 0) ready.push(user);
      }
    }
  }
  if (order.size() != live) {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!nodes_[i].dead && pending[i] > 0) {
        return InvalidModel("the graph has a cycle through ", nodes_[i].Describe());
      }
    }
    return InvalidModel("the graph has a cycle");
  }
  return order;
}

Status Graph::Validate() const {
  for (const Node& n : nodes_) {
    if (n.dead) continue;
    for (ValueId in : n.inputs) {
      if (in == kNoValue) continue;
      const Value& v = value(in);
      if (v.producer == kNoNode && !v.constant && !v.is_graph_input && !v.is_outer_scope) {
        return InvalidModel(n.Describe(), " uses '", v.name, "', which no node, input or initializer defines");
      }
    }
    size_t captured = 0;
    for (const auto& [attr_name, body] : Subgraphs(n)) {
      Status s = body->Validate();
      if (!s.ok()) return s.WithContext(n.Describe() + " attribute '" + attr_name + "'");
      captured += body->outer_scope_values().size();
    }
    if (n.implicit_inputs < 0 || static_cast<size_t>(n.implicit_inputs) != captured || captured > n.inputs.size()) {
      return Internal(n.Describe(), ": ", n.implicit_inputs, " implicit inputs for ", captured,
                      " outer-scope values its sub-graphs read");
    }
  }
  for (ValueId out : outputs_) {
    const Value& v = value(out);
    if (v.producer == kNoNode && !v.constant && !v.is_graph_input && !v.is_outer_scope) {
      return InvalidModel("graph output '", v.name, "' is not defined by any node, input or initializer");
    }
  }
  return TopologicalOrder().status();
}

}  // namespace kiln::graph
