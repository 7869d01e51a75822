#include "graph/shape_propagation.h"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <string_view>

#include "graph/onnx_dtype.h"

namespace kiln::graph {
namespace {

// What one rule infers for one output.
struct Inferred {
  DType dtype = DType::kUndefined;
  ShapeInfo shape;
};

// One element of a small integer tensor that holds (part of) a shape: known
// by value, known to equal a named dim, or unknown. Exporters compute
// Reshape targets as Concat(Unsqueeze(Gather(Shape(x), i)), ...); with a
// symbolic batch that chain cannot fold, but tracking its elements this way
// still gives the Reshape result a shape such as [batch, 16, 4, 16].
struct SymInt {
  std::optional<int64_t> value;
  std::string symbol;
};
using ShapeValue = std::vector<SymInt>;
// Keyed by value id (not pointer): iteration order never matters here.
using ShapeValues = std::map<ValueId, ShapeValue>;
// Longer integer tensors are data, not shapes.
constexpr int64_t kMaxShapeValueElements = 64;

SymInt SymIntFromDim(const Dim& d) {
  if (d.is_concrete()) return SymInt{d.size, {}};
  return SymInt{std::nullopt, d.symbol};
}

// As a dim of a shape: negative values (Reshape's -1) are not dims.
Dim DimFromSymInt(const SymInt& v) {
  if (v.value) return *v.value >= 0 ? Dim::Concrete(*v.value) : Dim{};
  return v.symbol.empty() ? Dim{} : Dim::Symbolic(v.symbol);
}

// Per-node view used by the rules: inputs by position, nullptr when absent.
class NodeView {
 public:
  NodeView(const Graph& graph, const Node& node, const ShapeValues& shape_values)
      : graph_(graph), node_(node), shape_values_(shape_values) {}

  const Node& node() const { return node_; }
  size_t num_inputs() const { return node_.inputs.size(); }
  size_t num_outputs() const { return node_.outputs.size(); }

  const Value* input(size_t i) const {
    if (i >= node_.inputs.size() || node_.inputs[i] == kNoValue) return nullptr;
    return &graph_.value(node_.inputs[i]);
  }
  DType dtype(size_t i) const { return input(i) ? input(i)->dtype : DType::kUndefined; }
  // The input's shape; Unknown() when absent. A constant's dims are exact.
  ShapeInfo shape(size_t i) const {
    const Value* v = input(i);
    if (!v) return ShapeInfo::Unknown();
    if (v->constant) return ShapeInfo::FromDims(v->constant->dims());
    return v->shape;
  }
  // The values of a constant integer input (int64 or int32), if it is one.
  std::optional<std::vector<int64_t>> const_ints(size_t i) const {
    const Value* v = input(i);
    if (!v || !v->constant) return std::nullopt;
    const Tensor& t = *v->constant;
    std::vector<int64_t> out(static_cast<size_t>(t.num_elements()));
    if (t.dtype() == DType::kInt64) {
      std::copy(t.data<int64_t>(), t.data<int64_t>() + t.num_elements(), out.begin());
    } else if (t.dtype() == DType::kInt32) {
      std::copy(t.data<int32_t>(), t.data<int32_t>() + t.num_elements(), out.begin());
    } else {
      return std::nullopt;
    }
    return out;
  }
  // An int list given as attribute `name` (older opsets) or as input
  // `index` (newer ones): nullopt when given but not readable; an empty
  // list when given neither way (callers apply their default).
  std::optional<std::vector<int64_t>> ints_attr_or_input(const std::string& name, size_t index,
                                                         bool* present = nullptr) const {
    if (present) *present = true;
    if (node_.FindAttribute(name)) {
      auto ints = node_.GetInts(name);
      if (!ints.ok()) return std::nullopt;
      return std::move(ints).value();
    }
    if (input(index)) return const_ints(index);
    if (present) *present = false;
    return std::vector<int64_t>{};
  }
  std::optional<int64_t> int_attr(const std::string& name, int64_t default_value) const {
    auto v = node_.GetInt(name, default_value);
    return v.ok() ? std::optional<int64_t>(*v) : std::nullopt;
  }
  std::optional<std::vector<int64_t>> ints_attr(const std::string& name) const {
    auto v = node_.GetInts(name);
    return v.ok() ? std::optional<std::vector<int64_t>>(std::move(v).value()) : std::nullopt;
  }
  std::string string_attr(const std::string& name, const std::string& default_value) const {
    auto v = node_.GetString(name, default_value);
    return v.ok() ? *v : std::string();
  }
  // The elements of a 0-D or 1-D integer input: from its constant, or as
  // tracked symbolically earlier in the sweep.
  std::optional<ShapeValue> shape_value(size_t i) const {
    const Value* v = input(i);
    if (!v) return std::nullopt;
    if (v->constant) {
      if (v->constant->rank() > 1 || v->constant->num_elements() > kMaxShapeValueElements) return std::nullopt;
      auto ints = const_ints(i);
      if (!ints) return std::nullopt;
      ShapeValue out;
      for (int64_t x : *ints) out.push_back(SymInt{x, {}});
      return out;
    }
    auto it = shape_values_.find(node_.inputs[i]);
    if (it == shape_values_.end()) return std::nullopt;
    return it->second;
  }

