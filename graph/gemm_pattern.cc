#include "graph/gemm_pattern.h"

#include "graph/channels_last.h"
#include "graph/fuse_epilogues.h"

namespace kiln::graph {
namespace {

bool IsFloat32(const Graph& graph, ValueId v) { return v != kNoValue && graph.value(v).dtype == DType::kFloat32; }

bool AllEqual(const StatusOr<std::vector<int64_t>>& ints, int64_t value) {
  if (!ints.ok()) return false;
  for (int64_t i : *ints) {
    if (i != value) return false;
  }
  return true;
}

// A channels-last 1x1 convolution with unit strides, no padding and one
// group: per pixel, Y[p, :] = X[p, :] * W^T, i.e. a GEMM with M = N*H*W
// pixels, K = C and N = M (the filters), whose weight [M, C, 1, 1] is the
// transposed [N, K] weight in memory.
bool IsPointwiseConv(const Graph& graph, const Node& node) {
  if (node.domain != kKilnDomain || node.op_type != "FusedConv") return false;
  StatusOr<int64_t> channels_last = node.GetInt(kChannelsLastAttr, 0);
  StatusOr<int64_t> group = node.GetInt("group", 1);
  StatusOr<std::string> auto_pad = node.GetString("auto_pad", "NOTSET");
  if (!channels_last.ok() || *channels_last != 1 || !group.ok() || *group != 1 || !auto_pad.ok()) return false;
  // With a 1x1 kernel and unit strides every auto_pad mode pads nothing.
  if (!AllEqual(node.GetInts("strides"), 1) || !AllEqual(node.GetInts("pads"), 0)) return false;
  const Value& w = graph.value(node.inputs[1]);
  if (!w.constant) return false;
  const Dims& wd = w.constant->dims();
  const Value& x = graph.value(node.inputs[0]);
  return wd.size() == 4 && wd[2] == 1 && wd[3] == 1 && x.shape.rank_known && x.shape.dims.size() == 4;
}

}  // namespace

std::optional<EpilogueActivation> ReadEpilogueActivation(const Node& node) {
  StatusOr<std::string> name = node.GetString("activation", "");
  StatusOr<float> alpha = node.GetFloat("activation_alpha", 0.0f);
  StatusOr<float> beta = node.GetFloat("activation_beta", 0.0f);
  if (!name.ok() || !alpha.ok() || !beta.ok()) return std::nullopt;
  for (const char* known :
       {"", "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "Elu", "Gelu"}) {
    if (*name == known) return EpilogueActivation{*name, *alpha, *beta};
  }
  return std::nullopt;
}

std::optional<GemmPattern> AsGemm(const Graph& graph, const Node& node) {
  if (node.dead || node.outputs.size() != 1 || node.inputs.size() < 2) return std::nullopt;
  const bool matmul = node.domain.empty() && node.op_type == "MatMul";
  const bool gemm = node.domain.empty() && node.op_type == "Gemm";
  const bool conv = IsPointwiseConv(graph, node);
  const bool fused = conv || (node.domain == kKilnDomain && node.op_type == "FusedMatMul");
  if (!matmul && !gemm && !fused) return std::nullopt;
  // A fused Gemm carries Gemm's attributes (fuse_epilogues.h).
  const bool gemm_semantics = gemm || (fused && node.attributes.count("transB") > 0);

  GemmPattern p;
  p.a = node.inputs[0];
  p.weight = node.inputs[1];
  if (!IsFloat32(graph, p.a) || !IsFloat32(graph, p.weight) || !IsFloat32(graph, node.outputs[0])) return std::nullopt;
  const Value& a = graph.value(p.a);
  const Value& w = graph.value(p.weight);
  if (!w.constant || (w.constant->dims().size() != 2 && !conv)) return std::nullopt;
  if (!a.shape.rank_known || a.shape.dims.size() < 2) return std::nullopt;
  p.weight_transposed = conv;
  if (gemm_semantics) {
    StatusOr<int64_t> trans_a = node.GetInt("transA", 0);
    StatusOr<int64_t> trans_b = node.GetInt("transB", 0);
    StatusOr<float> alpha = node.GetFloat("alpha", 1.0f);
    StatusOr<float> beta = node.GetFloat("beta", 1.0f);
    if (!trans_a.ok() || !trans_b.ok() || !alpha.ok() || !beta.ok()) return std::nullopt;
    if (*trans_a != 0 || a.shape.dims.size() != 2) return std::nullopt;
    p.weight_transposed = *trans_b != 0;
    p.alpha = *alpha;
    p.beta = *beta;
  }
  const Dims& wd = w.constant->dims();
  p.k = p.weight_transposed ? wd[1] : wd[0];
  p.n = p.weight_transposed ? wd[0] : wd[1];
  if (p.k <= 0 || p.n <= 0) return std::nullopt;
  const Dim& a_k = a.shape.dims.back();
  if (a_k.is_concrete() && a_k.size != p.k) return std::nullopt;

  if (node.inputs.size() > 2 && node.inputs[2] != kNoValue) {
    const Value& bias = graph.value(node.inputs[2]);
    if (!IsFloat32(graph, node.inputs[2]) || !bias.constant) return std::nullopt;
    const Dims& bd = bias.constant->dims();
    const bool row = (bd.size() == 1 && bd[0] == p.n) || (bd.size() == 2 && bd[0] == 1 && bd[1] == p.n);
    if (!row) return std::nullopt;
    p.bias = node.inputs[2];
  }
  if (fused && node.inputs.size() > kFusedResidualInput && node.inputs[kFusedResidualInput] != kNoValue) {
    if (!IsFloat32(graph, node.inputs[kFusedResidualInput])) return std::nullopt;
    p.residual = node.inputs[kFusedResidualInput];
  }
  if (fused) {
    std::optional<EpilogueActivation> activation = ReadEpilogueActivation(node);
    if (!activation) return std::nullopt;
    p.activation = std::move(*activation);
  }
  return p;
}

}  // namespace kiln::graph
