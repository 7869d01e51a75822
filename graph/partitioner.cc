#include "graph/partitioner.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <set>

#include "graph/attention_pattern.h"
#include "graph/depthwise_pattern.h"
#include "graph/fusible_ops.h"
#include "graph/gemm_pattern.h"
#include "graph/lstm_pattern.h"

namespace kiln::graph {

const char* RegionKindName(RegionKind kind) {
  switch (kind) {
    case RegionKind::kElementwise: return "elementwise";
    case RegionKind::kRowReduction: return "row_reduction";
    case RegionKind::kGemm: return "gemm";
    case RegionKind::kDepthwiseConv: return "depthwise_conv";
    case RegionKind::kAttention: return "attention";
    case RegionKind::kLstm: return "lstm";
  }
  return "?";
}

namespace {

// Accumulation passes a row-reduction region may need before the pass that
// writes its outputs. Every pass reads the row again, so deep chains of
// reductions cost more than they save.
constexpr int kMaxRowPasses = 4;

bool SameStaticDim(const Dim& x, const Dim& y) {
  if (x.is_concrete() != y.is_concrete()) return false;
  return x.is_concrete() ? x.size == y.size : (!x.symbol.empty() && x.symbol == y.symbol);
}

bool SameStaticShape(const ShapeInfo& a, const ShapeInfo& b) {
  if (!a.rank_known || !b.rank_known || a.dims.size() != b.dims.size()) return false;
  for (size_t i = 0; i < a.dims.size(); ++i) {
    if (!SameStaticDim(a.dims[i], b.dims[i])) return false;
  }
  return true;
}

bool IsOne(const Dim& d) { return d.is_concrete() && d.size == 1; }

// The domain's leading dims followed by 1s: one value per row.
bool IsPerRowShape(const ShapeInfo& s, const ShapeInfo& domain, int axis) {
  if (!s.rank_known || !domain.rank_known || s.dims.size() != domain.dims.size()) return false;
  for (size_t i = 0; i < s.dims.size(); ++i) {
    if (static_cast<int>(i) < axis ? !SameStaticDim(s.dims[i], domain.dims[i]) : !IsOne(s.dims[i])) return false;
  }
  return true;
}

// A value read from outside a row-reduction region: it must broadcast into
// the domain, and along the row either cover it whole or be one value
// (the code then loads it as a vector or splats it per row).
bool FitsRowDomain(const ShapeInfo& s, const ShapeInfo& domain, int axis) {
  if (!s.rank_known || !domain.rank_known || s.dims.size() > domain.dims.size()) return false;
  const size_t rank = domain.dims.size();
  const size_t lead = rank - s.dims.size();
  bool inner_full = true;
  bool inner_one = true;
  for (size_t i = 0; i < rank; ++i) {
    const Dim one = Dim::Concrete(1);
    const Dim& d = i < lead ? one : s.dims[i - lead];
    const Dim& want = domain.dims[i];
    if (!IsOne(d) && !SameStaticDim(d, want)) return false;
    if (static_cast<int>(i) < axis) continue;
    if (!SameStaticDim(d, want)) inner_full = false;
    if (!IsOne(d)) inner_one = false;
  }
  return inner_full || inner_one;
}

// The value whose static shape and dtype define a node's place in a region:
// its first output.
const Value* PrimaryOutput(const Graph& g, const Node& n) {
  if (n.outputs.empty() || n.outputs[0] == kNoValue) return nullptr;
  return &g.value(n.outputs[0]);
}

bool HasFusibleDType(const Node& node, const Value& out) {
  const FusibleOpInfo* info = FindFusibleOp(node.op_type);
  return info != nullptr && out.dtype == (info->yields_bool ? DType::kBool : DType::kFloat32);
}

// Normalises `axes` of a rank-`rank` tensor and returns the first one when
// they are exactly the suffix [first, rank).
std::optional<int> SuffixStart(std::vector<int64_t> axes, int rank) {
  for (int64_t& a : axes) {
    if (a < -rank || a >= rank) return std::nullopt;
    if (a < 0) a += rank;
  }
  std::sort(axes.begin(), axes.end());
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  if (axes.empty() || axes.back() != rank - 1) return std::nullopt;
  if (axes.front() + static_cast<int64_t>(axes.size()) != rank) return std::nullopt;
  return static_cast<int>(axes.front());
}

// True when one of the node's inputs or outputs is a sequence or optional.
bool TouchesNonTensor(const Graph& g, const Node& n) {
  for (const std::vector<ValueId>* ids : {&n.inputs, &n.outputs}) {
    for (ValueId v : *ids) {
      if (v != kNoValue && g.value(v).kind != ValueKind::kTensor) return true;
    }
  }
  return false;
}

// True when an optional output is absent or nothing reads it.
bool Unused(const Graph& g, ValueId v) {
  return v == kNoValue || (g.value(v).users.empty() && !g.value(v).is_graph_output);
}

// ", 16.8 MFLOP per call": the work of a compute region with static shapes.
std::string FlopsText(double flops) {
  char text[48];
  if (flops >= 1e6) {
    std::snprintf(text, sizeof(text), ", %.1f MFLOP per call", flops * 1e-6);
  } else {
    std::snprintf(text, sizeof(text), ", %.1f kFLOP per call", flops * 1e-3);
  }
  return text;
}

}  // namespace

bool IsFusibleElementwise(const Node& node) {
  if (node.dead || !node.domain.empty() || FindFusibleOp(node.op_type) == nullptr) return false;
  if (node.outputs.size() != 1) return false;
  // Opsets before 7 had explicit broadcast attributes with other semantics.
  if (node.opset < 7) return false;
  return true;
}

std::optional<RowReduction> AsRowReduction(const Graph& graph, const Node& node) {
  if (node.dead || !node.domain.empty() || node.inputs.empty() || node.inputs[0] == kNoValue) return std::nullopt;
  if (node.outputs.empty() || node.outputs[0] == kNoValue) return std::nullopt;
  const Value& x = graph.value(node.inputs[0]);
  const Value& y = graph.value(node.outputs[0]);
  if (!x.shape.rank_known || x.dtype != DType::kFloat32 || y.dtype != DType::kFloat32) return std::nullopt;
  const int rank = static_cast<int>(x.shape.dims.size());
  if (rank == 0) return std::nullopt;
  RowReduction r;
  r.rank = rank;
  const std::string& op = node.op_type;

  if (op == "Softmax" || op == "LogSoftmax") {
    if (node.outputs.size() != 1 || node.inputs.size() != 1) return std::nullopt;
    r.op = op == "Softmax" ? RowOp::kSoftmax : RowOp::kLogSoftmax;
    // From opset 13 the op normalises along one axis: only the last one is
    // a row. Before, it coerced the input to 2-D at `axis`: every axis from
    // it on is normalised together, which is a row whatever the axis.
    const bool single_axis = node.opset >= 13;
    StatusOr<int64_t> axis = node.GetInt("axis", single_axis ? -1 : 1);
    if (!axis.ok() || *axis < -rank || *axis >= rank) return std::nullopt;
    r.axis = static_cast<int>(*axis < 0 ? *axis + rank : *axis);
    if (single_axis && r.axis != rank - 1) return std::nullopt;
    return r;
  }

  if (op == "LayerNormalization") {
    if (node.inputs.size() < 2 || node.inputs.size() > 3 || node.inputs[1] == kNoValue) return std::nullopt;
    for (size_t o = 1; o < node.outputs.size(); ++o) {
      if (!Unused(graph, node.outputs[o])) return std::nullopt;
    }
    StatusOr<int64_t> axis = node.GetInt("axis", -1);
    StatusOr<int64_t> stash = node.GetInt("stash_type", 1);
    StatusOr<float> epsilon = node.GetFloat("epsilon", 1e-5f);
    if (!axis.ok() || !stash.ok() || !epsilon.ok() || *stash != 1) return std::nullopt;
    if (*axis < -rank || *axis >= rank) return std::nullopt;
    for (size_t i = 1; i < node.inputs.size(); ++i) {
      if (node.inputs[i] != kNoValue && graph.value(node.inputs[i]).dtype != DType::kFloat32) return std::nullopt;
    }
    r.op = RowOp::kLayerNorm;
    r.axis = static_cast<int>(*axis < 0 ? *axis + rank : *axis);
    r.epsilon = *epsilon;
    return r;
  }

  if (op == "GlobalAveragePool") {
    if (node.outputs.size() != 1 || node.inputs.size() != 1 || rank < 3) return std::nullopt;
    r.op = RowOp::kMean;
    r.axis = 2;
    return r;
  }

  if (op == "ReduceSum" || op == "ReduceMean" || op == "ReduceMax") {
    if (node.outputs.size() != 1 || node.inputs.size() > 2) return std::nullopt;
    r.op = op == "ReduceSum" ? RowOp::kSum : op == "ReduceMean" ? RowOp::kMean : RowOp::kMax;
    StatusOr<int64_t> keepdims = node.GetInt("keepdims", 1);
    if (!keepdims.ok() || *keepdims != 1) return std::nullopt;
    // ReduceSum took its axes as an input from opset 13, the others from 18.
    const bool axes_from_input = node.opset >= (r.op == RowOp::kSum ? 13 : 18);
    std::vector<int64_t> axes;
    if (axes_from_input) {
      StatusOr<int64_t> noop = node.GetInt("noop_with_empty_axes", 0);
      if (!noop.ok()) return std::nullopt;
      if (node.inputs.size() > 1 && node.inputs[1] != kNoValue) {
        const Value& a = graph.value(node.inputs[1]);
        if (!a.constant || a.constant->dtype() != DType::kInt64 || a.constant->rank() > 1) return std::nullopt;
        const int64_t* data = a.constant->data<int64_t>();
        axes.assign(data, data + a.constant->num_elements());
      }
      // No axes reduce everything, unless the model asks for a no-op.
      if (axes.empty() && *noop != 0) return std::nullopt;
    } else {
      if (node.inputs.size() != 1) return std::nullopt;
      StatusOr<std::vector<int64_t>> attr = node.GetInts("axes");
      if (!attr.ok()) return std::nullopt;
      axes = *attr;
    }
    if (axes.empty()) {
      r.axis = 0;
      return r;
    }
    std::optional<int> first = SuffixStart(axes, rank);
    if (!first) return std::nullopt;
    r.axis = *first;
    return r;
  }
  return std::nullopt;
}

StatusOr<std::vector<Region>> PartitionGraph(const Graph& graph, const PartitionOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  std::vector<int> position(graph.num_nodes(), -1);
  for (size_t i = 0; i < order.size(); ++i) position[static_cast<size_t>(order[i])] = static_cast<int>(i);

  std::vector<int> region_of(graph.num_nodes(), -1);
  struct Building {
    RegionKind kind = RegionKind::kElementwise;
    std::vector<NodeId> nodes;
    // Elementwise: the static shape/dtype every member shares. Row
    // reduction: the reductions' input, whose shape is the domain.
    const Value* domain = nullptr;
    int first_position = 0;
    int row_axis = -1;
    std::vector<std::string> reductions;  // op types, for the description
  };
  std::vector<Building> building;
  // Row-reduction regions: the pass after which a member's output is known
  // (0: computable from the inputs; a reduction adds one per accumulation).
  std::vector<int> level(graph.num_values(), 0);

  // True when some input of `n` produced outside region `r` depends on `r`:
  // joining would then create a cycle r -> outside -> n(in r).
  auto creates_cycle = [&](NodeId n, int r) {
    std::vector<NodeId> stack;
    std::set<NodeId> seen;
    for (ValueId in : graph.node(n).inputs) {
      if (in == kNoValue) continue;
      NodeId p = graph.value(in).producer;
      if (p != kNoNode && region_of[static_cast<size_t>(p)] != r) stack.push_back(p);
    }
    while (!stack.empty()) {
      NodeId cur = stack.back();
      stack.pop_back();
      if (!seen.insert(cur).second) continue;
      if (region_of[static_cast<size_t>(cur)] == r) return true;
      // Nodes before the region's first member cannot depend on it.
      if (position[static_cast<size_t>(cur)] < building[static_cast<size_t>(r)].first_position) continue;
      for (ValueId in : graph.node(cur).inputs) {
        if (in == kNoValue) continue;
        NodeId p = graph.value(in).producer;
        if (p != kNoNode) stack.push_back(p);
      }
    }
    return false;
  };
  auto inside = [&](ValueId v, int r) {
    const NodeId p = graph.value(v).producer;
    return p != kNoNode && region_of[static_cast<size_t>(p)] == r;
  };
  // The values node `n` reads from outside region `r` fit r's rows; input
  // `skip` (a reduction's constant axes) is not data and is not checked.
  auto inputs_fit = [&](const Node& n, int r, const ShapeInfo& domain, int axis, int skip) {
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const ValueId in = n.inputs[i];
      if (in == kNoValue || static_cast<int>(i) == skip || inside(in, r)) continue;
      if (!FitsRowDomain(graph.value(in).shape, domain, axis)) return false;
    }
    return true;
  };
  auto input_level = [&](const Node& n, int r) {
    int l = 0;
    for (ValueId in : n.inputs) {
      if (in != kNoValue && inside(in, r)) l = std::max(l, level[static_cast<size_t>(in)]);
    }
    return l;
  };

