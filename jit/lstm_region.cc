#include "jit/lstm_region.h"

#include <string>

#include "graph/log.h"
#include "graph/lstm_pattern.h"
#include "jit/gemm_region.h"

namespace kiln::jit {

StatusOr<std::unique_ptr<CompiledRegion>> CompileLstmRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                            const graph::Region& region,
                                                            const std::vector<Dims>& input_dims, bool generic) {
  if (region.kind != graph::RegionKind::kLstm || region.nodes.size() != 1) {
    return Unsupported("jit: region ", region.id, " is not a single LSTM");
  }
  if (generic) return Unsupported("jit: LSTM code is compiled per (seq, batch), not shape-generic");
  if (input_dims.size() != region.inputs.size()) {
    return InvalidArgument("jit: region ", region.id, " has ", region.inputs.size(), " inputs but ", input_dims.size(),
                           " dims were given");
  }
  const graph::Node& node = graph.node(region.nodes[0]);
  const std::optional<graph::LstmPattern> pattern = graph::AsLstm(graph, node);
  if (!pattern) return Unsupported("jit: ", node.Describe(), " is not an LSTM the JIT compiles");

  CompiledRegion::LstmOperands operands;
  operands.x_input = RegionInputIndex(region, pattern->x);
  operands.initial_h_input = pattern->initial_h == graph::kNoValue ? -1 : RegionInputIndex(region, pattern->initial_h);
  operands.initial_c_input = pattern->initial_c == graph::kNoValue ? -1 : RegionInputIndex(region, pattern->initial_c);
  if (operands.x_input < 0 || (pattern->initial_h != graph::kNoValue && operands.initial_h_input < 0) ||
      (pattern->initial_c != graph::kNoValue && operands.initial_c_input < 0)) {
    return InvalidArgument("jit: region ", region.id, " does not read the operands of ", node.Describe());
  }
  const Dims& x = input_dims[static_cast<size_t>(operands.x_input)];
  if (x.size() != 3 || x[2] != pattern->input_size) {
    return InvalidArgument("jit: ", node.Describe(), ": X ", DimsToString(x), " is not [seq, batch, ",
                           pattern->input_size, "]");
  }
  const int64_t dirs = pattern->num_directions, hidden = pattern->hidden_size;
  const Dims state{dirs, x[1], hidden};
  for (int input : {operands.initial_h_input, operands.initial_c_input}) {
    if (input >= 0 && input_dims[static_cast<size_t>(input)] != state) {
      return InvalidArgument("jit: ", node.Describe(), ": an initial state is ",
                             DimsToString(input_dims[static_cast<size_t>(input)]), ", not ", DimsToString(state));
    }
  }
  if (x[0] == 0 || x[1] == 0) return Unsupported("jit: ", node.Describe(), ": an empty X ", DimsToString(x));

  CompiledRegion::Info info;
  for (graph::ValueId out : region.outputs) {
    if (out == pattern->y) {
      operands.outputs.push_back(CompiledRegion::LstmOutput::kY);
      info.output_dims.push_back({x[0], dirs, x[1], hidden});
    } else if (out == pattern->y_h || out == pattern->y_c) {
      operands.outputs.push_back(out == pattern->y_h ? CompiledRegion::LstmOutput::kYH
                                                     : CompiledRegion::LstmOutput::kYC);
      info.output_dims.push_back(state);
    } else {
      return InvalidArgument("jit: region ", region.id, " has an output that is not one of ", node.Describe(), "'s");
    }
  }

  LstmProblem problem;
  problem.seq = x[0];
  problem.batch = x[1];
  problem.input = pattern->input_size;
  problem.hidden = hidden;
  problem.num_directions = pattern->num_directions;
  problem.reverse = pattern->reverse;
  const float* b = pattern->b == graph::kNoValue ? nullptr : graph.value(pattern->b).constant->data<float>();
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<CompiledLstm> lstm,
                        CompileLstm(compiler, problem, graph.value(pattern->w).constant->data<float>(),
                                    graph.value(pattern->r).constant->data<float>(), b));
  info.name = "lstm_region" + std::to_string(region.id);
  info.compile_ms = lstm->compile_ms();
  info.reused_code = lstm->reused_code();
  info.from_disk_cache = lstm->from_disk_cache();
  info.flops = lstm->flops();
  info.input_baked.assign(region.inputs.size(), true);
  for (int input : {operands.x_input, operands.initial_h_input, operands.initial_c_input}) {
    if (input >= 0) info.input_baked[static_cast<size_t>(input)] = false;
  }
  Log().debug("jit: compiled region {} ({}, {}) in {:.2f} ms", region.id, node.Describe(), lstm->label(),
              lstm->compile_ms());
  return std::make_unique<CompiledRegion>(std::shared_ptr<const CompiledLstm>(std::move(lstm)), std::move(operands),
                                          std::move(info));
}

}  // namespace kiln::jit
