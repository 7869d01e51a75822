#include "runtime/control_flow.h"

#include "runtime/control_flow_ops.h"

namespace kiln::runtime {

Status ControlFlowKernel::Compute(kernels::KernelContext&) const {
  return Internal("a control-flow kernel runs through the interpreter, which hands it the run's hooks");
}

bool IsControlFlowOp(const graph::Node& node) {
  return node.domain.empty() &&
         (node.op_type == "If" || node.op_type == "Loop" || node.op_type == "Scan" || node.op_type == "SequenceMap");
}

StatusOr<BodyRef> FindBody(const graph::Node& node, const std::string& name) {
  size_t offset = node.num_explicit_inputs();
  for (const auto& [attr_name, body] : graph::Subgraphs(node)) {
    if (attr_name == name) return BodyRef{body, offset};
    offset += body->outer_scope_values().size();
  }
  return InvalidModel(node.Describe(), ": graph attribute '", name, "' is missing");
}

StatusOr<std::unique_ptr<kernels::OpKernel>> CreateControlFlowKernel(const graph::Node& node,
                                                                     const kernels::KernelRegistry& registry,
                                                                     const std::vector<graph::BodyRegions>* bodies) {
  if (node.op_type == "If") return CreateIfKernel(node, registry, bodies);
  if (node.op_type == "Loop") return CreateLoopKernel(node, registry, bodies);
  if (node.op_type == "Scan") return CreateScanKernel(node, registry, bodies);
  if (node.op_type == "SequenceMap") return CreateSequenceMapKernel(node, registry, bodies);
  return Internal(node.Describe(), " is not a control-flow op");
}

void CountUnsupportedOpsInBodies(const graph::Node& node, const kernels::KernelRegistry& registry,
                                 const std::string& path, std::map<std::string, int>& unsupported) {
  for (const auto& [attr_name, body] : graph::Subgraphs(node)) {
    const std::string body_path = path + "/" + attr_name;
    for (size_t i = 0; i < body->num_nodes(); ++i) {
      const graph::Node& inner = body->node(static_cast<graph::NodeId>(i));
      if (inner.dead) continue;
      if (IsControlFlowOp(inner)) {
        CountUnsupportedOpsInBodies(inner, registry, body_path + "/" + inner.Label(), unsupported);
      } else if (!registry.Supports(inner.op_type, inner.domain, inner.opset)) {
        const std::string op = (inner.domain.empty() ? "" : inner.domain + ".") + inner.op_type;
        ++unsupported[op + " (opset " + std::to_string(inner.opset) + ") in " + body_path];
      }
    }
  }
}

}  // namespace kiln::runtime
