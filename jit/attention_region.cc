#include "jit/attention_region.h"

#include <chrono>
#include <string>

#include "graph/attention_pattern.h"
#include "graph/log.h"
#include "jit/attention_codegen.h"
#include "jit/codegen_target.h"
#include "jit/gemm_region.h"
#include "jit/region_ops.h"

namespace kiln::jit {

StatusOr<std::unique_ptr<CompiledRegion>> CompileAttentionRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                                 const graph::Region& region,
                                                                 const std::vector<Dims>& input_dims, bool generic) {
  const auto start = std::chrono::steady_clock::now();
  if (region.kind != graph::RegionKind::kAttention || region.outputs.size() != 1) {
    return Unsupported("jit: region ", region.id, " is not an attention region");
  }
  if (input_dims.size() != region.inputs.size()) {
    return InvalidArgument("jit: region ", region.id, " has ", region.inputs.size(), " inputs but ", input_dims.size(),
                           " dims were given");
  }
  // The chain is anchored at its Softmax.
  std::optional<graph::AttentionPattern> pattern;
  for (graph::NodeId id : region.nodes) {
    if (graph.node(id).op_type == "Softmax") pattern = graph::AsAttention(graph, graph.node(id));
  }
  if (!pattern || pattern->output != region.outputs[0]) {
    return Unsupported("jit: region ", region.id, " is no longer an attention chain the JIT compiles");
  }

  const int lanes = internal::HostIsa(compiler).lanes;

  AttentionLayout layout;
  layout.num_inputs = region.inputs.size();
  layout.q_input = RegionInputIndex(region, pattern->q);
  layout.k_input = RegionInputIndex(region, pattern->k);
  layout.v_input = RegionInputIndex(region, pattern->v);
  layout.mask_input = pattern->mask == graph::kNoValue ? -1 : RegionInputIndex(region, pattern->mask);
  if (layout.q_input < 0 || layout.k_input < 0 || layout.v_input < 0 ||
      (pattern->mask != graph::kNoValue && layout.mask_input < 0)) {
    return InvalidArgument("jit: region ", region.id, " does not read the operands of its attention");
  }
  layout.q_axes = pattern->q_axes;
  layout.k_axes = pattern->k_axes;
  layout.v_axes = pattern->v_axes;
  layout.out_axes = pattern->out_axes;
  layout.head_dim = pattern->head_dim;
  layout.query_chunk = AttentionQueryChunk(pattern->head_dim, lanes);
  std::vector<int64_t> params;
  Dims output_dims;
  double flops = 0;
  KILN_RETURN_IF_ERROR(PrepareAttentionCall(layout, input_dims, params, output_dims, flops));

  AttentionProblem problem;
  problem.head_dim = pattern->head_dim;
  problem.scale = pattern->scale;
  problem.has_mask = layout.mask_input >= 0;
  const std::string name = "kiln_region" + std::to_string(region.id) + "_" + std::to_string(compiler.NextSerial());
  KILN_ASSIGN_OR_RETURN(internal::RegionCode code, internal::EmitAndCompile(compiler, name, [&](llvm::Module& module) {
                          return EmitAttentionEntry(module, name, problem, layout, lanes, compiler.cpu_name(),
                                                    compiler.cpu_features());
                        }));
  CompiledRegion::Info info;
  info.name = code.code->symbol();
  info.reused_code = code.reused;
  info.from_disk_cache = code.from_disk;
  // The entry always has the generic ABI; the tier's guard decides whether
  // it serves one signature or any.
  info.generic = true;
  info.input_baked.assign(region.inputs.size(), true);
  for (int input : {layout.q_input, layout.k_input, layout.v_input, layout.mask_input}) {
    if (input >= 0) info.input_baked[static_cast<size_t>(input)] = false;
  }
  info.num_rows = generic ? 0 : params[kAttnBatch] * params[kAttnHeads] * params[kAttnChunks];
  info.row_len = pattern->head_dim;
  if (!generic) info.output_dims = {output_dims};
  info.flops = generic ? 0 : flops;
  info.attention = layout;
  info.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  auto compiled = std::make_unique<CompiledRegion>(std::move(code.code), std::move(info));
  Log().debug("jit: {} {} for region {} (attention, head dim {}, {} lanes) in {:.2f} ms, {} code bytes",
              compiled->reused_code()       ? "reused"
              : compiled->from_disk_cache() ? "linked from cache"
                                            : "compiled",
              compiled->name(), region.id, pattern->head_dim, lanes, compiled->compile_ms(), compiled->code_bytes());
  return compiled;
}

bool AttentionServes(const CompiledRegion& code, const std::vector<Dims>& input_dims) {
  if (!code.attention_layout()) return false;
  std::vector<int64_t> params;
  Dims output_dims;
  double flops = 0;
  return PrepareAttentionCall(*code.attention_layout(), input_dims, params, output_dims, flops).ok();
}

}  // namespace kiln::jit
