// Factories of the oneDNN-backed kernel family, registered in
// dnnl_family.cc. Each parses and checks its node's attributes.
#pragma once

#include <memory>

#include "graph/graph.h"
#include "kernels/kernel.h"

namespace kiln::kernels {

StatusOr<std::unique_ptr<OpKernel>> CreateConvKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateConvTransposeKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateMatMulKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateGemmKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateBatchNormKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateMaxPoolKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateAveragePoolKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateGlobalAveragePoolKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateGlobalMaxPoolKernel(const graph::Node& node);

}  // namespace kiln::kernels
