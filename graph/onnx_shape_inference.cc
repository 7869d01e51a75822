#include "graph/onnx_shape_inference.h"

#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "graph/log.h"

namespace kiln::graph {
namespace {

// Calls `visit` on `graph` and on every graph nested in its nodes'
// attributes (If/Loop/Scan bodies), which inference also walks.
template <typename Visit>
void ForEachGraph(onnx::GraphProto& graph, const Visit& visit) {
  visit(graph);
  for (auto& node : *graph.mutable_node()) {
    for (auto& attr : *node.mutable_attribute()) {
      if (attr.has_g()) ForEachGraph(*attr.mutable_g(), visit);
      for (auto& g : *attr.mutable_graphs()) ForEachGraph(g, visit);
    }
  }
}

template <typename Visit>
void ForEachNode(onnx::GraphProto& graph, const Visit& visit) {
  ForEachGraph(graph, [&](onnx::GraphProto& g) {
    for (auto& node : *g.mutable_node()) visit(node);
  });
}

// ONNX 1.12's shape inference for the Conv family (Conv, ConvTranspose,
// ConvInteger, QLinearConv) takes the kernel's spatial size from the
// weight's shape and indexes the data input's dims with it without checking
// the ranks: a weight of higher rank than the data crashes the process
// (found by test/fuzz/model_fuzzer). Given a kernel_shape attribute it
// checks the ranks instead. So, for the duration of inference only, every
// such node without one gets the kernel_shape its weight implies; `added`
// lists them for RemoveInferenceKernelShapes. Returns false (nothing added)
// when some weight's shape is not known before inference: inference is
// then skipped, which only costs static shapes.
bool AddInferenceKernelShapes(onnx::ModelProto& model, std::vector<onnx::NodeProto*>& added) {
  std::unordered_map<std::string, std::vector<int64_t>> known_dims;
  for (const auto& init : model.graph().initializer()) {
    known_dims[init.name()].assign(init.dims().begin(), init.dims().end());
  }
  for (const auto& in : model.graph().input()) {
    if (known_dims.count(in.name()) || !in.type().tensor_type().has_shape()) continue;
    std::vector<int64_t> dims;
    bool concrete = true;
    for (const auto& d : in.type().tensor_type().shape().dim()) {
      concrete = concrete && d.has_dim_value();
      dims.push_back(d.dim_value());
    }
    if (concrete) known_dims[in.name()] = std::move(dims);
  }
  std::vector<std::pair<onnx::NodeProto*, std::vector<int64_t>>> pending;
  for (auto& node : *model.mutable_graph()->mutable_node()) {
    if (!node.domain().empty() && node.domain() != "ai.onnx") continue;
    // It also divides by strides and dilations unchecked (a zero stride
    // crashed the fuzzer); the kernels reject those with a message.
    for (const auto& a : node.attribute()) {
      if ((a.name() == "strides" || a.name() == "dilations") &&
          std::any_of(a.ints().begin(), a.ints().end(), [](int64_t v) { return v <= 0; })) {
        return false;
      }
    }
    const std::string& op = node.op_type();
    int weight = -1;
    if (op == "Conv" || op == "ConvTranspose" || op == "ConvInteger") weight = 1;
    if (op == "QLinearConv") weight = 3;
    if (weight < 0) continue;
    const bool has_kernel_shape = std::any_of(node.attribute().begin(), node.attribute().end(),
                                              [](const onnx::AttributeProto& a) { return a.name() == "kernel_shape"; });
    if (has_kernel_shape || node.input_size() <= weight) continue;
    auto it = known_dims.find(node.input(weight));
    if (it == known_dims.end() || it->second.size() < 3) return false;
    pending.emplace_back(&node, std::vector<int64_t>(it->second.begin() + 2, it->second.end()));
  }
  for (auto& [node, kernel] : pending) {
    auto* attr = node->add_attribute();
    attr->set_name("kernel_shape");
    attr->set_type(onnx::AttributeProto::INTS);
    for (int64_t k : kernel) attr->add_ints(k);
    added.push_back(node);
  }
  return true;
}

// ONNX 1.12's inference dereferences the type of every node input, which is
// null for a name nothing defines (crashes the process; found by the model
// fuzzer). Such a model is rejected by GraphBuilder with a precise message,
// so it is enough not to run inference on it.
bool AllNodeInputsDefined(const onnx::ModelProto& model) {
  std::set<std::string> defined;
  for (const auto& init : model.graph().initializer()) defined.insert(init.name());
  // A graph input without a tensor type counts as undefined: libonnx 1.12's
  // inference dereferences the missing type (a fuzzer-found crash).
  for (const auto& in : model.graph().input()) {
    if (in.type().has_tensor_type()) defined.insert(in.name());
  }
  for (const auto& node : model.graph().node()) defined.insert(node.output().begin(), node.output().end());
  for (const auto& node : model.graph().node()) {
    for (const auto& in : node.input()) {
      if (!in.empty() && !defined.count(in)) return false;
    }
  }
  return true;
}

// Bytes per element of an ONNX data type stored as raw_data; 0 for types
// that have no fixed-size raw form (strings) or that this check does not know.
size_t RawElementSize(int32_t data_type) {
  switch (data_type) {
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::BOOL: return 1;
    case onnx::TensorProto::UINT16:
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16: return 2;
    case onnx::TensorProto::FLOAT:
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::UINT32: return 4;
    case onnx::TensorProto::DOUBLE:
    case onnx::TensorProto::INT64:
    case onnx::TensorProto::UINT64:
    case onnx::TensorProto::COMPLEX64: return 8;
    case onnx::TensorProto::COMPLEX128: return 16;
    default: return 0;
  }
}

// Whether a tensor's raw bytes are exactly what its dims and type need.
bool RawDataFits(const onnx::TensorProto& t) {
  if (!t.has_raw_data()) return true;
  const size_t element = RawElementSize(t.data_type());
  if (element == 0) return false;
  uint64_t count = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || (d > 0 && count > (uint64_t{1} << 40) / static_cast<uint64_t>(d))) return false;
    count *= static_cast<uint64_t>(d);
  }
  return t.raw_data().size() == count * element;
}

