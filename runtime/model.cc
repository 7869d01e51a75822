#include <filesystem>

#include "graph/log.h"
#include "graph/onnx_loader.h"
#include "graph/pipeline.h"
#include "kernels/dnnl_kernels.h"
#include "kernels/kernel.h"
#include "kiln/session.h"
#include "runtime/model_internal.h"

namespace kiln {
namespace {

TensorInfo InfoOf(const graph::Value& v) {
  TensorInfo info;
  info.name = v.name;
  info.dtype = v.dtype;
  info.rank_known = v.shape.rank_known;
  info.is_sequence = v.kind == graph::ValueKind::kSequence || v.kind == graph::ValueKind::kOptionalSequence;
  info.is_optional = v.kind == graph::ValueKind::kOptionalTensor || v.kind == graph::ValueKind::kOptionalSequence;
  for (const graph::Dim& d : v.shape.dims) {
    info.dims.push_back(d.is_concrete() ? d.size : -1);
    info.dim_names.push_back(d.symbol);
  }
  return info;
}

// Evaluates one node on constant inputs for constant folding, with the same
// kernels the interpreter uses, serially.
StatusOr<std::vector<Tensor>> EvaluateNode(const graph::Node& node, const std::vector<const Tensor*>& inputs) {
  class OwnedAllocator final : public kernels::OutputAllocator {
   public:
    StatusOr<Tensor> AllocateOutput(int, DType dtype, const Dims& dims) override {
      return Tensor::Allocate(dtype, dims);
    }
  };
  KILN_ASSIGN_OR_RETURN(auto kernel, kernels::DefaultKernelRegistry().Create(node));
  std::vector<Tensor> outputs(node.outputs.size());
  OwnedAllocator allocator;
  kernels::SerialRunner serial;
  kernels::KernelContext ctx(inputs, outputs, allocator, serial);
  KILN_RETURN_IF_ERROR(kernel->Compute(ctx));
  return outputs;
}

// Runs the load-time graph pipeline and records the model's signature.
Status Prepare(graph::Graph loaded, const LoadOptions& options, Model::Impl& impl) {
  impl.graph = std::move(loaded);
  const graph::ModelDescription& d = impl.graph.description;
  impl.metadata = {d.producer_name, d.producer_version, d.domain,        d.model_version,
                   d.doc_string,    impl.graph.name,    d.metadata_props};
  graph::PipelineOptions pipeline;
  pipeline.evaluator = EvaluateNode;
  pipeline.fuse_kernels = options.graph_optimization == GraphOptimization::kAll;
  pipeline.channels_last = options.channels_last == ChannelsLast::kOn ||
                           (options.channels_last == ChannelsLast::kAuto && kernels::ConvPrefersChannelsLast());
  KILN_RETURN_IF_ERROR(graph::RunGraphPipeline(impl.graph, pipeline));
  for (graph::ValueId id : impl.graph.inputs()) impl.inputs.push_back(InfoOf(impl.graph.value(id)));
  for (graph::ValueId id : impl.graph.outputs()) impl.outputs.push_back(InfoOf(impl.graph.value(id)));
  return Status::Ok();
}

}  // namespace

const char* GraphOptimizationName(GraphOptimization level) {
  switch (level) {
    case GraphOptimization::kBasic: return "basic";
    case GraphOptimization::kAll: return "all";
  }
  return "?";
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

StatusOr<std::shared_ptr<const Model>> Model::Load(const std::string& path, const LoadOptions& options) {
  KILN_RETURN_IF_ERROR(CheckHostCpu());
  auto loaded = graph::LoadOnnxFile(path);
  if (!loaded.ok()) return loaded.status().WithContext(path);
  auto impl = std::make_unique<Impl>();
  Status prepared = Prepare(std::move(loaded).value(), options, *impl);
  if (!prepared.ok()) return prepared.WithContext(path);
  Log().debug("loaded {}: {} nodes after optimisation", path, impl->graph.num_live_nodes());
  return std::shared_ptr<const Model>(new Model(std::move(impl)));
}

StatusOr<std::shared_ptr<const Model>> Model::LoadFromBytes(const void* data, size_t size, const std::string& base_dir,
                                                            const LoadOptions& options) {
  KILN_RETURN_IF_ERROR(CheckHostCpu());
  graph::LoadOptions onnx_options;
  onnx_options.base_dir = base_dir;
  KILN_ASSIGN_OR_RETURN(graph::Graph loaded, graph::LoadOnnxModel(data, size, onnx_options));
  auto impl = std::make_unique<Impl>();
  KILN_RETURN_IF_ERROR(Prepare(std::move(loaded), options, *impl));
  return std::shared_ptr<const Model>(new Model(std::move(impl)));
}

const std::vector<TensorInfo>& Model::inputs() const { return impl_->inputs; }
const std::vector<TensorInfo>& Model::outputs() const { return impl_->outputs; }
int Model::opset() const { return impl_->graph.default_opset(); }
const ModelMetadata& Model::metadata() const { return impl_->metadata; }

const char* TierPolicyName(TierPolicy policy) {
  switch (policy) {
    case TierPolicy::kInterpreter: return "interp";
    case TierPolicy::kJit: return "jit";
    case TierPolicy::kAuto: return "auto";
  }
  return "?";
}

}  // namespace kiln
