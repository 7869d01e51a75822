#include "kernels/kernel.h"

#include <algorithm>

namespace kiln::kernels {

StatusOr<Tensor*> KernelContext::Output(int i, DType dtype, const Dims& dims) {
  if (i < 0 || i >= num_outputs()) return Internal("output index ", i, " out of range");
  // A kSequence tensor's data must be a sequence (kiln/sequence.h), never
  // planned memory.
  if (dtype == DType::kSequence) return InvalidArgument("output ", i, " is a sequence, which has no buffer");
  KILN_ASSIGN_OR_RETURN(outputs_[static_cast<size_t>(i)], allocator_.AllocateOutput(i, dtype, dims));
  return &outputs_[static_cast<size_t>(i)];
}

Status KernelContext::SetOutput(int i, Tensor value) {
  if (i < 0 || i >= num_outputs()) return Internal("output index ", i, " out of range");
  outputs_[static_cast<size_t>(i)] = std::move(value);
  return Status::Ok();
}

void KernelRegistry::Register(KernelDef def) { defs_.push_back(std::move(def)); }

const KernelDef* KernelRegistry::Find(const std::string& op_type, const std::string& domain, int opset) const {
  const std::string& dom = domain == "ai.onnx" ? std::string() : domain;
  for (const KernelDef& def : defs_) {
    if (def.op_type == op_type && def.domain == dom && opset >= def.since_version && opset <= def.end_version) {
      return &def;
    }
  }
  return nullptr;
}

bool KernelRegistry::Supports(const std::string& op_type, const std::string& domain, int opset) const {
  return Find(op_type, domain, opset) != nullptr;
}

StatusOr<std::unique_ptr<OpKernel>> KernelRegistry::Create(const graph::Node& node) const {
  const KernelDef* def = Find(node.op_type, node.domain, node.opset);
  if (def == nullptr) {
    return Unsupported(node.Describe(), ": op ", node.domain.empty() ? "" : node.domain + ".", node.op_type, " (opset ",
                       node.opset, ") is not supported");
  }
  auto kernel = def->factory(node);
  if (!kernel.ok()) return kernel.status().WithContext(node.Describe());
  return kernel;
}

std::vector<std::string> KernelRegistry::OpTypes() const {
  std::vector<std::string> ops;
  for (const KernelDef& def : defs_) ops.push_back(def.domain.empty() ? def.op_type : def.domain + "." + def.op_type);
  std::sort(ops.begin(), ops.end());
  ops.erase(std::unique(ops.begin(), ops.end()), ops.end());
  return ops;
}

}  // namespace kiln::kernels
