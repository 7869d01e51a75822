// Factories of the oneDNN-backed kernel family, registered in
// dnnl_family.cc. Each parses and checks its node's attributes.
#pragma once

#include <memory>

#include "graph/graph.h"
#include "kernels/epilogue.h"
#include "kernels/kernel.h"

namespace kiln::kernels {

StatusOr<std::unique_ptr<OpKernel>> CreateConvKernel(const graph::Node& node);
// Whether oneDNN's convolutions on this host work in NHWC (its AVX-512
// kernels do; on AVX2 it picks blocked layouts): when they do, running
// convolutional sub-graphs channels-last saves a reorder per Conv.
bool ConvPrefersChannelsLast();
StatusOr<std::unique_ptr<OpKernel>> CreateConvTransposeKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateMatMulKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateGemmKernel(const graph::Node& node);
// Domain "kiln" fusions written by graph/fuse_epilogues.cc.
StatusOr<std::unique_ptr<OpKernel>> CreateFusedConvKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateFusedMatMulKernel(const graph::Node& node);
// Gemm followed by `epilogue` (and the residual input 3 when present);
// FusedMatMul's factory uses it for a fused Gemm.
StatusOr<std::unique_ptr<OpKernel>> CreateGemmKernelWithEpilogue(const graph::Node& node, const Epilogue& epilogue);
StatusOr<std::unique_ptr<OpKernel>> CreateBatchNormKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateMaxPoolKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateAveragePoolKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateGlobalAveragePoolKernel(const graph::Node& node);
StatusOr<std::unique_ptr<OpKernel>> CreateGlobalMaxPoolKernel(const graph::Node& node);

}  // namespace kiln::kernels