 private:
  const Graph& graph_;
  const Node& node_;
  const ShapeValues& shape_values_;
};

using Outputs = std::vector<Inferred>;
using Rule = Outputs (*)(const NodeView&);

ShapeInfo RankOnly(size_t rank) {
  ShapeInfo s;
  s.rank_known = true;
  s.dims.resize(rank);
  return s;
}

std::optional<size_t> NormalizeAxis(int64_t axis, size_t rank) {
  const int64_t r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r) return std::nullopt;
  return static_cast<size_t>(axis < 0 ? axis + r : axis);
}

// Multidirectional broadcasting of one dim. A concrete size other than 1
// wins over a symbol or an unknown: the other side must be 1 or equal to it
// for the model to be valid, and either way the result is that size.
Dim BroadcastDim(const Dim& a, const Dim& b) {
  if (a.is_concrete() && a.size == 1) return b;
  if (b.is_concrete() && b.size == 1) return a;
  if (a.is_concrete() && b.is_concrete()) return a.size == b.size ? a : Dim{};
  if (a.is_concrete()) return a;
  if (b.is_concrete()) return b;
  if (!a.symbol.empty() && a.symbol == b.symbol) return a;
  return Dim{};
}

ShapeInfo Broadcast(const std::vector<ShapeInfo>& shapes) {
  size_t rank = 0;
  for (const ShapeInfo& s : shapes) {
    if (!s.rank_known) return ShapeInfo::Unknown();
    rank = std::max(rank, s.dims.size());
  }
  ShapeInfo out = RankOnly(rank);
  for (auto& d : out.dims) d = Dim::Concrete(1);
  for (const ShapeInfo& s : shapes) {
    const size_t offset = rank - s.dims.size();
    for (size_t i = 0; i < s.dims.size(); ++i) out.dims[offset + i] = BroadcastDim(out.dims[offset + i], s.dims[i]);
  }
  return out;
}

// Product of dims: concrete when all are; the one non-concrete dim when the
// others are all 1 (Flatten of [N, C, 1, 1] keeps N); else unknown.
Dim ProductDim(const std::vector<Dim>& dims, size_t begin, size_t end) {
  int64_t product = 1;
  const Dim* only_unknown = nullptr;
  int unknown_count = 0;
  for (size_t i = begin; i < end; ++i) {
    if (dims[i].is_concrete()) {
      if (dims[i].size != 0 && product > std::numeric_limits<int64_t>::max() / dims[i].size) return Dim{};
      product *= dims[i].size;
    } else {
      only_unknown = &dims[i];
      ++unknown_count;
    }
  }
  if (unknown_count == 0) return Dim::Concrete(product);
  if (unknown_count == 1 && product == 1) return *only_unknown;
  return Dim{};
}

DType FirstKnownDType(const NodeView& n, std::initializer_list<size_t> inputs) {
  for (size_t i : inputs) {
    if (n.dtype(i) != DType::kUndefined) return n.dtype(i);
  }
  return DType::kUndefined;
}

// ---- Rules, one per op family. Each returns one Inferred per output it
// knows something about (fewer than the node's outputs is fine).

Outputs SameAsInput0(const NodeView& n) { return {{n.dtype(0), n.shape(0)}}; }

Outputs SameShapeBool(const NodeView& n) { return {{DType::kBool, n.shape(0)}}; }

Outputs CastRule(const NodeView& n) {
  auto to = n.int_attr("to", 0);
  std::optional<DType> dtype = to ? DTypeFromOnnxCode(*to) : std::nullopt;
  return {{dtype.value_or(DType::kUndefined), n.shape(0)}};
}

Outputs BroadcastAll(const NodeView& n, DType dtype) {
  std::vector<ShapeInfo> shapes;
  for (size_t i = 0; i < n.num_inputs(); ++i) {
    if (!n.input(i)) return {{dtype, ShapeInfo::Unknown()}};
    shapes.push_back(n.shape(i));
  }
  return {{dtype, Broadcast(shapes)}};
}

Outputs ArithmeticRule(const NodeView& n) {
  DType dtype = n.dtype(0);
  for (size_t i = 1; dtype == DType::kUndefined && i < n.num_inputs(); ++i) dtype = n.dtype(i);
  return BroadcastAll(n, dtype);
}

// Pow's result has the base's type, whatever the exponent's.
Outputs PowRule(const NodeView& n) { return BroadcastAll(n, n.dtype(0)); }

Outputs ComparisonRule(const NodeView& n) { return BroadcastAll(n, DType::kBool); }

Outputs WhereRule(const NodeView& n) { return BroadcastAll(n, FirstKnownDType(n, {1, 2})); }

Outputs MatMulRule(const NodeView& n) {
  const DType dtype = FirstKnownDType(n, {0, 1});
  ShapeInfo a = n.shape(0), b = n.shape(1);
  if (!a.rank_known || !b.rank_known || a.dims.empty() || b.dims.empty()) return {{dtype, ShapeInfo::Unknown()}};
  // numpy.matmul: a 1-D operand gets a 1 prepended (a) or appended (b),
  // which is removed from the result again.
  const bool a_vector = a.dims.size() == 1, b_vector = b.dims.size() == 1;
  if (a_vector) a.dims.insert(a.dims.begin(), Dim::Concrete(1));
  if (b_vector) b.dims.push_back(Dim::Concrete(1));
  ShapeInfo a_batch = RankOnly(a.dims.size() - 2), b_batch = RankOnly(b.dims.size() - 2);
  std::copy(a.dims.begin(), a.dims.end() - 2, a_batch.dims.begin());
  std::copy(b.dims.begin(), b.dims.end() - 2, b_batch.dims.begin());
  ShapeInfo out = Broadcast({a_batch, b_batch});
  if (!a_vector) out.dims.push_back(a.dims[a.dims.size() - 2]);
  if (!b_vector) out.dims.push_back(b.dims.back());
  return {{dtype, out}};
}

Outputs GemmRule(const NodeView& n) {
  const DType dtype = FirstKnownDType(n, {0, 1});
  const ShapeInfo a = n.shape(0), b = n.shape(1);
  auto trans_a = n.int_attr("transA", 0), trans_b = n.int_attr("transB", 0);
  if (!a.rank_known || !b.rank_known || a.dims.size() != 2 || b.dims.size() != 2 || !trans_a || !trans_b) {
    return {{dtype, ShapeInfo::Unknown()}};
  }
  ShapeInfo out = RankOnly(2);
  out.dims[0] = a.dims[*trans_a ? 1 : 0];
  out.dims[1] = b.dims[*trans_b ? 0 : 1];
  return {{dtype, out}};
}

// Output size of one spatial dim of a convolution or pooling window.
Dim WindowOutputDim(const Dim& in, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad_begin, int64_t pad_end,
                    const std::string& auto_pad) {
  if (!in.is_concrete() || kernel <= 0 || stride <= 0 || dilation <= 0) return Dim{};
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") return Dim::Concrete((in.size + stride - 1) / stride);
  const int64_t extent = (kernel - 1) * dilation + 1;
  int64_t padded = in.size;
  if (auto_pad == "NOTSET" || auto_pad.empty()) {
    padded += pad_begin + pad_end;
  } else if (auto_pad != "VALID") {
    return Dim{};
  }
  if (padded < extent) return Dim{};
  return Dim::Concrete((padded - extent) / stride + 1);
}

// Spatial output dims for Conv (kernel from `weights` when the attribute is
// absent) and for pooling (kernel_shape required).
std::optional<std::vector<Dim>> WindowOutputDims(const NodeView& n, const ShapeInfo& x, const ShapeInfo* weights) {
  if (!x.rank_known || x.dims.size() < 3) return std::nullopt;
  const size_t spatial = x.dims.size() - 2;
  auto kernel = n.ints_attr("kernel_shape");
  if (!kernel) return std::nullopt;
  if (kernel->empty() && weights && weights->rank_known && weights->dims.size() == x.dims.size()) {
    for (size_t i = 0; i < spatial; ++i) kernel->push_back(weights->dims[i + 2].size);  // -1 if not concrete
  }
  auto strides = n.ints_attr("strides");
  auto dilations = n.ints_attr("dilations");
  auto pads = n.ints_attr("pads");
  if (!strides || !dilations || !pads) return std::nullopt;
  if (strides->empty()) strides->assign(spatial, 1);
  if (dilations->empty()) dilations->assign(spatial, 1);
  if (pads->empty()) pads->assign(2 * spatial, 0);
  if (kernel->size() != spatial || strides->size() != spatial || dilations->size() != spatial ||
      pads->size() != 2 * spatial) {
    return std::nullopt;
  }
  const std::string auto_pad = n.string_attr("auto_pad", "NOTSET");
  std::vector<Dim> out;
  for (size_t i = 0; i < spatial; ++i) {
    out.push_back(WindowOutputDim(x.dims[i + 2], (*kernel)[i], (*strides)[i], (*dilations)[i], (*pads)[i],
                                  (*pads)[i + spatial], auto_pad));
  }
  return out;
}

Outputs ConvRule(const NodeView& n) {
  const DType dtype = FirstKnownDType(n, {0, 1});
  const ShapeInfo x = n.shape(0), w = n.shape(1);
  auto spatial = WindowOutputDims(n, x, &w);
  if (!spatial) return {{dtype, ShapeInfo::Unknown()}};
  ShapeInfo out = RankOnly(0);
  out.dims.push_back(x.dims[0]);
  out.dims.push_back(w.rank_known && !w.dims.empty() ? w.dims[0] : Dim{});
  out.dims.insert(out.dims.end(), spatial->begin(), spatial->end());
  return {{dtype, out}};
}

Outputs PoolRule(const NodeView& n) {
  const ShapeInfo x = n.shape(0);
  auto ceil_mode = n.int_attr("ceil_mode", 0);
  // ceil_mode's rounding has edge rules (a window may not start in the end
  // padding) that differ between versions; leave those to ONNX's inference.
  std::optional<std::vector<Dim>> spatial;
  if (ceil_mode && *ceil_mode == 0) spatial = WindowOutputDims(n, x, nullptr);
  if (!spatial) return {{n.dtype(0), ShapeInfo::Unknown()}};
  ShapeInfo out = RankOnly(0);
  out.dims = {x.dims[0], x.dims[1]};
  out.dims.insert(out.dims.end(), spatial->begin(), spatial->end());
  // MaxPool's optional second output holds int64 indices of the same shape.
  return {{n.dtype(0), out}, {DType::kInt64, out}};
}

Outputs GlobalPoolRule(const NodeView& n) {
  ShapeInfo out = n.shape(0);
  if (!out.rank_known || out.dims.size() < 2) return {{n.dtype(0), ShapeInfo::Unknown()}};
  for (size_t i = 2; i < out.dims.size(); ++i) out.dims[i] = Dim::Concrete(1);
  return {{n.dtype(0), out}};
}

Outputs ReshapeRule(const NodeView& n) {
  const ShapeInfo in = n.shape(0);
  // Reshape-1..4 took the shape as an attribute, 5+ as input 1 (a constant
  // or a tracked shape value).
  std::optional<ShapeValue> target;
  if (n.node().FindAttribute("shape")) {
    if (auto ints = n.ints_attr("shape")) {
      target.emplace();
      for (int64_t x : *ints) target->push_back(SymInt{x, {}});
    }
  } else {
    target = n.shape_value(1);
  }
  auto allow_zero = n.int_attr("allowzero", 0);
  if (!target || !allow_zero) return {{n.dtype(0), ShapeInfo::Unknown()}};
  ShapeInfo out = RankOnly(target->size());
  std::optional<size_t> infer_at;
  for (size_t i = 0; i < target->size(); ++i) {
    const SymInt& t = (*target)[i];
    if (!t.value) {
      out.dims[i] = DimFromSymInt(t);  // a symbol (a dim size, so neither 0 nor -1) or unknown
    } else if (*t.value == 0 && *allow_zero == 0) {
      // 0 copies the input's dim at the same position.
      if (!in.rank_known || i >= in.dims.size()) return {{n.dtype(0), RankOnly(target->size())}};
      out.dims[i] = in.dims[i];
    } else if (*t.value == -1) {
      if (infer_at) return {{n.dtype(0), ShapeInfo::Unknown()}};  // two -1: invalid, leave it to the kernel
      infer_at = i;
    } else if (*t.value >= 0) {
      out.dims[i] = Dim::Concrete(*t.value);
    } else {
      return {{n.dtype(0), ShapeInfo::Unknown()}};
    }
  }
  if (infer_at && in.rank_known) {
    // The -1 takes what is left of the element count. Output dims that are
    // symbols must cancel against equal input symbols (a [B, S, 12, 64] ->
    // [0, 0, -1] reshape gives 768 without knowing B or S); what remains of
    // the input must be concrete.
    std::vector<Dim> left = in.dims;
    int64_t known = 1;
    bool solvable = true;
    for (size_t i = 0; i < out.dims.size() && solvable; ++i) {
      if (i == *infer_at) continue;
      const Dim& d = out.dims[i];
      if (d.is_concrete()) {
        if (d.size == 0 || known > std::numeric_limits<int64_t>::max() / d.size)
          solvable = false;
        else
          known *= d.size;
        continue;
      }
      auto match = std::find_if(left.begin(), left.end(),
                                [&](const Dim& l) { return !l.symbol.empty() && l.symbol == d.symbol; });
      if (d.symbol.empty() || match == left.end()) {
        solvable = false;
      } else {
        left.erase(match);
      }
    }
    const Dim total = solvable ? ProductDim(left, 0, left.size()) : Dim{};
    if (total.is_concrete() && total.size % known == 0) out.dims[*infer_at] = Dim::Concrete(total.size / known);
  }
  return {{n.dtype(0), out}};
}

Outputs FlattenRule(const NodeView& n) {
  const ShapeInfo in = n.shape(0);
  auto axis = n.int_attr("axis", 1);
  if (!in.rank_known || !axis) return {{n.dtype(0), ShapeInfo::Unknown()}};
  const int64_t rank = static_cast<int64_t>(in.dims.size());
  const int64_t a = *axis < 0 ? *axis + rank : *axis;  // axis may equal rank
  if (a < 0 || a > rank) return {{n.dtype(0), ShapeInfo::Unknown()}};
  ShapeInfo out = RankOnly(2);
  out.dims[0] = ProductDim(in.dims, 0, static_cast<size_t>(a));
  out.dims[1] = ProductDim(in.dims, static_cast<size_t>(a), in.dims.size());
  return {{n.dtype(0), out}};
}

Outputs TransposeRule(const NodeView& n) {
  const ShapeInfo in = n.shape(0);
  auto perm = n.ints_attr("perm");
  if (!in.rank_known || !perm) return {{n.dtype(0), ShapeInfo::Unknown()}};
  const size_t rank = in.dims.size();
  if (perm->empty()) {
    for (size_t i = 0; i < rank; ++i) perm->push_back(static_cast<int64_t>(rank - 1 - i));
  }
  if (perm->size() != rank) return {{n.dtype(0), ShapeInfo::Unknown()}};
  ShapeInfo out = RankOnly(rank);
  for (size_t i = 0; i < rank; ++i) {
    auto axis = NormalizeAxis((*perm)[i], rank);
    if (!axis) return {{n.dtype(0), ShapeInfo::Unknown()}};
    out.dims[i] = in.dims[*axis];
  }
  return {{n.dtype(0), out}};
}

// Keeps whichever of two equal-by-contract dims says more.
Dim MergeDim(const Dim& a, const Dim& b) {
  if (a.is_concrete()) return a;
  if (b.is_concrete()) return b;
  return a.symbol.empty() ? b : a;
}

Outputs ConcatRule(const NodeView& n) {
  DType dtype = DType::kUndefined;
  for (size_t i = 0; dtype == DType::kUndefined && i < n.num_inputs(); ++i) dtype = n.dtype(i);
  auto axis_attr = n.int_attr("axis", 0);
  if (n.num_inputs() == 0 || !axis_attr) return {{dtype, ShapeInfo::Unknown()}};
  ShapeInfo out;
  for (size_t i = 0; i < n.num_inputs(); ++i) {
    const ShapeInfo s = n.shape(i);
    if (!s.rank_known || (out.rank_known && s.dims.size() != out.dims.size())) return {{dtype, ShapeInfo::Unknown()}};
    if (!out.rank_known) {
      out = s;
      continue;
    }
    auto axis = NormalizeAxis(*axis_attr, s.dims.size());
    if (!axis) return {{dtype, ShapeInfo::Unknown()}};
    for (size_t d = 0; d < s.dims.size(); ++d) {
      if (d != *axis) {
        out.dims[d] = MergeDim(out.dims[d], s.dims[d]);
      } else if (out.dims[d].is_concrete() && s.dims[d].is_concrete()) {
        out.dims[d].size += s.dims[d].size;
      } else {
        out.dims[d] = Dim{};
      }
    }
  }
  if (!NormalizeAxis(*axis_attr, out.dims.size())) return {{dtype, ShapeInfo::Unknown()}};
  return {{dtype, out}};
}

Outputs SplitRule(const NodeView& n) {
  const ShapeInfo in = n.shape(0);
  auto axis_attr = n.int_attr("axis", 0);
  const size_t count = n.num_outputs();
  if (!in.rank_known || !axis_attr || count == 0) return {};
  auto axis = NormalizeAxis(*axis_attr, in.dims.size());
  // Split-1..12 had `split` as an attribute, 13+ as input 1.
  auto split = n.ints_attr_or_input("split", 1);
  if (!axis || !split) return {};
  if (split->empty()) {
    // Equal parts (the last one smaller when uneven, as Split-18 allows).
    const Dim& d = in.dims[*axis];
    if (!d.is_concrete()) return {};
    const int64_t part = (d.size + static_cast<int64_t>(count) - 1) / static_cast<int64_t>(count);
    int64_t left = d.size;
    for (size_t i = 0; i < count; ++i) {
      split->push_back(std::min(part, left));
      left -= split->back();
    }
  }
  if (split->size() != count) return {};
  Outputs outs;
  for (size_t i = 0; i < count; ++i) {
    ShapeInfo s = in;
    s.dims[*axis] = (*split)[i] >= 0 ? Dim::Concrete((*split)[i]) : Dim{};
    outs.push_back({n.dtype(0), s});
  }
  return outs;
}

// LSTM, GRU, RNN: Y [seq, num_directions, batch, hidden] and the final
// states [num_directions, batch, hidden] (layout 1 puts batch first in all
// three). hidden_size comes from the attribute or R's last dim.
Outputs RecurrentRule(const NodeView& n) {
  const DType dtype = n.dtype(0);
  const ShapeInfo x = n.shape(0), r = n.shape(2);
  auto layout = n.int_attr("layout", 0);
  auto hidden_size = n.int_attr("hidden_size", 0);
  const std::string direction = n.string_attr("direction", "forward");
  Outputs outs(n.num_outputs(), Inferred{dtype, ShapeInfo::Unknown()});
  if (!layout || !hidden_size || !x.rank_known || x.dims.size() != 3 || (*layout != 0 && *layout != 1)) return outs;
  Dim hidden = *hidden_size > 0 ? Dim::Concrete(*hidden_size) : Dim{};
  if (*hidden_size <= 0 && r.rank_known && r.dims.size() == 3) hidden = r.dims[2];
  const Dim dirs = Dim::Concrete(direction == "bidirectional" ? 2 : 1);
  const Dim seq = x.dims[*layout == 0 ? 0 : 1], batch = x.dims[*layout == 0 ? 1 : 0];
  ShapeInfo y = RankOnly(4), state = RankOnly(3);
  y.dims = *layout == 0 ? std::vector<Dim>{seq, dirs, batch, hidden} : std::vector<Dim>{batch, seq, dirs, hidden};
  state.dims = *layout == 0 ? std::vector<Dim>{dirs, batch, hidden} : std::vector<Dim>{batch, dirs, hidden};
  for (size_t i = 0; i < outs.size(); ++i) outs[i].shape = i == 0 ? y : state;
  return outs;
}

Outputs GatherRule(const NodeView& n) {
  const ShapeInfo data = n.shape(0), indices = n.shape(1);
  auto axis_attr = n.int_attr("axis", 0);
  if (!data.rank_known || !indices.rank_known || !axis_attr) return {{n.dtype(0), ShapeInfo::Unknown()}};
  auto axis = NormalizeAxis(*axis_attr, data.dims.size());
  if (!axis) return {{n.dtype(0), ShapeInfo::Unknown()}};
  ShapeInfo out = RankOnly(0);
  out.dims.assign(data.dims.begin(), data.dims.begin() + static_cast<std::ptrdiff_t>(*axis));
  out.dims.insert(out.dims.end(), indices.dims.begin(), indices.dims.end());
  out.dims.insert(out.dims.end(), data.dims.begin() + static_cast<std::ptrdiff_t>(*axis) + 1, data.dims.end());
  return {{n.dtype(0), out}};
}

Outputs UnsqueezeRule(const NodeView& n) {
  const ShapeInfo in = n.shape(0);
  // Unsqueeze-1..12: attribute; 13+: input 1.
  auto axes = n.ints_attr_or_input("axes", 1);
  if (!in.rank_known || !axes || axes->empty()) return {{n.dtype(0), ShapeInfo::Unknown()}};
  const size_t rank = in.dims.size() + axes->size();
  std::vector<bool> inserted(rank, false);
  for (int64_t a : *axes) {
    auto axis = NormalizeAxis(a, rank);
    if (!axis || inserted[*axis]) return {{n.dtype(0), ShapeInfo::Unknown()}};
    inserted[*axis] = true;
  }
  ShapeInfo out = RankOnly(rank);
  size_t next = 0;
  for (size_t i = 0; i < rank; ++i) out.dims[i] = inserted[i] ? Dim::Concrete(1) : in.dims[next++];
  return {{n.dtype(0), out}};
}

Outputs SqueezeRule(const NodeView& n) {
  const ShapeInfo in = n.shape(0);
  auto axes = n.ints_attr_or_input("axes", 1);
  if (!in.rank_known || !axes) return {{n.dtype(0), ShapeInfo::Unknown()}};
  std::vector<bool> removed(in.dims.size(), false);
  if (axes->empty()) {
    // Without axes every dim of size 1 goes, so each dim must be known.
    for (size_t i = 0; i < in.dims.size(); ++i) {
      if (!in.dims[i].is_concrete()) return {{n.dtype(0), ShapeInfo::Unknown()}};
      removed[i] = in.dims[i].size == 1;
    }
  }
  for (int64_t a : *axes) {
    auto axis = NormalizeAxis(a, in.dims.size());
    if (!axis) return {{n.dtype(0), ShapeInfo::Unknown()}};
    removed[*axis] = true;
  }
  ShapeInfo out = RankOnly(0);
  for (size_t i = 0; i < in.dims.size(); ++i) {
    if (!removed[i]) out.dims.push_back(in.dims[i]);
  }
  return {{n.dtype(0), out}};
}

// Number of elements Slice takes from a dim of size `dim`, with ONNX's
// clamping rules.
int64_t SliceLength(int64_t dim, int64_t start, int64_t end, int64_t step) {
  if (dim == 0) return 0;
  auto adjust = [dim](int64_t v) { return v < 0 ? v + dim : v; };  // cannot overflow: dim >= 0
  start = adjust(start);
  end = adjust(end);
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    return end > start ? (end - start - 1) / step + 1 : 0;
  }
  start = std::clamp<int64_t>(start, 0, dim - 1);
  end = std::clamp<int64_t>(end, -1, dim - 1);
  return start > end ? (start - end - 1) / -step + 1 : 0;
}