// ONNX 1.12's inference reads constant operands (initializers, Constant
// values) with ParseData, which sizes its result by raw_data's length
// rounded down to whole elements and then copies the whole length: raw
// bytes that are not a whole number of elements overflow the heap (found
// by the model fuzzer). GraphBuilder rejects such a tensor with a message;
// inference must not see it. Checks every tensor of the graph and of its
// nested graphs.
bool AllRawDataFits(onnx::ModelProto& model) {
  bool fits = true;
  ForEachGraph(*model.mutable_graph(), [&](onnx::GraphProto& graph) {
    for (const auto& init : graph.initializer()) fits = fits && RawDataFits(init);
    for (const auto& node : graph.node()) {
      for (const auto& attr : node.attribute()) {
        if (attr.has_t()) fits = fits && RawDataFits(attr.t());
        for (const auto& t : attr.tensors()) fits = fits && RawDataFits(t);
      }
    }
  });
  return fits;
}

// ONNX 1.12's inference functions read the attributes their schema marks
// required without checking that they are there: a Scan without
// num_scan_inputs dereferences null (found by the model fuzzer). True when
// every node of a known op, nested graphs included, has each required
// attribute with its schema's type; the loader names what is missing when
// it builds the node.
bool AllRequiredAttributesPresent(onnx::ModelProto& model) {
  std::unordered_map<std::string, int> opsets;
  for (const auto& import : model.opset_import()) {
    opsets[import.domain() == "ai.onnx" ? "" : import.domain()] = static_cast<int>(import.version());
  }
  bool present = true;
  ForEachNode(*model.mutable_graph(), [&](onnx::NodeProto& node) {
    if (!present) return;
    const std::string domain = node.domain() == "ai.onnx" ? "" : node.domain();
    auto opset = opsets.find(domain);
    if (opset == opsets.end()) return;
    const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Schema(node.op_type(), opset->second, domain);
    if (schema == nullptr) return;
    for (const auto& [name, declared] : schema->attributes()) {
      if (!declared.required) continue;
      const auto it = std::find_if(node.attribute().begin(), node.attribute().end(),
                                   [&](const onnx::AttributeProto& a) { return a.name() == name; });
      if (it == node.attribute().end() || it->type() != declared.type) present = false;
    }
  });
  return present;
}