  // Attention chains are claimed first, whole: their MatMuls and Softmax
  // would otherwise start other regions. Each becomes a region when the
  // walk below reaches its first node; `attention_of` says which chain.
  std::vector<AttentionPattern> attentions;
  std::vector<int> attention_of(graph.num_nodes(), -1);
  if (options.attention_regions) {
    for (NodeId id : order) {
      std::optional<AttentionPattern> a = AsAttention(graph, graph.node(id));
      if (!a) continue;
      bool free = true;
      for (NodeId n : a->nodes) free = free && attention_of[static_cast<size_t>(n)] < 0;
      if (!free) continue;
      for (NodeId n : a->nodes) attention_of[static_cast<size_t>(n)] = static_cast<int>(attentions.size());
      attentions.push_back(std::move(*a));
    }
  }

  for (NodeId id : order) {
    const Node& node = graph.node(id);
    if (const int a = attention_of[static_cast<size_t>(id)]; a >= 0) {
      if (region_of[static_cast<size_t>(id)] >= 0) continue;
      // The chain's first node in topological order: the region starts here.
      std::vector<NodeId> members = attentions[static_cast<size_t>(a)].nodes;
      std::sort(members.begin(), members.end(), [&](NodeId x, NodeId y) {
        return position[static_cast<size_t>(x)] < position[static_cast<size_t>(y)];
      });
      Building b;
      b.kind = RegionKind::kAttention;
      b.first_position = position[static_cast<size_t>(id)];
      b.domain = &graph.value(attentions[static_cast<size_t>(a)].output);
      b.nodes = members;
      b.reductions.push_back("Softmax");
      for (NodeId n : members) region_of[static_cast<size_t>(n)] = static_cast<int>(building.size());
      building.push_back(std::move(b));
      continue;
    }
    const bool gemm = options.gemm_regions && AsGemm(graph, node);
    const bool lstm = !gemm && options.lstm_regions && AsLstm(graph, node);
    if (gemm || lstm || (options.depthwise_regions && AsDepthwiseConv(graph, node))) {
      // A region of its own: its epilogue is already fused into the node.
      Building b;
      b.kind = gemm ? RegionKind::kGemm : lstm ? RegionKind::kLstm : RegionKind::kDepthwiseConv;
      b.first_position = position[static_cast<size_t>(id)];
      b.domain = PrimaryOutput(graph, node);
      b.nodes.push_back(id);
      b.reductions.push_back(node.op_type);
      region_of[static_cast<size_t>(id)] = static_cast<int>(building.size());
      building.push_back(std::move(b));
      continue;
    }
    // Compiled code reads and writes tensors only: a node touching a
    // sequence or optional stays interpreted.
    if (TouchesNonTensor(graph, node)) continue;
    const std::optional<RowReduction> reduction = AsRowReduction(graph, node);
    const bool elementwise = !reduction && IsFusibleElementwise(node);
    if (!reduction && !elementwise) continue;
    const Value* out = PrimaryOutput(graph, node);
    if (out == nullptr || !out->shape.rank_known || (elementwise && !HasFusibleDType(node, *out))) continue;
    // A reduction reads its data from input 0; ReduceX's input 1 is axes.
    const int axes_input = reduction && node.op_type != "LayerNormalization" ? 1 : -1;
    // Accumulations a reduction adds: Softmax (max, then sum of exps) and
    // LayerNorm (mean, then variance) need two passes over their input.
    const int accumulations = reduction && (reduction->op == RowOp::kSoftmax || reduction->op == RowOp::kLogSoftmax ||
                                            reduction->op == RowOp::kLayerNorm)
                                  ? 2
                                  : 1;

    int joined = -1;
    int node_level = 0;
    for (ValueId in : node.inputs) {
      if (in == kNoValue) continue;
      NodeId p = graph.value(in).producer;
      if (p == kNoNode) continue;
      int r = region_of[static_cast<size_t>(p)];
      if (r < 0 || r == joined) continue;
      Building& b = building[static_cast<size_t>(r)];
      if (b.kind == RegionKind::kGemm || b.kind == RegionKind::kDepthwiseConv || b.kind == RegionKind::kAttention ||
          b.kind == RegionKind::kLstm) {
        continue;
      }
      if (elementwise && b.kind == RegionKind::kElementwise) {
        // Comparison masks may have another dtype than the float domain.
        if (!SameStaticShape(b.domain->shape, out->shape) || creates_cycle(id, r)) continue;
        joined = r;
        break;
      }
      if (elementwise) {  // into a row reduction: row-shaped or per-row
        const ShapeInfo& domain = b.domain->shape;
        if (!SameStaticShape(out->shape, domain) && !IsPerRowShape(out->shape, domain, b.row_axis)) continue;
        if (!inputs_fit(node, r, domain, b.row_axis, -1) || creates_cycle(id, r)) continue;
        joined = r;
        node_level = input_level(node, r);
        break;
      }
      // A reduction over the domain of a region of either kind.
      const ShapeInfo& data = graph.value(node.inputs[0]).shape;
      if (!SameStaticShape(b.domain->shape, data)) continue;
      if (b.kind == RegionKind::kRowReduction && b.row_axis != reduction->axis) continue;
      if (!inputs_fit(node, r, data, reduction->axis, axes_input)) continue;
      if (b.kind == RegionKind::kElementwise) {
        // Its members become row-shaped values: what they read from outside
        // must fit the rows too.
        bool fits = true;
        for (NodeId m : b.nodes) fits = fits && inputs_fit(graph.node(m), r, data, reduction->axis, -1);
        if (!fits) continue;
      }
      const int stage = b.kind == RegionKind::kRowReduction ? input_level(node, r) : 0;
      if (stage + accumulations > kMaxRowPasses || creates_cycle(id, r)) continue;
      if (b.kind == RegionKind::kElementwise) {
        b.kind = RegionKind::kRowReduction;
        b.domain = &graph.value(node.inputs[0]);
        b.row_axis = reduction->axis;
      }
      joined = r;
      node_level = stage + accumulations;
      break;
    }
    if (joined < 0) {
      Building b;
      b.first_position = position[static_cast<size_t>(id)];
      if (reduction) {
        const Value& data = graph.value(node.inputs[0]);
        // Its other inputs come from outside; they must fit the rows.
        bool fits = true;
        for (size_t i = 1; i < node.inputs.size(); ++i) {
          if (node.inputs[i] != kNoValue && static_cast<int>(i) != axes_input) {
            fits = fits && FitsRowDomain(graph.value(node.inputs[i]).shape, data.shape, reduction->axis);
          }
        }
        if (!fits) continue;
        b.kind = RegionKind::kRowReduction;
        b.domain = &data;
        b.row_axis = reduction->axis;
        node_level = accumulations;
      } else {
        b.domain = out;
      }
      joined = static_cast<int>(building.size());
      building.push_back(std::move(b));
    }
    Building& b = building[static_cast<size_t>(joined)];
    b.nodes.push_back(id);
    if (reduction) b.reductions.push_back(node.op_type);
    region_of[static_cast<size_t>(id)] = joined;
    for (ValueId o : node.outputs) {
      if (o != kNoValue) level[static_cast<size_t>(o)] = node_level;
    }
  }

