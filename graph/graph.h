// kiln's graph IR. A Graph owns its nodes and values in flat arrays with
// stable integer ids; every value knows its producer and its users. Removing
// a node marks it dead; SweepDeadNodes() compacts nothing but drops the
// links, so ids stay valid for the lifetime of the graph.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::graph {

using ValueId = int32_t;
using NodeId = int32_t;
inline constexpr ValueId kNoValue = -1;
inline constexpr NodeId kNoNode = -1;

// One dimension of a static shape: a concrete size, a named symbol
// ("batch", "seq_len") or unknown (neither).
struct Dim {
  int64_t size = -1;   // >= 0 when concrete
  std::string symbol;  // non-empty when symbolic

  static Dim Concrete(int64_t n) { return Dim{n, {}}; }
  static Dim Symbolic(std::string s) { return Dim{-1, std::move(s)}; }
  bool is_concrete() const { return size >= 0; }
  bool operator==(const Dim&) const = default;
};

// What is known statically about a value's shape.
struct ShapeInfo {
  bool rank_known = false;
  std::vector<Dim> dims;

  static ShapeInfo Unknown() { return {}; }
  static ShapeInfo FromDims(const Dims& dims);
  bool is_concrete() const;
  // Concrete dims; only meaningful when is_concrete().
  Dims ConcreteDims() const;
  std::string ToString() const;  // "[N, 3, 224, 224]" or "?"
};

class Graph;

struct Attribute {
  enum class Kind { kFloat, kInt, kString, kTensor, kGraph, kFloats, kInts, kStrings };
  Kind kind = Kind::kInt;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::shared_ptr<Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;

  static Attribute Float(float value);
  static Attribute Int(int64_t value);
  static Attribute Ints(std::vector<int64_t> values);
  static Attribute String(std::string value);
};
const char* AttributeKindName(Attribute::Kind kind);

// What a value holds. For a sequence (ONNX seq(tensor)) `Value::dtype` is
// its elements' dtype and `Value::shape` stays unknown (elements' shapes may
// differ); an optional (ONNX optional(...), opset 15+) may also hold
// nothing. At run time all but kTensor travel as DType::kSequence tensors
// (kiln/sequence.h).
enum class ValueKind : uint8_t { kTensor, kSequence, kOptionalTensor, kOptionalSequence };
// "tensor", "sequence", "optional tensor", "optional sequence".
const char* ValueKindName(ValueKind kind);

struct Value {
  std::string name;
  ValueKind kind = ValueKind::kTensor;
  DType dtype = DType::kUndefined;
  ShapeInfo shape;
  NodeId producer = kNoNode;
  std::vector<NodeId> users;  // one entry per use, so a node using a value twice appears twice
  // Set for initializers and folded constants; the graph owns the data once.
  std::optional<Tensor> constant;
  bool is_graph_input = false;
  bool is_graph_output = false;
  // In a sub-graph: a value of an enclosing graph the body reads by name
  // (ONNX outer-scope reference). The node owning the body passes it in as
  // one of its implicit inputs; see Node::implicit_inputs.
  bool is_outer_scope = false;
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;                           // "" for the default ONNX domain
  int opset = 0;                                // the opset version of `domain` the model imports
  std::vector<ValueId> inputs;                  // kNoValue for an omitted optional input
  std::vector<ValueId> outputs;                 // kNoValue for an omitted optional output
  std::map<std::string, Attribute> attributes;  // ordered: deterministic printing and hashing
  bool dead = false;
  // The last `implicit_inputs` entries of `inputs` are not ONNX inputs: they
  // are the outer-scope values the node's sub-graphs read, body by body in
  // attribute order, each body's in its outer_scope_values() order. Keeping
  // them as ordinary inputs makes use-def, dead code, topological order and
  // memory planning see what a body reads without knowing about bodies.
  int implicit_inputs = 0;

  // Number of ONNX inputs (inputs minus implicit ones).
  size_t num_explicit_inputs() const { return inputs.size() - static_cast<size_t>(implicit_inputs); }
  bool has_subgraphs() const;

