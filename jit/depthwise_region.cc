#include "jit/depthwise_region.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "graph/depthwise_pattern.h"
#include "graph/log.h"
#include "jit/codegen_target.h"
#include "jit/depthwise_codegen.h"
#include "jit/gemm_region.h"
#include "jit/region_ops.h"

namespace kiln::jit {
StatusOr<std::unique_ptr<CompiledRegion>> CompileDepthwiseRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                                 const graph::Region& region,
                                                                 const std::vector<Dims>& input_dims, bool generic) {
  const auto start = std::chrono::steady_clock::now();
  if (region.kind != graph::RegionKind::kDepthwiseConv || region.nodes.size() != 1 || region.outputs.size() != 1) {
    return Unsupported("jit: region ", region.id, " is not a single depthwise convolution");
  }
  if (generic) return Unsupported("jit: depthwise convolutions compile per shape only");
  if (input_dims.size() != region.inputs.size()) {
    return InvalidArgument("jit: region ", region.id, " has ", region.inputs.size(), " inputs but ", input_dims.size(),
                           " dims were given");
  }
  const graph::Node& node = graph.node(region.nodes[0]);
  const std::optional<graph::DepthwisePattern> pattern = graph::AsDepthwiseConv(graph, node);
  if (!pattern) return Unsupported("jit: ", node.Describe(), " is not a depthwise convolution the JIT compiles");

  DepthwiseIo io;
  io.num_inputs = region.inputs.size();
  io.x_input = RegionInputIndex(region, pattern->x);
  io.residual_input = pattern->residual == graph::kNoValue ? -1 : RegionInputIndex(region, pattern->residual);
  if (io.x_input < 0 || (pattern->residual != graph::kNoValue && io.residual_input < 0)) {
    return InvalidArgument("jit: region ", region.id, " does not read the operands of ", node.Describe());
  }
  const Dims& x = input_dims[static_cast<size_t>(io.x_input)];
  if (x.size() != 4 || x[3] != pattern->channels) {
    return InvalidArgument("jit: ", node.Describe(), ": X ", DimsToString(x), " is not NHWC with ", pattern->channels,
                           " channels");
  }
  DepthwiseProblem problem;
  problem.batch = x[0];
  problem.in_h = x[1];
  problem.in_w = x[2];
  problem.channels = x[3];
  problem.kernel_h = pattern->kernel[0];
  problem.kernel_w = pattern->kernel[1];
  problem.stride_h = pattern->strides[0];
  problem.stride_w = pattern->strides[1];
  problem.dilation_h = pattern->dilations[0];
  problem.dilation_w = pattern->dilations[1];
  problem.pad_top = pattern->pads[0];
  problem.pad_left = pattern->pads[1];
  const std::array<int64_t, 2> out = graph::DepthwiseOutputSize(*pattern, problem.in_h, problem.in_w);
  problem.out_h = out[0];
  problem.out_w = out[1];
  const Dims y = {problem.batch, problem.out_h, problem.out_w, problem.channels};
  if (io.residual_input >= 0 && input_dims[static_cast<size_t>(io.residual_input)] != y) {
    return Unsupported("jit: ", node.Describe(), ": residual ",
                       DimsToString(input_dims[static_cast<size_t>(io.residual_input)]), " is not the output's shape ",
                       DimsToString(y));
  }
  // Empty inputs and outputs stay with the interpreter, which reports them.
  KILN_RETURN_IF_ERROR(ValidateDepthwiseProblem(problem));
  KILN_RETURN_IF_ERROR(SetEpilogueActivation(pattern->activation, problem.epilogue));
  problem.epilogue.has_residual = io.residual_input >= 0;
  const float* bias = nullptr;
  if (pattern->bias != graph::kNoValue) {
    bias = graph.value(pattern->bias).constant->data<float>();
    problem.epilogue.has_bias = true;
  }
  const float* weight = graph.value(pattern->weight).constant->data<float>();

  // The host's vector registers, as the GEMM generator sees them.
  const int lanes = internal::HostIsa(compiler).lanes;

  const std::string name = "kiln_region" + std::to_string(region.id) + "_" + std::to_string(compiler.NextSerial());
  KILN_ASSIGN_OR_RETURN(internal::RegionCode code, internal::EmitAndCompile(compiler, name, [&](llvm::Module& module) {
                          return EmitDepthwiseEntry(module, name, problem, io, weight, bias, lanes, compiler.cpu_name(),
                                                    compiler.cpu_features());
                        }));
  CompiledRegion::Info info;
  info.name = code.code->symbol();
  info.reused_code = code.reused;
  info.from_disk_cache = code.from_disk;
  info.num_rows = problem.rows();
  info.row_len = problem.out_w * problem.channels;
  info.input_baked.assign(region.inputs.size(), true);
  info.input_baked[static_cast<size_t>(io.x_input)] = false;
  if (io.residual_input >= 0) info.input_baked[static_cast<size_t>(io.residual_input)] = false;
  info.output_dims = {y};
  info.flops = problem.flops();
  info.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  auto compiled = std::make_unique<CompiledRegion>(std::move(code.code), std::move(info));
  Log().debug("jit: {} {} for region {} (depthwise {}x{}/{} over {}) in {:.2f} ms, {} code bytes",
              compiled->reused_code()       ? "reused"
              : compiled->from_disk_cache() ? "linked from cache"
                                            : "compiled",
              compiled->name(), region.id, problem.kernel_h, problem.kernel_w, problem.stride_h, DimsToString(x),
              compiled->compile_ms(), compiled->code_bytes());
  return compiled;
}

}  // namespace kiln::jit
