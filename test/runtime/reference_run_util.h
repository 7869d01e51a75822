// A reference for graph-pass end-to-end tests: runs a model's original
// nodes one by one with their own kernels (kernels::DefaultKernelRegistry),
// without the graph pipeline, so a test can compare a Session's output
// (rewritten graph) against the unrewritten computation.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "graph/onnx_loader.h"
#include "kernels/kernel.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "test/tensors.h"

namespace kiln::testing {

// Runs the serialized model `bytes` node by node on `inputs` (by graph
// input name) and returns its first output.
inline StatusOr<Tensor> RunUnoptimizedReference(const std::string& bytes, const std::map<std::string, Tensor>& inputs) {
  KILN_ASSIGN_OR_RETURN(graph::Graph g, graph::LoadOnnxModel(bytes.data(), bytes.size(), {}));
  class Owned final : public kernels::OutputAllocator {
   public:
    StatusOr<Tensor> AllocateOutput(int, DType dtype, const Dims& dims) override {
      return Tensor::Allocate(dtype, dims);
    }
  };
  std::map<graph::ValueId, Tensor> values;
  for (graph::ValueId in : g.inputs()) {
    auto it = inputs.find(g.value(in).name);
    if (it == inputs.end()) return InvalidArgument("reference: no value for input '", g.value(in).name, "'");
    values[in] = it->second;
  }
  KILN_ASSIGN_OR_RETURN(std::vector<graph::NodeId> order, g.TopologicalOrder());
  for (graph::NodeId id : order) {
    const graph::Node& node = g.node(id);
    KILN_ASSIGN_OR_RETURN(auto kernel, kernels::DefaultKernelRegistry().Create(node));
    std::vector<const Tensor*> node_inputs;
    for (graph::ValueId in : node.inputs) {
      if (in == graph::kNoValue) {
        node_inputs.push_back(nullptr);
      } else if (g.value(in).constant) {
        node_inputs.push_back(&*g.value(in).constant);
      } else {
        node_inputs.push_back(&values.at(in));
      }
    }
    std::vector<Tensor> outputs(node.outputs.size());
    Owned allocator;
    kernels::SerialRunner serial;
    kernels::KernelContext ctx(node_inputs, outputs, allocator, serial);
    KILN_RETURN_IF_ERROR(kernel->Compute(ctx));
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (node.outputs[i] != graph::kNoValue) values[node.outputs[i]] = std::move(outputs[i]);
    }
  }
  return values.at(g.outputs()[0]);
}

}  // namespace kiln::testing