Outputs SliceRule(const NodeView& n) {
  const ShapeInfo in = n.shape(0);
  if (!in.rank_known) return {{n.dtype(0), ShapeInfo::Unknown()}};
  std::optional<std::vector<int64_t>> starts, ends, axes, steps;
  if (n.node().opset < 10) {
    starts = n.ints_attr("starts");
    ends = n.ints_attr("ends");
    axes = n.ints_attr("axes");
    steps = std::vector<int64_t>{};
  } else {
    starts = n.const_ints(1);
    ends = n.const_ints(2);
    axes = n.input(3) ? n.const_ints(3) : std::vector<int64_t>{};
    steps = n.input(4) ? n.const_ints(4) : std::vector<int64_t>{};
  }
  if (!starts || !ends || !axes || !steps || starts->size() != ends->size()) {
    // The sliced axes are not known, but the rank is.
    return {{n.dtype(0), RankOnly(in.dims.size())}};
  }
  if (axes->empty()) {
    for (size_t i = 0; i < starts->size(); ++i) axes->push_back(static_cast<int64_t>(i));
  }
  if (steps->empty()) steps->assign(starts->size(), 1);
  if (axes->size() != starts->size() || steps->size() != starts->size()) return {{n.dtype(0), ShapeInfo::Unknown()}};
  ShapeInfo out = in;
  for (size_t i = 0; i < starts->size(); ++i) {
    auto axis = NormalizeAxis((*axes)[i], in.dims.size());
    const int64_t step = (*steps)[i];
    if (!axis || step == 0 || step == std::numeric_limits<int64_t>::min()) return {{n.dtype(0), ShapeInfo::Unknown()}};
    const Dim& d = in.dims[*axis];
    if (d.is_concrete()) {
      out.dims[*axis] = Dim::Concrete(SliceLength(d.size, (*starts)[i], (*ends)[i], step));
    } else if (!((*starts)[i] == 0 && step == 1 && (*ends)[i] >= std::numeric_limits<int32_t>::max())) {
      out.dims[*axis] = Dim{};  // anything but "the whole dim" of an unknown dim is unknown
    }
  }
  return {{n.dtype(0), out}};
}