// Undoes AddInferenceKernelShapes: the attribute was appended last.
void RemoveInferenceKernelShapes(const std::vector<onnx::NodeProto*>& added) {
  for (onnx::NodeProto* node : added) node->mutable_attribute()->RemoveLast();
}

// ONNX 1.12's LayerNormalization inference writes the Mean and InvStdDev
// shapes by indexing dim(axis + rank) without checking that it is not
// negative: an axis below -rank (say the default -1 on a 0-D input) crashes
// the process (found by the model fuzzer). Y's shape, the only one
// inference models use, does not depend on the axis, and the function only
// touches the statistics when the node lists them. So, for the duration of
// inference, LayerNormalization nodes list only Y; `hidden` keeps the
// outputs taken away for RestoreLayerNormStatistics. Returns false (nothing
// hidden) when some node reads a statistic: its input would then have no
// type, which 1.12's inference dereferences (see AllNodeInputsDefined).
bool HideLayerNormStatistics(onnx::ModelProto& model,
                             std::vector<std::pair<onnx::NodeProto*, std::vector<std::string>>>& hidden) {
  std::set<std::string> read;
  std::vector<onnx::NodeProto*> layer_norms;
  ForEachNode(*model.mutable_graph(), [&](onnx::NodeProto& node) {
    read.insert(node.input().begin(), node.input().end());
    const bool onnx_domain = node.domain().empty() || node.domain() == "ai.onnx";
    if (onnx_domain && node.op_type() == "LayerNormalization" && node.output_size() > 1) {
      layer_norms.push_back(&node);
    }
  });
  for (const onnx::NodeProto* node : layer_norms) {
    for (int i = 1; i < node->output_size(); ++i) {
      if (!node->output(i).empty() && read.count(node->output(i))) return false;
    }
  }
  for (onnx::NodeProto* node : layer_norms) {
    std::vector<std::string> statistics(node->output().begin() + 1, node->output().end());
    node->mutable_output()->DeleteSubrange(1, node->output_size() - 1);
    hidden.emplace_back(node, std::move(statistics));
  }
  return true;
}

void RestoreLayerNormStatistics(const std::vector<std::pair<onnx::NodeProto*, std::vector<std::string>>>& hidden) {
  for (const auto& [node, statistics] : hidden) {
    for (const std::string& name : statistics) node->add_output(name);
  }
}

}  // namespace

void RunOnnxShapeInference(onnx::ModelProto& model) {
  if (!AllNodeInputsDefined(model)) {
    Log().debug("skipping ONNX shape inference: a node reads a value nothing defines or types");
    return;
  }
  if (!AllRequiredAttributesPresent(model)) {
    Log().debug("skipping ONNX shape inference: a node lacks an attribute its schema requires");
    return;
  }
  if (!AllRawDataFits(model)) {
    Log().debug("skipping ONNX shape inference: a tensor's raw data does not match its dims and type");
    return;
  }
  std::vector<onnx::NodeProto*> with_kernel_shape;
  if (!AddInferenceKernelShapes(model, with_kernel_shape)) {
    Log().debug("skipping ONNX shape inference: a convolution's weight shape is unknown or a stride is not positive");
    return;
  }
  std::vector<std::pair<onnx::NodeProto*, std::vector<std::string>>> hidden_statistics;
  if (HideLayerNormStatistics(model, hidden_statistics)) {
    try {
      onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(),
                                         onnx::ShapeInferenceOptions(false, 0, true));
    } catch (const std::exception& e) {
      Log().debug("ONNX shape inference failed, continuing without inferred shapes: {}", e.what());
    }
    RestoreLayerNormStatistics(hidden_statistics);
  } else {
    Log().debug("skipping ONNX shape inference: a node reads a LayerNormalization's Mean or InvStdDev");
  }
  RemoveInferenceKernelShapes(with_kernel_shape);
}

}  // namespace kiln::graph