  const Attribute* FindAttribute(const std::string& attr_name) const;
  // Typed attribute readers: the default when absent, an error naming the
  // node when present with another kind.
  StatusOr<int64_t> GetInt(const std::string& attr_name, int64_t default_value) const;
  StatusOr<float> GetFloat(const std::string& attr_name, float default_value) const;
  StatusOr<std::string> GetString(const std::string& attr_name, const std::string& default_value) const;
  StatusOr<std::vector<int64_t>> GetInts(const std::string& attr_name,
                                         const std::vector<int64_t>& default_value = {}) const;
  StatusOr<std::vector<float>> GetFloats(const std::string& attr_name,
                                         const std::vector<float>& default_value = {}) const;
  // "Conv 'conv1'" ("com.microsoft.Gelu 'g'" outside the default domain, just
  // "Conv" for an unnamed node): the node on its own, for traces and tables.
  std::string Label() const;
  // "node Conv 'conv1'": Label() with the word that makes an error message
  // read "node Conv 'conv1': ...".
  std::string Describe() const;
};

// What a model file says about itself, beside its graph (ModelProto's
// producer, version and documentation fields, and metadata_props).
struct ModelDescription {
  std::string producer_name;
  std::string producer_version;
  std::string domain;
  int64_t model_version = 0;
  std::string doc_string;
  std::vector<std::pair<std::string, std::string>> metadata_props;
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  Graph(Graph&&) = default;
  Graph& operator=(Graph&&) = default;

  // Adds a value; fails if the name is already taken (SSA form).
  StatusOr<ValueId> AddValue(std::string name, DType dtype = DType::kUndefined, ShapeInfo shape = {});
  // Adds a node whose inputs and outputs exist; updates producer/user links.
  // Fails if an output already has a producer.
  StatusOr<NodeId> AddNode(Node node);

  // Marks `id` dead and unlinks it from its inputs' users and its outputs'
  // producer field.
  void RemoveNode(NodeId id);
  // Replaces every use of `from` (node inputs and graph outputs) by `to`.
  void ReplaceAllUses(ValueId from, ValueId to);

  std::optional<ValueId> FindValue(const std::string& name) const;

  Value& value(ValueId id) { return values_[static_cast<size_t>(id)]; }
  const Value& value(ValueId id) const { return values_[static_cast<size_t>(id)]; }
  Node& node(NodeId id) { return nodes_[static_cast<size_t>(id)]; }
  const Node& node(NodeId id) const { return nodes_[static_cast<size_t>(id)]; }
  size_t num_values() const { return values_.size(); }
  size_t num_nodes() const { return nodes_.size(); }
  size_t num_live_nodes() const;

  const std::vector<ValueId>& inputs() const { return inputs_; }
  const std::vector<ValueId>& outputs() const { return outputs_; }
  // A sub-graph's references to enclosing graphs' values, in the order the
  // owning node's implicit inputs feed them (empty for a model's graph).
  const std::vector<ValueId>& outer_scope_values() const { return outer_scope_values_; }
  // Adds a value marked is_outer_scope at the end of outer_scope_values().
  StatusOr<ValueId> AddOuterScopeValue(std::string name, DType dtype, ShapeInfo shape);
  void AddInput(ValueId id);
  void AddOutput(ValueId id);
  void SetOutput(size_t index, ValueId id);

  // Opset imported for each domain ("" is the default ONNX domain).
  const std::map<std::string, int>& opset_imports() const { return opset_imports_; }
  void set_opset_import(const std::string& domain, int version) { opset_imports_[domain] = version; }
  int default_opset() const;

  // Live nodes in an order where every node comes after the producers of its
  // inputs; ties keep the model's order. Fails on a cycle, naming a node on it.
  StatusOr<std::vector<NodeId>> TopologicalOrder() const;

  // Checks structural invariants: every live node input is defined (a graph
  // input, an outer-scope value, a constant or produced by a live node), graph
  // outputs are defined, the graph is acyclic, and each node's implicit
  // inputs match its sub-graphs' outer-scope values; sub-graphs are checked
  // the same way.
  Status Validate() const;

  // Adds a constant value holding `t`, named `base` or, when that is taken,
  // `base_1`, `base_2`, ...
  StatusOr<ValueId> AddConstant(const std::string& base, Tensor t);

  // `base` if no value has that name yet, else the first free `base_N`.
  std::string UniqueValueName(const std::string& base) const;

  std::string name;
  ModelDescription description;

 private:
  std::vector<Node> nodes_;
  std::vector<Value> values_;
  std::vector<ValueId> inputs_;
  std::vector<ValueId> outputs_;
  std::vector<ValueId> outer_scope_values_;
  std::map<std::string, ValueId> value_by_name_;
  std::map<std::string, int> opset_imports_;
};

// The node's graph-valued attributes in attribute (name) order: the order
// its implicit inputs follow.
std::vector<std::pair<std::string, const Graph*>> Subgraphs(const Node& node);
std::vector<std::pair<std::string, Graph*>> MutableSubgraphs(Node& node);

}  // namespace kiln::graph
