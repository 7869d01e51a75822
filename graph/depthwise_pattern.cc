#include "graph/depthwise_pattern.h"

#include "graph/channels_last.h"
#include "graph/fuse_epilogues.h"
#include "graph/gemm_pattern.h"

namespace kiln::graph {
namespace {

constexpr int kSpatialRank = 2;

bool IsFloat32(const Graph& graph, ValueId v) { return v != kNoValue && graph.value(v).dtype == DType::kFloat32; }

// `values` with `count` entries, or `count` copies of `fallback` when absent.
std::optional<std::vector<int64_t>> IntsOrDefault(const Node& node, const char* name, size_t count, int64_t fallback) {
  StatusOr<std::vector<int64_t>> values = node.GetInts(name);
  if (!values.ok()) return std::nullopt;
  if (values->empty()) return std::vector<int64_t>(count, fallback);
  if (values->size() != count) return std::nullopt;
  return *values;
}

}  // namespace

std::optional<DepthwisePattern> AsDepthwiseConv(const Graph& graph, const Node& node) {
  if (node.dead || node.domain != kKilnDomain || node.op_type != "FusedConv") return std::nullopt;
  if (node.outputs.size() != 1 || node.inputs.size() < 2) return std::nullopt;
  StatusOr<int64_t> channels_last = node.GetInt(kChannelsLastAttr, 0);
  StatusOr<int64_t> group = node.GetInt("group", 1);
  StatusOr<std::string> auto_pad = node.GetString("auto_pad", "NOTSET");
  if (!channels_last.ok() || *channels_last != 1 || !group.ok() || !auto_pad.ok()) return std::nullopt;
  if (*auto_pad != "NOTSET" && *auto_pad != "VALID") return std::nullopt;

  DepthwisePattern p;
  p.x = node.inputs[0];
  p.weight = node.inputs[1];
  if (!IsFloat32(graph, p.x) || !IsFloat32(graph, p.weight) || !IsFloat32(graph, node.outputs[0])) return std::nullopt;
  const Value& x = graph.value(p.x);
  const Value& w = graph.value(p.weight);
  if (!x.shape.rank_known || x.shape.dims.size() != 4 || !w.constant) return std::nullopt;
  const Dims& wd = w.constant->dims();
  if (wd.size() != 4 || wd[1] != 1 || wd[0] != *group || wd[0] < 1) return std::nullopt;
  const Dim& c = x.shape.dims[3];
  if (!c.is_concrete() || c.size != *group) return std::nullopt;
  p.channels = wd[0];
  p.kernel = {wd[2], wd[3]};

  const std::optional<std::vector<int64_t>> strides = IntsOrDefault(node, "strides", kSpatialRank, 1);
  const std::optional<std::vector<int64_t>> dilations = IntsOrDefault(node, "dilations", kSpatialRank, 1);
  const std::optional<std::vector<int64_t>> pads = IntsOrDefault(node, "pads", 2 * kSpatialRank, 0);
  std::optional<std::vector<int64_t>> kernel_shape = IntsOrDefault(node, "kernel_shape", kSpatialRank, 0);
  if (!strides || !dilations || !pads || !kernel_shape) return std::nullopt;
  if ((*kernel_shape)[0] != 0 && (*kernel_shape != std::vector<int64_t>{p.kernel[0], p.kernel[1]})) {
    return std::nullopt;
  }
  for (int i = 0; i < kSpatialRank; ++i) {
    p.strides[i] = (*strides)[static_cast<size_t>(i)];
    p.dilations[i] = (*dilations)[static_cast<size_t>(i)];
    if (p.strides[i] < 1 || p.dilations[i] < 1 || p.kernel[i] < 1) return std::nullopt;
  }
  for (size_t i = 0; i < p.pads.size(); ++i) {
    // VALID ignores pads; ONNX's pads are [top, left, bottom, right].
    p.pads[i] = *auto_pad == "VALID" ? 0 : (*pads)[i];
    if (p.pads[i] < 0) return std::nullopt;
  }

  if (node.inputs.size() > 2 && node.inputs[2] != kNoValue) {
    const Value& bias = graph.value(node.inputs[2]);
    if (!IsFloat32(graph, node.inputs[2]) || !bias.constant || bias.constant->num_elements() != p.channels) {
      return std::nullopt;
    }
    p.bias = node.inputs[2];
  }
  if (node.inputs.size() > kFusedResidualInput && node.inputs[kFusedResidualInput] != kNoValue) {
    if (!IsFloat32(graph, node.inputs[kFusedResidualInput])) return std::nullopt;
    p.residual = node.inputs[kFusedResidualInput];
  }
  std::optional<EpilogueActivation> activation = ReadEpilogueActivation(node);
  if (!activation) return std::nullopt;
  p.activation = std::move(*activation);
  return p;
}

std::array<int64_t, 2> DepthwiseOutputSize(const DepthwisePattern& p, int64_t in_h, int64_t in_w) {
  std::array<int64_t, 2> out{};
  const int64_t in[2] = {in_h, in_w};
  for (int i = 0; i < kSpatialRank; ++i) {
    const int64_t span = (p.kernel[i] - 1) * p.dilations[i] + 1;
    const int64_t padded = in[i] + p.pads[i] + p.pads[i + 2];
    out[i] = padded < span ? 0 : (padded - span) / p.strides[i] + 1;
  }
  return out;
}

}  // namespace kiln::graph