  std::vector<Region> regions;
  for (size_t r = 0; r < building.size(); ++r) {
    const Building& b = building[r];
    // A GEMM or convolution is worth compiling alone; fused elementwise ops
    // are not.
    const bool compute = b.kind == RegionKind::kGemm || b.kind == RegionKind::kDepthwiseConv ||
                         b.kind == RegionKind::kAttention || b.kind == RegionKind::kLstm;
    if (!compute && static_cast<int>(b.nodes.size()) < options.min_region_nodes) continue;
    Region region;
    region.id = static_cast<int>(regions.size());
    region.kind = b.kind;
    region.row_axis = b.row_axis;
    region.nodes = b.nodes;
    std::set<ValueId> produced;
    for (NodeId n : b.nodes) {
      for (ValueId o : graph.node(n).outputs) {
        if (o != kNoValue) produced.insert(o);
      }
    }
    std::set<ValueId> seen_inputs;
    for (NodeId n : b.nodes) {
      for (ValueId in : graph.node(n).inputs) {
        if (in != kNoValue && !produced.count(in) && seen_inputs.insert(in).second) region.inputs.push_back(in);
      }
    }
    for (NodeId n : b.nodes) {
      for (ValueId o : graph.node(n).outputs) {
        if (o == kNoValue) continue;
        const Value& v = graph.value(o);
        bool used_outside = v.is_graph_output;
        for (NodeId u : v.users) {
          if (region_of[static_cast<size_t>(u)] != static_cast<int>(r) || graph.node(u).dead) used_outside = true;
        }
        if (used_outside) region.outputs.push_back(o);
      }
    }
    // Elementwise: every output must have the domain's shape; a mask or a
    // smaller value escaping the region would need a loop nest of its own.
    // Row reduction: row-shaped or one value per row.
    bool outputs_ok = !region.outputs.empty();
    // An LSTM's outputs have the shapes the node gives them.
    for (ValueId o : b.kind == RegionKind::kLstm ? std::vector<ValueId>{} : region.outputs) {
      const ShapeInfo& s = graph.value(o).shape;
      if (SameStaticShape(s, b.domain->shape)) continue;
      if (b.kind == RegionKind::kRowReduction && IsPerRowShape(s, b.domain->shape, b.row_axis)) continue;
      outputs_ok = false;
    }
    if (!outputs_ok) continue;
    if (b.kind == RegionKind::kElementwise) {
      region.reason = std::to_string(b.nodes.size()) + " elementwise ops over " + b.domain->shape.ToString();
    } else if (b.kind == RegionKind::kGemm) {
      const Node& node = graph.node(b.nodes[0]);
      const std::optional<GemmPattern> gemm = AsGemm(graph, node);
      const ShapeInfo& a = graph.value(gemm->a).shape;
      region.reason = "gemm (" + node.op_type + ") " + a.ToString() + " x [" + std::to_string(gemm->k) + ", " +
                      std::to_string(gemm->n) + "] weight";
      if (a.is_concrete()) {
        int64_t m = 1;
        for (size_t d = 0; d + 1 < a.dims.size(); ++d) m *= a.dims[d].size;
        region.reason += FlopsText(2.0 * static_cast<double>(m) * static_cast<double>(gemm->k * gemm->n));
      }
    } else if (b.kind == RegionKind::kDepthwiseConv) {
      const Node& node = graph.node(b.nodes[0]);
      const std::optional<DepthwisePattern> conv = AsDepthwiseConv(graph, node);
      const ShapeInfo& x = graph.value(conv->x).shape;
      region.reason = "depthwise conv " + std::to_string(conv->kernel[0]) + "x" + std::to_string(conv->kernel[1]) +
                      "/" + std::to_string(conv->strides[0]) + " over " + x.ToString() + " (NHWC)";
      if (x.is_concrete()) {
        const std::array<int64_t, 2> out = DepthwiseOutputSize(*conv, x.dims[1].size, x.dims[2].size);
        region.reason += FlopsText(2.0 * static_cast<double>(x.dims[0].size * out[0] * out[1] * conv->channels *
                                                             conv->kernel[0] * conv->kernel[1]));
      }
    } else if (b.kind == RegionKind::kLstm) {
      const std::optional<LstmPattern> lstm = AsLstm(graph, graph.node(b.nodes[0]));
      const ShapeInfo& x = graph.value(lstm->x).shape;
      region.reason = "lstm " +
                      std::string(lstm->num_directions == 2 ? "bidirectional"
                                  : lstm->reverse           ? "reverse"
                                                            : "forward") +
                      " over " + x.ToString() + ", hidden " + std::to_string(lstm->hidden_size);
      if (x.is_concrete()) {
        region.reason += FlopsText(8.0 * lstm->num_directions * static_cast<double>(x.dims[0].size * x.dims[1].size) *
                                   static_cast<double>(lstm->hidden_size * (lstm->input_size + lstm->hidden_size)));
      }
    } else if (b.kind == RegionKind::kAttention) {
      const AttentionPattern& a = attentions[static_cast<size_t>(attention_of[static_cast<size_t>(b.nodes[0])])];
      const ShapeInfo& q = graph.value(a.q).shape;
      const ShapeInfo& k = graph.value(a.k).shape;
      auto dim = [](const ShapeInfo& s, int axis) { return s.dims[static_cast<size_t>(axis)]; };
      const Dim batch = dim(q, a.q_axes[0]), heads = dim(q, a.q_axes[1]);
      const Dim sq = dim(q, a.q_axes[2]), sk = dim(k, a.k_axes[2]);
      auto text = [](const Dim& d) { return d.is_concrete() ? std::to_string(d.size) : d.symbol; };
      region.reason = "attention " + text(heads) + " heads x " + text(sq) + " queries x " + text(sk) +
                      " keys, head dim " + std::to_string(a.head_dim) + (a.mask != kNoValue ? ", mask" : "") +
                      ", scale " + std::to_string(a.scale);
      if (batch.is_concrete() && heads.is_concrete() && sq.is_concrete() && sk.is_concrete()) {
        region.reason += FlopsText(4.0 * static_cast<double>(batch.size * heads.size * sq.size * sk.size) *
                                   static_cast<double>(a.head_dim));
      }
    } else {
      std::string ops;
      for (const std::string& op : b.reductions) ops += (ops.empty() ? "" : ", ") + op;
      region.reason = "row reduction (" + ops + ") + " + std::to_string(b.nodes.size() - b.reductions.size()) +
                      " elementwise ops over " + b.domain->shape.ToString() + ", rows from axis " +
                      std::to_string(b.row_axis);
    }
    regions.push_back(std::move(region));
  }
  return regions;
}

}  // namespace kiln::graph