Outputs ReduceRule(const NodeView& n) {
  const ShapeInfo in = n.shape(0);
  auto keepdims = n.int_attr("keepdims", 1);
  auto noop = n.int_attr("noop_with_empty_axes", 0);
  // ReduceSum-13 and every Reduce*-18 take axes as input 1.
  auto axes = n.ints_attr_or_input("axes", 1);
  if (!in.rank_known || !keepdims || !noop) return {{n.dtype(0), ShapeInfo::Unknown()}};
  if (!axes) return {{n.dtype(0), *keepdims ? RankOnly(in.dims.size()) : ShapeInfo::Unknown()}};
  if (axes->empty() && *noop) return {{n.dtype(0), in}};
  std::vector<bool> reduced(in.dims.size(), axes->empty());
  for (int64_t a : *axes) {
    auto axis = NormalizeAxis(a, in.dims.size());
    if (!axis) return {{n.dtype(0), ShapeInfo::Unknown()}};
    reduced[*axis] = true;
  }
  ShapeInfo out = RankOnly(0);
  for (size_t i = 0; i < in.dims.size(); ++i) {
    if (!reduced[i]) {
      out.dims.push_back(in.dims[i]);
    } else if (*keepdims) {
      out.dims.push_back(Dim::Concrete(1));
    }
  }
  return {{n.dtype(0), out}};
}

