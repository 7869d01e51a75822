// Small builders for hand-made graphs in the graph/ pass tests: values,
// constants and nodes in one call each, failing the test (not crashing) on
// a builder error.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "graph/graph.h"
#include "kiln/tensor.h"
#include "test/attributes.h"
#include "test/tensors.h"

namespace kiln::graph::testing {

// The shared helpers, under the names these tests have always used.
using kiln::testing::FloatAttr;
using kiln::testing::IntAttr;
using kiln::testing::IntsAttr;
using kiln::testing::MakeTensor;
using kiln::testing::StringAttr;
using kiln::testing::ToVector;

inline ShapeInfo Shape(std::initializer_list<Dim> dims) {
  ShapeInfo s;
  s.rank_known = true;
  s.dims = dims;
  return s;
}
inline Dim D(int64_t n) { return Dim::Concrete(n); }
inline Dim S(const std::string& symbol) { return Dim::Symbolic(symbol); }

// Builds a graph step by step; each call adds one thing and returns its id.
class GraphBuilder {
 public:
  explicit GraphBuilder(int opset = 13) { graph_.set_opset_import("", opset); }

  ValueId Input(const std::string& name, DType dtype, ShapeInfo shape) {
    ValueId id = NewValue(name, dtype, std::move(shape));
    graph_.AddInput(id);
    return id;
  }

  ValueId Constant(const std::string& name, Tensor t) {
    ValueId id = NewValue(name, t.dtype(), ShapeInfo::FromDims(t.dims()));
    graph_.value(id).constant = std::move(t);
    return id;
  }

  ValueId NewValue(const std::string& name, DType dtype = DType::kUndefined, ShapeInfo shape = {}) {
    auto id = graph_.AddValue(name, dtype, std::move(shape));
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : kNoValue;
  }

  // Adds a node whose outputs are new values named `outputs`; returns the
  // node id. Attributes go in through `attrs`.
  NodeId Op(const std::string& op_type, const std::vector<ValueId>& inputs, const std::vector<std::string>& outputs,
            std::map<std::string, Attribute> attrs = {}, const std::string& name = "") {
    Node n;
    n.op_type = op_type;
    n.name = name;
    n.opset = graph_.default_opset();
    n.inputs = inputs;
    for (const std::string& out : outputs) n.outputs.push_back(out.empty() ? kNoValue : NewValue(out));
    n.attributes = std::move(attrs);
    auto id = graph_.AddNode(std::move(n));
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : kNoNode;
  }

  // The single output of node `id`.
  ValueId Out(NodeId id, size_t index = 0) const { return graph_.node(id).outputs[index]; }

  void Output(ValueId id) { graph_.AddOutput(id); }

  Graph& graph() { return graph_; }

 private:
  Graph graph_;
};

// The one live node of `op_type` in `g` (kNoNode if none); a test failure if
// there are several.
inline NodeId FindLive(const Graph& g, const std::string& op_type) {
  NodeId found = kNoNode;
  for (size_t i = 0; i < g.num_nodes(); ++i) {
    const Node& n = g.node(static_cast<NodeId>(i));
    if (n.dead || n.op_type != op_type) continue;
    EXPECT_EQ(found, kNoNode) << "more than one " << op_type;
    found = static_cast<NodeId>(i);
  }
  return found;
}

// How many live nodes of `op_type` `g` has.
inline size_t CountLive(const Graph& g, const std::string& op_type) {
  size_t n = 0;
  for (size_t i = 0; i < g.num_nodes(); ++i) {
    const Node& node = g.node(static_cast<NodeId>(i));
    n += !node.dead && node.op_type == op_type;
  }
  return n;
}

}  // namespace kiln::graph::testing
