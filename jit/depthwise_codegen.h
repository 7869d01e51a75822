// Depthwise 2-D convolution over NHWC data, generated per shape for the
// host's vector ISA (graph/depthwise_pattern.h gives the operation).
//
// The code computes a register tile of output pixels (along a row) by
// channel vectors at a time, at most half the vector registers as
// accumulators: the accumulators start at the bias; each filter tap loads
// its weight vectors once and adds one FMA per pixel and vector (a tap
// outside the input is skipped, which is the zero padding); then the
// residual and the activation are applied and each vector is stored once.
// The taps and the bias are baked into the code as constant data, laid out
// [tap][channel] and padded to whole vectors, so a tap's weights are aligned
// vector loads; the last vector of a pixel uses masked loads and stores,
// never scalar tails. Every dim is a compile-time constant. Rows of the
// output, (n, oh) pairs, are the unit of work the caller splits between
// threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jit/gemm_codegen.h"
#include "kiln/status.h"

namespace llvm {
class Module;
}  // namespace llvm

namespace kiln::jit {

struct DepthwiseProblem {
  int64_t batch = 0, in_h = 0, in_w = 0, channels = 0;
  int64_t kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0;  // the bottom and right pads only shape out_h, out_w
  int64_t out_h = 0, out_w = 0;
  // bias (channels floats), residual (Y's NHWC shape) and activation.
  GemmEpilogue epilogue;

  int64_t rows() const { return batch * out_h; }
  // 2 * N * OH * OW * C * KH * KW.
  double flops() const;
};

// Where the entry finds its buffers, with CompiledRegion::EntryFn's ABI:
// inputs[x_input] is X, inputs[residual_input] the residual (-1: none),
// outputs[0] is Y; `num_inputs` region inputs in all, those other than X and
// the residual baked in (never read).
struct DepthwiseIo {
  int x_input = 0;
  int residual_input = -1;
  size_t num_inputs = 1;
};

// Checks sizes and the epilogue: kInvalidArgument naming what is wrong.
Status ValidateDepthwiseProblem(const DepthwiseProblem& problem);

// Emits the entry `name` into `module` for vectors of `lanes` floats and the
// CPU `cpu` with `features`. `weight` is ONNX's [C, 1, KH, KW]; `bias` has C
// floats or is null (then problem.epilogue.has_bias must be false). Both
// are copied into the module.
Status EmitDepthwiseEntry(llvm::Module& module, const std::string& name, const DepthwiseProblem& problem,
                          const DepthwiseIo& io, const float* weight, const float* bias, int lanes,
                          const std::string& cpu, const std::string& features);

// The assembly of the entry for another CPU (see EmitAssemblyFor in
// codegen_target.h), for tests that read the generated code.
StatusOr<std::string> EmitDepthwiseAssembly(const DepthwiseProblem& problem, const float* weight, const float* bias,
                                            const std::string& cpu, const std::string& features);

}  // namespace kiln::jit
