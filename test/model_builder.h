// Builds small ONNX models in memory for tests and benchmarks, the way an
// exporter would write them, without Python.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::testing {

class OnnxModelBuilder {
 public:
  explicit OnnxModelBuilder(int opset = 17) {
    model_.set_ir_version(8);
    model_.set_producer_name("kiln-test");
    auto* imp = model_.add_opset_import();
    imp->set_domain("");
    imp->set_version(opset);
    model_.mutable_graph()->set_name("test_graph");
  }

  // dims: -1 for a symbolic dim named by `dim_names[i]` (or "N").
  OnnxModelBuilder& Input(const std::string& name, int32_t elem_type, const std::vector<int64_t>& dims,
                          const std::vector<std::string>& dim_names = {}) {
    FillValueInfo(model_.mutable_graph()->add_input(), name, elem_type, dims, dim_names);
    return *this;
  }
  OnnxModelBuilder& Output(const std::string& name, int32_t elem_type = onnx::TensorProto::FLOAT) {
    auto* vi = model_.mutable_graph()->add_output();
    vi->set_name(name);
    vi->mutable_type()->mutable_tensor_type()->set_elem_type(elem_type);
    return *this;
  }
  OnnxModelBuilder& FloatInit(const std::string& name, const std::vector<int64_t>& dims,
                              const std::vector<float>& values) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
    return *this;
  }
  OnnxModelBuilder& Int64Init(const std::string& name, const std::vector<int64_t>& dims,
                              const std::vector<int64_t>& values) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (int64_t d : dims) t->add_dims(d);
    for (int64_t v : values) t->add_int64_data(v);
    return *this;
  }
  // Adds a node and returns it so a test can add attributes.
  onnx::NodeProto& Node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "") {
    auto* n = model_.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(model_.graph().node_size()) : name);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    return *n;
  }
  static void IntAttr(onnx::NodeProto& n, const std::string& name, int64_t v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void FloatAttr(onnx::NodeProto& n, const std::string& name, float v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void IntsAttr(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }

  onnx::ModelProto& proto() { return model_; }
  std::string Serialize() const { return model_.SerializeAsString(); }

 private:
  static void FillValueInfo(onnx::ValueInfoProto* vi, const std::string& name, int32_t elem_type,
                            const std::vector<int64_t>& dims, const std::vector<std::string>& dim_names) {
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem_type);
    auto* shape = tt->mutable_shape();
    for (size_t i = 0; i < dims.size(); ++i) {
      auto* d = shape->add_dim();
      if (dims[i] >= 0) {
        d->set_dim_value(dims[i]);
      } else {
        d->set_dim_param(i < dim_names.size() ? dim_names[i] : "N");
      }
    }
  }

  onnx::ModelProto model_;
};

}  // namespace kiln::testing
