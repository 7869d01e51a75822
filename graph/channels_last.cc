#include "graph/channels_last.h"

#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "graph/fuse_epilogues.h"
#include "graph/fusible_ops.h"
#include "graph/log.h"

namespace kiln::graph {
namespace {

constexpr int kRank = 4;
// NCHW -> NHWC and back, as Transpose perms (output axis i is input axis perm[i]).
const std::vector<int64_t> kToChannelsLast = {0, 2, 3, 1};
const std::vector<int64_t> kToChannelsFirst = {0, 3, 1, 2};

enum class Role { kNone, kConv, kPool, kElementwise };

bool IsRank4(const Value& v) { return v.shape.rank_known && v.shape.dims.size() == kRank; }

// A value that broadcasts the same way in either layout: a scalar or a
// tensor of one element.
bool IsLayoutNeutral(const Value& v) {
  if (!v.shape.rank_known) return false;
  for (const Dim& d : v.shape.dims) {
    if (!d.is_concrete() || d.size != 1) return false;
  }
  return true;
}

bool OnlyFirstOutputLive(const Node& n) {
  if (n.outputs.empty() || n.outputs[0] == kNoValue) return false;
  for (size_t i = 1; i < n.outputs.size(); ++i) {
    if (n.outputs[i] != kNoValue) return false;
  }
  return true;
}

bool IsPoolOp(const std::string& op) {
  return op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool" || op == "GlobalMaxPool";
}

// What `n` is in an island, and which of its inputs carry the island's
// layout (the others, such as a convolution's weights, are left alone).
struct Membership {
  Role role = Role::kNone;
  std::vector<size_t> layout_inputs;
};

Membership Classify(const Graph& graph, const Node& n) {
  Membership none;
  if (n.dead || !OnlyFirstOutputLive(n) || !IsRank4(graph.value(n.outputs[0]))) return none;
  auto float_rank4_input = [&](size_t i) {
    if (i >= n.inputs.size() || n.inputs[i] == kNoValue) return false;
    const Value& v = graph.value(n.inputs[i]);
    return IsRank4(v) && v.dtype == DType::kFloat32;
  };
  const bool kiln_conv = n.domain == kKilnDomain && n.op_type == "FusedConv";
  if ((n.domain.empty() && n.op_type == "Conv") || kiln_conv) {
    if (kiln_conv && n.FindAttribute(kChannelsLastAttr) != nullptr) return none;
    if (!float_rank4_input(0)) return none;
    Membership m{Role::kConv, {0}};
    if (kiln_conv && n.inputs.size() > kFusedResidualInput && n.inputs[kFusedResidualInput] != kNoValue) {
      if (!float_rank4_input(kFusedResidualInput)) return none;
      m.layout_inputs.push_back(kFusedResidualInput);
    }
    return m;
  }
  if (n.domain.empty() && IsPoolOp(n.op_type)) {
    if (!float_rank4_input(0) || n.inputs.size() != 1) return none;
    return Membership{Role::kPool, {0}};
  }
  if (n.domain.empty() && FindFusibleOp(n.op_type) != nullptr) {
    Membership m{Role::kElementwise, {}};
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      if (n.inputs[i] == kNoValue) continue;
      const Value& v = graph.value(n.inputs[i]);
      if (IsLayoutNeutral(v)) continue;
      if (!v.shape.rank_known || v.shape.dims.size() > kRank || v.dtype == DType::kUndefined) return none;
      // A computed operand of lower rank would need an Unsqueeze as well;
      // rare enough next to constants that it is not worth the nodes.
      if (!v.constant && v.shape.dims.size() != kRank) return none;
      m.layout_inputs.push_back(i);
    }
    return m;
  }
  return none;
}

ShapeInfo PermuteShape(const ShapeInfo& nchw, const std::vector<int64_t>& perm) {
  ShapeInfo out = nchw;
  for (size_t i = 0; i < perm.size(); ++i) out.dims[i] = nchw.dims[static_cast<size_t>(perm[i])];
  return out;
}

// `t` left-padded with unit dims to rank 4, then permuted NCHW -> NHWC.
StatusOr<Tensor> PermuteConstant(const Tensor& t) {
  Dims nchw(kRank - static_cast<size_t>(t.rank()), 1);
  nchw.insert(nchw.end(), t.dims().begin(), t.dims().end());
  const Dims nhwc = {nchw[0], nchw[2], nchw[3], nchw[1]};
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(t.dtype(), nhwc));
  const size_t elem = DTypeSize(t.dtype());
  const auto* src = static_cast<const char*>(t.raw_data());
  auto* dst = static_cast<char*>(out.raw_data());
  const int64_t n = nchw[0], c = nchw[1], hw = nchw[2] * nchw[3];
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t p = 0; p < hw; ++p) {
        std::memcpy(dst + static_cast<size_t>((b * hw + p) * c + ch) * elem,
                    src + static_cast<size_t>((b * c + ch) * hw + p) * elem, elem);
      }
    }
  }
  return out;
}

// Groups the island candidates into connected components (union-find over
// the values they pass to each other's layout inputs).
class Components {
 public:
  explicit Components(size_t n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), NodeId{0}); }
  NodeId Find(NodeId x) {
    while (parent_[static_cast<size_t>(x)] != x) {
      parent_[static_cast<size_t>(x)] = parent_[static_cast<size_t>(parent_[static_cast<size_t>(x)])];
      x = parent_[static_cast<size_t>(x)];
    }
    return x;
  }
  void Union(NodeId a, NodeId b) { parent_[static_cast<size_t>(Find(a))] = Find(b); }

 private:
  std::vector<NodeId> parent_;
};

class IslandRewriter {
 public:
  explicit IslandRewriter(Graph& graph) : graph_(graph) {}

