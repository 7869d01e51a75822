// The oneDNN-backed family: convolutions, matrix products, batch norm and
// pooling (float32). Each op's kernel lives in its own file; this file only
// lists them with the opset ranges they implement.
#include "kernels/dnnl_kernels.h"
#include "kernels/families.h"

namespace kiln::kernels {

void RegisterDnnlKernels(KernelRegistry& registry) {
  // Every opset of these ops up to 18 has semantics the kernels implement
  // (older attributes such as Gemm's `broadcast` or BatchNormalization's
  // `spatial` are handled or rejected in the factories).
  registry.Register({"Conv", "", 1, 18, CreateConvKernel});
  registry.Register({"ConvTranspose", "", 1, 18, CreateConvTransposeKernel});
  registry.Register({"MatMul", "", 1, 18, CreateMatMulKernel});
  registry.Register({"Gemm", "", 1, 18, CreateGemmKernel});
  registry.Register({"BatchNormalization", "", 1, 18, CreateBatchNormKernel});
  // MaxPool and AveragePool 19 add dilations to AveragePool; stop at 18.
  registry.Register({"MaxPool", "", 1, 18, CreateMaxPoolKernel});
  registry.Register({"AveragePool", "", 1, 18, CreateAveragePoolKernel});
  registry.Register({"GlobalAveragePool", "", 1, 18, CreateGlobalAveragePoolKernel});
  registry.Register({"GlobalMaxPool", "", 1, 18, CreateGlobalMaxPoolKernel});
  // kiln's own ops, created only by graph/fuse_epilogues.cc (opset 1 of
  // domain "kiln"): Conv or MatMul/Gemm with a bias and activation epilogue.
  registry.Register({"FusedConv", "kiln", 1, 1, CreateFusedConvKernel});
  registry.Register({"FusedMatMul", "kiln", 1, 1, CreateFusedMatMulKernel});
  // The pooling ops on NHWC data, created only by graph/channels_last.cc.
  registry.Register({"MaxPool", "kiln", 1, 1, CreateMaxPoolKernel});
  registry.Register({"AveragePool", "kiln", 1, 1, CreateAveragePoolKernel});
  registry.Register({"GlobalAveragePool", "kiln", 1, 1, CreateGlobalAveragePoolKernel});
  registry.Register({"GlobalMaxPool", "kiln", 1, 1, CreateGlobalMaxPoolKernel});
}

}  // namespace kiln::kernels
