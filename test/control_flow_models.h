// Small ONNX models with If, Loop and Scan, built the way exporters write
// them, for the graph, runtime and reliability tests.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

#include "test/model_builder.h"

namespace kiln::testing {

// Writes one sub-graph (a GraphProto held by a node's attribute).
class BodyBuilder {
 public:
  // The body in `node`'s graph attribute `attr`, created empty.
  BodyBuilder(onnx::NodeProto& node, const std::string& attr) {
    auto* a = node.add_attribute();
    a->set_name(attr);
    a->set_type(onnx::AttributeProto::GRAPH);
    graph_ = a->mutable_g();
    graph_->set_name(node.name() + "_" + attr);
  }

  // dims empty with `rank_known`: a scalar; elem_type 0: no type at all.
  BodyBuilder& Input(const std::string& name, int32_t elem_type, const std::vector<int64_t>& dims = {}) {
    Fill(graph_->add_input(), name, elem_type, dims);
    return *this;
  }
  BodyBuilder& Output(const std::string& name, int32_t elem_type, const std::vector<int64_t>& dims = {}) {
    Fill(graph_->add_output(), name, elem_type, dims);
    return *this;
  }
  BodyBuilder& FloatInit(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& values) {
    auto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
    return *this;
  }
  BodyBuilder& Int64Init(const std::string& name, const std::vector<int64_t>& dims,
                         const std::vector<int64_t>& values) {
    auto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (int64_t d : dims) t->add_dims(d);
    for (int64_t v : values) t->add_int64_data(v);
    return *this;
  }
  onnx::NodeProto& Node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "") {
    auto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? graph_->name() + "_" + op + std::to_string(graph_->node_size()) : name);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    return *n;
  }
  onnx::GraphProto& proto() { return *graph_; }

 private:
  static void Fill(onnx::ValueInfoProto* vi, const std::string& name, int32_t elem_type,
                   const std::vector<int64_t>& dims) {
    vi->set_name(name);
    if (elem_type == 0) return;
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem_type);
    auto* shape = tt->mutable_shape();
    for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
  }

  onnx::GraphProto* graph_;
};

inline constexpr int32_t kCfFloat = onnx::TensorProto::FLOAT;
inline constexpr int32_t kCfInt64 = onnx::TensorProto::INT64;
inline constexpr int32_t kCfBool = onnx::TensorProto::BOOL;

inline void BoolInit(OnnxModelBuilder& b, const std::string& name, bool value) {
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::BOOL);
  t->add_int32_data(value ? 1 : 0);
}

// y = cond ? x + 1 (a constant of the branch) : x * x (x read from the
// enclosing graph by both branches). cond: bool scalar, x: float [3].
inline OnnxModelBuilder IfModel() {
  OnnxModelBuilder b(13);
  b.Input("cond", kCfBool, {}).Input("x", kCfFloat, {3}).Output("y");
  auto& node = b.Node("If", {"cond"}, {"y"}, "choose");
  BodyBuilder then_branch(node, "then_branch");
  then_branch.FloatInit("one", {1}, {1.0f}).Output("then_y", kCfFloat, {3});
  then_branch.Node("Add", {"x", "one"}, {"then_y"});
  BodyBuilder else_branch(node, "else_branch");
  else_branch.Output("else_y", kCfFloat, {3});
  else_branch.Node("Mul", {"x", "x"}, {"else_y"});
  return b;
}

// s = 0; repeat M times: s += x (x from the enclosing graph); scan output:
// s after each iteration. Inputs M: int64 scalar, x: float [3]; outputs
// s_final [3] and sums [M, 3].
inline OnnxModelBuilder LoopSumModel(int opset = 13) {
  OnnxModelBuilder b(opset);
  b.Input("M", kCfInt64, {}).Input("x", kCfFloat, {3}).FloatInit("s0", {3}, {0, 0, 0});
  b.Output("s_final").Output("sums");
  auto& node = b.Node("Loop", {"M", "", "s0"}, {"s_final", "sums"}, "accumulate");
  BodyBuilder body(node, "body");
  body.Input("i", kCfInt64, {}).Input("cond_in", kCfBool, {}).Input("s", kCfFloat, {3});
  body.Output("cond_out", kCfBool, {}).Output("s_out", kCfFloat, {3}).Output("scan", kCfFloat, {3});
  body.Node("Identity", {"cond_in"}, {"cond_out"});
  body.Node("Add", {"s", "x"}, {"s_out"});
  body.Node("Identity", {"s_out"}, {"scan"});
  return b;
}