  // Rewrites `id` (an island member, visited after its island producers).
  Status Rewrite(NodeId id, const Membership& m) {
    Node node = graph_.node(id);
    for (size_t i : m.layout_inputs) {
      KILN_ASSIGN_OR_RETURN(node.inputs[i], ToChannelsLast(node.inputs[i]));
    }
    const ValueId old_out = node.outputs[0];
    // Copies: AddValue may move the graph's values.
    const std::string name = graph_.UniqueValueName(graph_.value(old_out).name + "/nhwc");
    const DType dtype = graph_.value(old_out).dtype;
    const ShapeInfo shape = PermuteShape(graph_.value(old_out).shape, kToChannelsLast);
    KILN_ASSIGN_OR_RETURN(ValueId new_out, graph_.AddValue(name, dtype, shape));
    node.outputs[0] = new_out;
    if (m.role == Role::kConv) {
      node.op_type = "FusedConv";
      node.domain = kKilnDomain;
      node.opset = 1;
      node.attributes[kChannelsLastAttr] = Attribute::Int(1);
    } else if (m.role == Role::kPool) {
      node.domain = kKilnDomain;
      node.opset = 1;
    }
    graph_.RemoveNode(id);
    StatusOr<NodeId> added = graph_.AddNode(std::move(node));
    if (!added.ok()) return Internal("channels-last: ", added.status().message());
    in_island_[old_out] = new_out;
    produced_.emplace_back(old_out, new_out);
    return Status::Ok();
  }

  // After every member is rewritten: the island values read outside it
  // (or returned to the caller) are transposed back into their old ids.
  Status TransposeOutputsBack() {
    for (const auto& [nchw, nhwc] : produced_) {
      const Value& v = graph_.value(nchw);
      if (v.users.empty() && !v.is_graph_output) continue;
      const std::string name = v.name + "/to_nchw";
      KILN_RETURN_IF_ERROR(AddTranspose(nhwc, nchw, kToChannelsFirst, name));
    }
    return Status::Ok();
  }

  int transposes() const { return transposes_; }

 private:
  // The island-layout version of `v`: an island value's rewritten output,
  // a permuted constant, or a Transpose of a value computed outside.
  StatusOr<ValueId> ToChannelsLast(ValueId v) {
    if (auto it = in_island_.find(v); it != in_island_.end()) return it->second;
    // Copies: adding values may move the graph's values.
    const std::string name = graph_.value(v).name;
    ValueId nhwc;
    if (graph_.value(v).constant) {
      KILN_ASSIGN_OR_RETURN(Tensor permuted, PermuteConstant(*graph_.value(v).constant));
      KILN_ASSIGN_OR_RETURN(nhwc, graph_.AddConstant(name + "/nhwc", std::move(permuted)));
    } else {
      const DType dtype = graph_.value(v).dtype;
      const ShapeInfo shape = PermuteShape(graph_.value(v).shape, kToChannelsLast);
      KILN_ASSIGN_OR_RETURN(nhwc, graph_.AddValue(graph_.UniqueValueName(name + "/nhwc"), dtype, shape));
      KILN_RETURN_IF_ERROR(AddTranspose(v, nhwc, kToChannelsLast, name + "/to_nhwc"));
    }
    in_island_[v] = nhwc;
    return nhwc;
  }

  Status AddTranspose(ValueId from, ValueId to, const std::vector<int64_t>& perm, std::string name) {
    Node t;
    t.name = std::move(name);
    t.op_type = "Transpose";
    t.opset = graph_.default_opset();
    t.inputs = {from};
    t.outputs = {to};
    t.attributes["perm"] = Attribute::Ints(perm);
    StatusOr<NodeId> added = graph_.AddNode(std::move(t));
    if (!added.ok()) return Internal("channels-last: ", added.status().message());
    ++transposes_;
    return Status::Ok();
  }

  Graph& graph_;
  std::map<ValueId, ValueId> in_island_;
  std::vector<std::pair<ValueId, ValueId>> produced_;
  int transposes_ = 0;
};

}  // namespace

StatusOr<bool> ConvertToChannelsLast(Graph& graph) {
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  std::vector<Membership> members(graph.num_nodes());
  Components components(graph.num_nodes());
  for (NodeId id : order) members[static_cast<size_t>(id)] = Classify(graph, graph.node(id));
  for (NodeId id : order) {
    const Membership& m = members[static_cast<size_t>(id)];
    for (size_t i : m.layout_inputs) {
      const NodeId producer = graph.value(graph.node(id).inputs[i]).producer;
      if (producer != kNoNode && members[static_cast<size_t>(producer)].role != Role::kNone) {
        components.Union(id, producer);
      }
    }
  }
  std::vector<bool> has_conv(graph.num_nodes(), false);
  for (NodeId id : order) {
    if (members[static_cast<size_t>(id)].role == Role::kConv) has_conv[static_cast<size_t>(components.Find(id))] = true;
  }

  IslandRewriter rewriter(graph);
  int rewritten = 0, convs = 0;
  for (NodeId id : order) {
    const Membership& m = members[static_cast<size_t>(id)];
    if (m.role == Role::kNone || !has_conv[static_cast<size_t>(components.Find(id))]) continue;
    KILN_RETURN_IF_ERROR(rewriter.Rewrite(id, m));
    ++rewritten;
    convs += m.role == Role::kConv;
  }
  if (rewritten == 0) return false;
  KILN_RETURN_IF_ERROR(rewriter.TransposeOutputsBack());
  Log().debug("channels-last: {} nodes ({} convolutions) now NHWC, {} transposes at the edges", rewritten, convs,
              rewriter.transposes());
  return true;
}

}  // namespace kiln::graph
