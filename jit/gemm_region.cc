#include "jit/gemm_region.h"

#include <algorithm>

#include "graph/gemm_pattern.h"

namespace kiln::jit {
namespace {

// Bit-exact code reproduces the interpreter's packed GEMM, so the
// interpreter must take that path for this node and shape: a MatMul or Gemm
// (a 1x1 convolution runs on oneDNN), and as its kernels choose
// (kernels/matmul.cc and gemm.cc) at least
// kPackedMinColumns columns, and for MatMul more than kSmallWork
// multiply-adds (smaller products run a plain loop). A dynamic M must
// qualify for every M >= 1.
Status CheckInterpreterUsesPackedGemm(const graph::Node& node, const GemmProblem& problem) {
  constexpr int64_t kPackedMinColumns = 8;
  constexpr int64_t kSmallWork = 16384;
  if (node.op_type != "MatMul" && node.op_type != "Gemm" && node.op_type != "FusedMatMul") {
    return Unsupported("jit: bitwise-equivalent mode: the interpreter runs ", node.Describe(),
                       " on oneDNN, whose summation order is its own");
  }
  if (problem.epilogue.activation == GemmActivation::kElu) {
    return Unsupported("jit: bitwise-equivalent mode: ", node.Describe(), "'s Elu epilogue calls libm's expm1");
  }
  if (problem.n < kPackedMinColumns) {
    return Unsupported("jit: bitwise-equivalent mode: ", node.Describe(), " has N = ", problem.n,
                       ", which the interpreter computes with oneDNN");
  }
  // Gemm (and a fused Gemm, which keeps its attributes) has no small path.
  bool gemm_op = node.op_type == "Gemm";
  for (const char* attr : {"transA", "transB", "alpha", "beta"}) gemm_op = gemm_op || node.FindAttribute(attr);
  const int64_t rows = problem.m > 0 ? problem.m : 1;
  if (!gemm_op && rows * problem.k * problem.n <= kSmallWork) {
    return Unsupported("jit: bitwise-equivalent mode: ", node.Describe(), " is small enough (", rows, "x", problem.k,
                       "x", problem.n, ") that the interpreter computes it with a plain loop");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<GemmActivation> GemmActivationOf(const std::string& a) {
  if (a.empty()) return GemmActivation::kNone;
  if (a == "Relu") return GemmActivation::kRelu;
  if (a == "LeakyRelu") return GemmActivation::kLeakyRelu;
  if (a == "Clip") return GemmActivation::kClip;
  if (a == "Sigmoid") return GemmActivation::kSigmoid;
  if (a == "Tanh") return GemmActivation::kTanh;
  if (a == "HardSwish") return GemmActivation::kHardSwish;
  if (a == "HardSigmoid") return GemmActivation::kHardSigmoid;
  if (a == "Elu") return GemmActivation::kElu;
  if (a == "Gelu") return GemmActivation::kGeluErf;  // the fusion takes erf GELU only
  return Unsupported("jit: epilogue activation '", a, "'");
}

Status SetEpilogueActivation(const graph::EpilogueActivation& activation, GemmEpilogue& epilogue) {
  KILN_ASSIGN_OR_RETURN(epilogue.activation, GemmActivationOf(activation.name));
  epilogue.alpha = activation.alpha;
  epilogue.beta = activation.beta;
  return Status::Ok();
}

int RegionInputIndex(const graph::Region& region, graph::ValueId v) {
  auto it = std::find(region.inputs.begin(), region.inputs.end(), v);
  return it == region.inputs.end() ? -1 : static_cast<int>(it - region.inputs.begin());
}

StatusOr<std::unique_ptr<CompiledRegion>> CompileGemmRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                            const graph::Region& region,
                                                            const std::vector<Dims>& input_dims, bool generic) {
  if (region.kind != graph::RegionKind::kGemm || region.nodes.size() != 1 || region.outputs.size() != 1) {
    return Unsupported("jit: region ", region.id, " is not a single GEMM");
  }
  if (input_dims.size() != region.inputs.size()) {
    return InvalidArgument("jit: region ", region.id, " has ", region.inputs.size(), " inputs but ", input_dims.size(),
                           " dims were given");
  }
  const graph::Node& node = graph.node(region.nodes[0]);
  const std::optional<graph::GemmPattern> pattern = graph::AsGemm(graph, node);
  if (!pattern) return Unsupported("jit: ", node.Describe(), " is not a GEMM with a constant weight");

  CompiledRegion::GemmOperands operands;
  operands.a_input = RegionInputIndex(region, pattern->a);
  operands.residual_input = pattern->residual == graph::kNoValue ? -1 : RegionInputIndex(region, pattern->residual);
  if (operands.a_input < 0 || (pattern->residual != graph::kNoValue && operands.residual_input < 0)) {
    return InvalidArgument("jit: region ", region.id, " does not read the operands of ", node.Describe());
  }
  const Dims& a = input_dims[static_cast<size_t>(operands.a_input)];
  if (a.size() < 2 || a.back() != pattern->k) {
    return InvalidArgument("jit: ", node.Describe(), ": A ", DimsToString(a), " does not end in K = ", pattern->k);
  }
  int64_t m = 1;
  for (size_t d = 0; d + 1 < a.size(); ++d) m *= a[d];
  if (operands.residual_input >= 0) {
    Dims out(a.begin(), a.end() - 1);
    out.push_back(pattern->n);
    const Dims& r = input_dims[static_cast<size_t>(operands.residual_input)];
    if (r != out) {
      return Unsupported("jit: ", node.Describe(), ": residual ", DimsToString(r), " is not the output's shape ",
                         DimsToString(out));
    }
  }

  GemmProblem problem;
  problem.m = generic ? 0 : m;
  problem.n = pattern->n;
  problem.k = pattern->k;
  problem.alpha = pattern->alpha;
  problem.epilogue.has_residual = pattern->residual != graph::kNoValue;
  KILN_RETURN_IF_ERROR(SetEpilogueActivation(pattern->activation, problem.epilogue));
  if (pattern->bias != graph::kNoValue && pattern->beta != 0.0f) {
    // The bias is a constant: scaled once here, never read from the graph
    // at run time.
    const Tensor& bias = *graph.value(pattern->bias).constant;
    const float* data = bias.data<float>();
    operands.bias.resize(static_cast<size_t>(pattern->n));
    for (int64_t j = 0; j < pattern->n; ++j) operands.bias[static_cast<size_t>(j)] = pattern->beta * data[j];
    problem.epilogue.has_bias = true;
  }
  if (!generic && m == 0) return Unsupported("jit: ", node.Describe(), ": an empty A");
  if (compiler.bit_exact()) {
    KILN_RETURN_IF_ERROR(CheckInterpreterUsesPackedGemm(node, problem));
    problem.bit_exact = true;
  }

  const Tensor& weight = *graph.value(pattern->weight).constant;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<CompiledGemm> gemm,
                        CompileGemm(compiler, problem, weight.data<float>(), pattern->weight_transposed));
  CompiledRegion::Info info;
  info.name = "gemm_region" + std::to_string(region.id);
  info.generic = generic;
  info.compile_ms = gemm->compile_ms();
  info.reused_code = gemm->reused_code();
  info.from_disk_cache = gemm->from_disk_cache();
  info.input_baked.assign(region.inputs.size(), true);
  info.input_baked[static_cast<size_t>(operands.a_input)] = false;
  if (operands.residual_input >= 0) info.input_baked[static_cast<size_t>(operands.residual_input)] = false;
  if (!generic) {
    Dims out(a.begin(), a.end() - 1);
    out.push_back(pattern->n);
    info.output_dims = {out};
    info.num_rows = m;
    info.row_len = pattern->n;
  }
  return std::make_unique<CompiledRegion>(std::shared_ptr<const CompiledGemm>(std::move(gemm)), std::move(operands),
                                          std::move(info));
}

bool GemmServes(const CompiledRegion& code, const std::vector<Dims>& input_dims) {
  const CompiledGemm* gemm = code.gemm();
  if (gemm == nullptr) return false;
  const CompiledRegion::GemmOperands& operands = code.gemm_operands();
  if (static_cast<size_t>(operands.a_input) >= input_dims.size()) return false;
  const Dims& a = input_dims[static_cast<size_t>(operands.a_input)];
  if (a.size() < 2 || a.back() != gemm->problem().k) return false;
  int64_t m = 1;
  for (size_t d = 0; d + 1 < a.size(); ++d) m *= a[d];
  if (!gemm->dynamic_m() && m != gemm->problem().m) return false;
  if (operands.residual_input >= 0) {
    // The residual must have the output's dims: A's leading dims, then N.
    if (static_cast<size_t>(operands.residual_input) >= input_dims.size()) return false;
    const Dims& r = input_dims[static_cast<size_t>(operands.residual_input)];
    if (r.size() != a.size() || r.back() != gemm->problem().n || !std::equal(a.begin(), a.end() - 1, r.begin())) {
      return false;
    }
  }
  return true;
}

void GemmCallShape(const CompiledRegion& code, const std::vector<Dims>& input_dims, Dims& output_dims, int64_t& m) {
  const Dims& a = input_dims[static_cast<size_t>(code.gemm_operands().a_input)];
  m = 1;
  for (size_t d = 0; d + 1 < a.size(); ++d) m *= a[d];
  output_dims.assign(a.begin(), a.end() - 1);
  output_dims.push_back(code.gemm()->problem().n);
}

}  // namespace kiln::jit
