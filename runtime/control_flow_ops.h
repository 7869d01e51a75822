// The control-flow kernels, one file each; CreateControlFlowKernel
// (control_flow.cc) picks among them.
#pragma once

#include <memory>
#include <string>

#include "graph/body_partitioner.h"
#include "graph/graph.h"
#include "kernels/kernel.h"
#include "kiln/status.h"

namespace kiln::runtime {

// `bodies`: as for CreateControlFlowKernel (null: no regions in bodies).
StatusOr<std::unique_ptr<kernels::OpKernel>> CreateIfKernel(const graph::Node& node,
                                                            const kernels::KernelRegistry& registry,
                                                            const std::vector<graph::BodyRegions>* bodies = nullptr);
StatusOr<std::unique_ptr<kernels::OpKernel>> CreateLoopKernel(const graph::Node& node,
                                                              const kernels::KernelRegistry& registry,
                                                              const std::vector<graph::BodyRegions>* bodies = nullptr);
StatusOr<std::unique_ptr<kernels::OpKernel>> CreateScanKernel(const graph::Node& node,
                                                              const kernels::KernelRegistry& registry,
                                                              const std::vector<graph::BodyRegions>* bodies = nullptr);

StatusOr<std::unique_ptr<kernels::OpKernel>> CreateSequenceMapKernel(
    const graph::Node& node, const kernels::KernelRegistry& registry,
    const std::vector<graph::BodyRegions>* bodies = nullptr);

// The sub-graph in `node`'s attribute `name` and where its captures start
// among the node's inputs; kInvalidModel when the attribute is missing.
struct BodyRef {
  const graph::Graph* graph = nullptr;
  size_t capture_offset = 0;
};
StatusOr<BodyRef> FindBody(const graph::Node& node, const std::string& name);

}  // namespace kiln::runtime