// A while loop without a trip count: i = 0; while (cond) { i += 1; cond =
// i < limit }. Input limit: int64 scalar; output i_final.
inline OnnxModelBuilder CountUpModel() {
  OnnxModelBuilder b(13);
  b.Input("limit", kCfInt64, {}).Int64Init("i0", {}, {0}).Output("i_final", kCfInt64);
  BoolInit(b, "go", true);
  auto& node = b.Node("Loop", {"", "go", "i0"}, {"i_final"}, "count_up");
  BodyBuilder body(node, "body");
  body.Input("iter", kCfInt64, {}).Input("cond_in", kCfBool, {}).Input("i", kCfInt64, {});
  body.Output("cond_out", kCfBool, {}).Output("i_out", kCfInt64, {});
  body.Int64Init("one", {}, {1});
  body.Node("Add", {"i", "one"}, {"i_out"});
  body.Node("Less", {"i_out", "limit"}, {"cond_out"});
  return b;
}

// Running sums over xs [4, 2] along `axis` (0 or 1), read in `direction`
// (0 forward, 1 reverse): state s [2 or 4] starts at 0; outputs s_final and
// the per-step sums stacked along the same axis in `output_direction`.
inline OnnxModelBuilder ScanSumModel(int64_t axis, int64_t direction, int64_t output_direction = 0) {
  OnnxModelBuilder b(16);
  const int64_t width = axis == 0 ? 2 : 4;
  b.Input("xs", kCfFloat, {4, 2}).FloatInit("s0", {width}, std::vector<float>(static_cast<size_t>(width), 0.0f));
  b.Output("s_final").Output("sums");
  auto& node = b.Node("Scan", {"s0", "xs"}, {"s_final", "sums"}, "running_sum");
  OnnxModelBuilder::IntAttr(node, "num_scan_inputs", 1);
  OnnxModelBuilder::IntsAttr(node, "scan_input_axes", {axis});
  OnnxModelBuilder::IntsAttr(node, "scan_input_directions", {direction});
  OnnxModelBuilder::IntsAttr(node, "scan_output_axes", {axis});
  OnnxModelBuilder::IntsAttr(node, "scan_output_directions", {output_direction});
  BodyBuilder body(node, "body");
  body.Input("s", kCfFloat, {width}).Input("x", kCfFloat, {width});
  body.Output("s_out", kCfFloat, {width}).Output("y", kCfFloat, {width});
  body.Node("Add", {"s", "x"}, {"s_out"});
  body.Node("Identity", {"s_out"}, {"y"});
  return b;
}

// A loop whose body branches on data, as a scripted PyTorch module
// exports it: M times, s = (sum(s) > threshold) ? s * 0.5 : s + x, with x
// and threshold read from two scopes out. Inputs M, x [3], threshold
// (float scalar); output s_final.
inline OnnxModelBuilder LoopWithIfModel() {
  OnnxModelBuilder b(13);
  b.Input("M", kCfInt64, {}).Input("x", kCfFloat, {3}).Input("threshold", kCfFloat, {});
  b.FloatInit("s0", {3}, {0, 0, 0}).Output("s_final");
  auto& loop = b.Node("Loop", {"M", "", "s0"}, {"s_final"}, "steps");
  BodyBuilder body(loop, "body");
  body.Input("i", kCfInt64, {}).Input("cond_in", kCfBool, {}).Input("s", kCfFloat, {3});
  body.Output("cond_out", kCfBool, {}).Output("s_next", kCfFloat, {3});
  body.Node("Identity", {"cond_in"}, {"cond_out"});
  body.Node("ReduceSum", {"s"}, {"total"});
  body.Node("Greater", {"total", "threshold"}, {"big"});
  auto& branch = body.Node("If", {"big"}, {"s_next"}, "halve_or_add");
  BodyBuilder halve(branch, "then_branch");
  halve.FloatInit("half", {1}, {0.5f}).Output("halved", kCfFloat, {3});
  halve.Node("Mul", {"s", "half"}, {"halved"});
  BodyBuilder add(branch, "else_branch");
  add.Output("added", kCfFloat, {3});
  add.Node("Add", {"s", "x"}, {"added"});
  return b;
}

}  // namespace kiln::testing