Outputs ArgReduceRule(const NodeView& n) {
  const ShapeInfo in = n.shape(0);
  auto axis_attr = n.int_attr("axis", 0);
  auto keepdims = n.int_attr("keepdims", 1);
  if (!in.rank_known || !axis_attr || !keepdims) return {{DType::kInt64, ShapeInfo::Unknown()}};
  auto axis = NormalizeAxis(*axis_attr, in.dims.size());
  if (!axis) return {{DType::kInt64, ShapeInfo::Unknown()}};
  ShapeInfo out = in;
  if (*keepdims) {
    out.dims[*axis] = Dim::Concrete(1);
  } else {
    out.dims.erase(out.dims.begin() + static_cast<std::ptrdiff_t>(*axis));
  }
  return {{DType::kInt64, out}};
}

Outputs ShapeRule(const NodeView& n) {
  const ShapeInfo in = n.shape(0);
  if (!in.rank_known) return {{DType::kInt64, RankOnly(1)}};
  const int64_t rank = static_cast<int64_t>(in.dims.size());
  auto start = n.int_attr("start", 0);
  auto end = n.int_attr("end", rank);
  if (!start || !end) return {{DType::kInt64, RankOnly(1)}};
  auto clamp = [rank](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
  ShapeInfo out = RankOnly(1);
  out.dims[0] = Dim::Concrete(std::max<int64_t>(0, clamp(*end) - clamp(*start)));
  return {{DType::kInt64, out}};
}

Outputs SizeRule(const NodeView&) { return {{DType::kInt64, RankOnly(0)}}; }

Outputs ExpandRule(const NodeView& n) {
  auto target = n.shape_value(1);
  if (!target) return {{n.dtype(0), ShapeInfo::Unknown()}};
  ShapeInfo t = RankOnly(0);
  for (const SymInt& d : *target) t.dims.push_back(DimFromSymInt(d));
  return {{n.dtype(0), Broadcast({n.shape(0), t})}};
}

Outputs TileRule(const NodeView& n) {
  const ShapeInfo in = n.shape(0);
  auto repeats = n.const_ints(1);
  if (!in.rank_known || !repeats || repeats->size() != in.dims.size()) return {{n.dtype(0), ShapeInfo::Unknown()}};
  ShapeInfo out = in;
  for (size_t i = 0; i < out.dims.size(); ++i) {
    const int64_t r = (*repeats)[i];
    if (r == 1) continue;
    out.dims[i] = out.dims[i].is_concrete() && r >= 0 ? Dim::Concrete(out.dims[i].size * r) : Dim{};
  }
  return {{n.dtype(0), out}};
}

Outputs PadRule(const NodeView& n) {
  const ShapeInfo in = n.shape(0);
  // Pad-2: attribute; 11+: input 1 (and, from 18, optional axes input 3,
  // which this rule does not model).
  auto pads = n.ints_attr_or_input("pads", 1);
  if (!in.rank_known || !pads || n.input(3) || pads->size() != 2 * in.dims.size()) {
    return {{n.dtype(0), in.rank_known ? RankOnly(in.dims.size()) : ShapeInfo::Unknown()}};
  }
  ShapeInfo out = in;
  const size_t rank = in.dims.size();
  for (size_t i = 0; i < rank; ++i) {
    const int64_t extra = (*pads)[i] + (*pads)[i + rank];
    if (extra == 0) continue;
    out.dims[i] =
        in.dims[i].is_concrete() && in.dims[i].size + extra >= 0 ? Dim::Concrete(in.dims[i].size + extra) : Dim{};
  }
  return {{n.dtype(0), out}};
}

Outputs ConstantOfShapeRule(const NodeView& n) {
  DType dtype = DType::kFloat32;  // the default fill is a float32 zero
  if (const Attribute* value = n.node().FindAttribute("value")) {
    dtype = value->kind == Attribute::Kind::kTensor ? value->t.dtype() : DType::kUndefined;
  }
  auto dims = n.shape_value(0);
  if (!dims) return {{dtype, ShapeInfo::Unknown()}};
  ShapeInfo out = RankOnly(0);
  for (const SymInt& d : *dims) out.dims.push_back(DimFromSymInt(d));
  return {{dtype, out}};
}

Outputs ConstantRule(const NodeView& n) {
  const Node& node = n.node();
  if (const Attribute* a = node.FindAttribute("value"); a && a->kind == Attribute::Kind::kTensor) {
    return {{a->t.dtype(), ShapeInfo::FromDims(a->t.dims())}};
  }
  if (node.FindAttribute("value_float")) return {{DType::kFloat32, RankOnly(0)}};
  if (node.FindAttribute("value_int")) return {{DType::kInt64, RankOnly(0)}};
  if (const Attribute* a = node.FindAttribute("value_floats")) {
    return {{DType::kFloat32, ShapeInfo::FromDims({static_cast<int64_t>(a->floats.size())})}};
  }
  if (const Attribute* a = node.FindAttribute("value_ints")) {
    return {{DType::kInt64, ShapeInfo::FromDims({static_cast<int64_t>(a->ints.size())})}};
  }
  return {};
}

const std::map<std::string_view, Rule>& Rules() {
  static const auto* rules = [] {
    auto* m = new std::map<std::string_view, Rule>;
    for (std::string_view op : {"Relu",
                                "LeakyRelu",
                                "PRelu",
                                "Elu",
                                "Selu",
                                "Celu",
                                "Sigmoid",
                                "HardSigmoid",
                                "HardSwish",
                                "Tanh",
                                "Softplus",
                                "Softsign",
                                "Mish",
                                "Gelu",
                                "Exp",
                                "Log",
                                "Sqrt",
                                "Abs",
                                "Neg",
                                "Reciprocal",
                                "Floor",
                                "Ceil",
                                "Round",
                                "Sign",
                                "Erf",
                                "Sin",
                                "Cos",
                                "Tan",
                                "Asin",
                                "Acos",
                                "Atan",
                                "Sinh",
                                "Cosh",
                                "Asinh",
                                "Acosh",
                                "Atanh",
                                "Identity",
                                "Dropout",
                                "Clip",
                                "Softmax",
                                "LogSoftmax",
                                "Hardmax",
                                "Shrink",
                                "ThresholdedRelu",
                                "BatchNormalization",
                                "InstanceNormalization",
                                "LayerNormalization",
                                "LRN",
                                "LpNormalization",
                                "MeanVarianceNormalization",
                                "CumSum",
                                "Trilu",
                                "Not",
                                "BitwiseNot"}) {
      (*m)[op] = SameAsInput0;
    }
    for (std::string_view op : {"IsNaN", "IsInf"}) (*m)[op] = SameShapeBool;
    for (std::string_view op : {"Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Sum", "Mean", "BitShift",
                                "BitwiseAnd", "BitwiseOr", "BitwiseXor"}) {
      (*m)[op] = ArithmeticRule;
    }
    for (std::string_view op : {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"}) {
      (*m)[op] = ComparisonRule;
    }
    for (std::string_view op : {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}) {
      (*m)[op] = ReduceRule;
    }
    for (std::string_view op : {"MaxPool", "AveragePool", "LpPool"}) (*m)[op] = PoolRule;
    for (std::string_view op : {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"}) (*m)[op] = GlobalPoolRule;
    for (std::string_view op : {"ArgMax", "ArgMin"}) (*m)[op] = ArgReduceRule;
    (*m)["Pow"] = PowRule;
    (*m)["Where"] = WhereRule;
    (*m)["Cast"] = CastRule;
    (*m)["MatMul"] = MatMulRule;
    (*m)["Gemm"] = GemmRule;
    for (std::string_view op : {"LSTM", "GRU", "RNN"}) (*m)[op] = RecurrentRule;
    (*m)["Conv"] = ConvRule;
    (*m)["Reshape"] = ReshapeRule;
    (*m)["Flatten"] = FlattenRule;
    (*m)["Transpose"] = TransposeRule;
    (*m)["Concat"] = ConcatRule;
    (*m)["Split"] = SplitRule;
    (*m)["Gather"] = GatherRule;
    (*m)["Unsqueeze"] = UnsqueezeRule;
    (*m)["Squeeze"] = SqueezeRule;
    (*m)["Slice"] = SliceRule;
    (*m)["Shape"] = ShapeRule;
    (*m)["Size"] = SizeRule;
    (*m)["Expand"] = ExpandRule;
    (*m)["Tile"] = TileRule;
    (*m)["Pad"] = PadRule;
    (*m)["ConstantOfShape"] = ConstantOfShapeRule;
    (*m)["Constant"] = ConstantRule;
    return m;
  }();
  return *rules;
}

// One element of Add/Sub/Mul/Div on shape values: computed when both sides
// are known, passed through for the identities (x + 0, x * 1, ...) that
// exporters produce around symbolic dims, unknown otherwise.
SymInt ShapeArithmetic(const std::string& op, const SymInt& a, const SymInt& b) {
  if (a.value && b.value) {
    const int64_t x = *a.value, y = *b.value;
    int64_t r = 0;
    if (op == "Add" && !__builtin_add_overflow(x, y, &r)) return SymInt{r, {}};
    if (op == "Sub" && !__builtin_sub_overflow(x, y, &r)) return SymInt{r, {}};
    if (op == "Mul" && !__builtin_mul_overflow(x, y, &r)) return SymInt{r, {}};
    if (op == "Div" && y != 0 && !(x == std::numeric_limits<int64_t>::min() && y == -1)) return SymInt{x / y, {}};
    return SymInt{};
  }
  auto is = [](const SymInt& v, int64_t k) { return v.value && *v.value == k; };
  if ((op == "Add" || op == "Sub") && is(b, 0)) return a;
  if (op == "Add" && is(a, 0)) return b;
  if ((op == "Mul" || op == "Div") && is(b, 1)) return a;
  if (op == "Mul" && is(a, 1)) return b;
  return SymInt{};
}

// The symbolic elements of a node's first output when it is a small
// integer tensor computed from shapes; nullopt when not tracked.
std::optional<ShapeValue> ComputeShapeValue(const NodeView& n) {
  const std::string& op = n.node().op_type;
  if (op == "Shape") {
    const ShapeInfo in = n.shape(0);
    if (!in.rank_known) return std::nullopt;
    const int64_t rank = static_cast<int64_t>(in.dims.size());
    auto start = n.int_attr("start", 0);
    auto end = n.int_attr("end", rank);
    if (!start || !end) return std::nullopt;
    auto clamp = [rank](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
    ShapeValue out;
    for (int64_t i = clamp(*start); i < clamp(*end); ++i) out.push_back(SymIntFromDim(in.dims[static_cast<size_t>(i)]));
    return out;
  }
  if (op == "Gather") {
    auto data = n.shape_value(0);
    auto indices = n.const_ints(1);
    auto axis = n.int_attr("axis", 0);
    const ShapeInfo data_shape = n.shape(0), indices_shape = n.shape(1);
    if (!data || !indices || !axis || (*axis != 0 && *axis != -1) || data_shape.dims.size() != 1 ||
        indices_shape.dims.size() > 1) {
      return std::nullopt;
    }
    const int64_t size = static_cast<int64_t>(data->size());
    ShapeValue out;
    for (int64_t i : *indices) {
      if (i < -size || i >= size) return std::nullopt;
      out.push_back((*data)[static_cast<size_t>(i < 0 ? i + size : i)]);
    }
    return out;
  }
  if (op == "Unsqueeze" || op == "Squeeze" || op == "Identity" || op == "Reshape") {
    return n.shape_value(0);  // between 0-D and 1-D (the caller checks) the elements stay
  }
  if (op == "Cast") {
    auto to = n.int_attr("to", 0);
    if (!to || (*to != 6 && *to != 7)) return std::nullopt;  // int32 or int64 only
    return n.shape_value(0);
  }
  if (op == "Concat") {
    ShapeValue out;
    for (size_t i = 0; i < n.num_inputs(); ++i) {
      auto part = n.shape_value(i);
      if (!part) return std::nullopt;
      out.insert(out.end(), part->begin(), part->end());
    }
    return out;
  }
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
    auto a = n.shape_value(0), b = n.shape_value(1);
    if (!a || !b || a->empty() || b->empty()) return std::nullopt;
    const size_t size = std::max(a->size(), b->size());
    if ((a->size() != size && a->size() != 1) || (b->size() != size && b->size() != 1)) return std::nullopt;
    ShapeValue out;
    for (size_t i = 0; i < size; ++i) {
      out.push_back(ShapeArithmetic(op, (*a)[a->size() == 1 ? 0 : i], (*b)[b->size() == 1 ? 0 : i]));
    }
    return out;
  }
  return std::nullopt;
}

// Adds what `inferred` knows to `v` without ever contradicting it (see the
// header for the rules).
void MergeInto(Value& v, const Inferred& inferred) {
  if (v.dtype == DType::kUndefined) v.dtype = inferred.dtype;
  if (!inferred.shape.rank_known) return;
  if (!v.shape.rank_known) {
    v.shape = inferred.shape;
    return;
  }
  if (v.shape.dims.size() != inferred.shape.dims.size()) return;
  for (size_t i = 0; i < v.shape.dims.size(); ++i) {
    Dim& have = v.shape.dims[i];
    const Dim& got = inferred.shape.dims[i];
    if (have.is_concrete()) continue;
    if (got.is_concrete() || (have.symbol.empty() && !got.symbol.empty())) have = got;
  }
}

}  // namespace

Status PropagateShapes(Graph& graph) {
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  const auto& rules = Rules();
  ShapeValues shape_values;
  for (NodeId id : order) {
    const Node& node = graph.node(id);
    if (!node.domain.empty()) continue;
    const NodeView view(graph, node, shape_values);
    auto rule = rules.find(node.op_type);
    if (rule != rules.end()) {
      Outputs inferred = rule->second(view);
      for (size_t i = 0; i < inferred.size() && i < node.outputs.size(); ++i) {
        if (node.outputs[i] == kNoValue) continue;
        Value& v = graph.value(node.outputs[i]);
        if (v.constant) continue;  // exact already
        MergeInto(v, inferred[i]);
      }
    }
    // Only 0-D and 1-D results are tracked, which keeps element order
    // trivially right through Concat, Reshape and friends.
    if (!node.outputs.empty() && node.outputs[0] != kNoValue && graph.value(node.outputs[0]).shape.rank_known &&
        graph.value(node.outputs[0]).shape.dims.size() <= 1) {
      std::optional<ShapeValue> value = ComputeShapeValue(view);
      if (value && static_cast<int64_t>(value->size()) <= kMaxShapeValueElements) {
        shape_values[node.outputs[0]] = std::move(*value);
      }
    }
  }
  return Status::Ok();
}

}  // namespace kiln::graph
