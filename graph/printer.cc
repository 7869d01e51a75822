#include "graph/printer.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <sstream>

namespace kiln::graph {
namespace {

// Lists longer than this are cut with "...": a printed graph is read by a
// person, and a 4096-element pads list or constant helps nobody.
constexpr size_t kMaxListItems = 16;
// Integer constants with at most this many elements print their values.
constexpr int64_t kMaxInlineConstantElements = 8;

std::string FormatFloat(double v) {
  std::array<char, 64> buf;
  // Shortest round-trip form: "0.1", not "0.100000001".
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  if (ec != std::errc()) return "?";
  return std::string(buf.data(), end);
}

std::string FormatFloat(float v) {
  std::array<char, 64> buf;
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  if (ec != std::errc()) return "?";
  return std::string(buf.data(), end);
}

template <typename T, typename Fn>
std::string FormatList(const std::vector<T>& items, Fn format_item) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i == kMaxListItems) {
      s += ", ...";
      break;
    }
    if (i) s += ", ";
    s += format_item(items[i]);
  }
  return s + "]";
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// "[N,3,224,224]" without spaces so that a line stays short; "[...]" when
// even the rank is unknown, "?" for an unknown dim.
std::string CompactShape(const ShapeInfo& shape) {
  if (!shape.rank_known) return "[...]";
  std::string s = "[";
  for (size_t i = 0; i < shape.dims.size(); ++i) {
    if (i) s += ",";
    const Dim& d = shape.dims[i];
    if (d.is_concrete()) {
      s += std::to_string(d.size);
    } else {
      s += d.symbol.empty() ? "?" : d.symbol;
    }
  }
  return s + "]";
}

std::string TypeString(const Value& v) {
  std::string dtype = v.dtype == DType::kUndefined ? "?" : DTypeName(v.dtype);
  // ONNX's spelling: seq(float32), optional(seq(float32)).
  switch (v.kind) {
    case ValueKind::kTensor: break;
    case ValueKind::kSequence: return "seq(" + dtype + ")";
    case ValueKind::kOptionalTensor: return "optional(" + dtype + CompactShape(v.shape) + ")";
    case ValueKind::kOptionalSequence: return "optional(seq(" + dtype + "))";
  }
  if (v.dtype == DType::kUndefined && !v.shape.rank_known) return "?";
  return dtype + CompactShape(v.shape);
}

std::string ValueName(const Graph& graph, ValueId id) {
  if (id == kNoValue) return "_";
  if (id < 0 || static_cast<size_t>(id) >= graph.num_values()) return "%<bad " + std::to_string(id) + ">";
  const std::string& name = graph.value(id).name;
  return name.empty() ? "%#" + std::to_string(id) : "%" + name;
}

// The values of a small constant, e.g. "[1, 64]": integer and bool tensors
// (shape arithmetic, axes, indices) and float scalars. Empty for anything
// else, so that small weight vectors do not drown the listing.
std::string InlineConstantValues(const Tensor& t) {
  if (t.num_elements() > kMaxInlineConstantElements || t.raw_data() == nullptr) return "";
  const bool is_float = t.dtype() == DType::kFloat32 || t.dtype() == DType::kFloat64;
  if (is_float && t.num_elements() != 1) return "";
  std::vector<std::string> items;
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    switch (t.dtype()) {
      case DType::kFloat32: items.push_back(FormatFloat(t.data<float>()[i])); break;
      case DType::kFloat64: items.push_back(FormatFloat(t.data<double>()[i])); break;
      case DType::kInt64: items.push_back(std::to_string(t.data<int64_t>()[i])); break;
      case DType::kInt32: items.push_back(std::to_string(t.data<int32_t>()[i])); break;
      case DType::kInt16: items.push_back(std::to_string(t.data<int16_t>()[i])); break;
      case DType::kInt8: items.push_back(std::to_string(t.data<int8_t>()[i])); break;
      case DType::kUint8: items.push_back(std::to_string(t.data<uint8_t>()[i])); break;
      case DType::kBool: items.push_back(t.data<uint8_t>()[i] ? "true" : "false"); break;
      case DType::kUndefined:
      case DType::kSequence: return "";
    }
  }
  if (t.rank() == 0 && items.size() == 1) return items[0];
  return FormatList(items, [](const std::string& s) { return s; });
}

std::string TensorSummary(const Tensor& t) {
  return std::string(DTypeName(t.dtype())) + CompactShape(ShapeInfo::FromDims(t.dims()));
}

std::string AttributeString(const Attribute& a) {
  switch (a.kind) {
    case Attribute::Kind::kFloat: return FormatFloat(a.f);
    case Attribute::Kind::kInt: return std::to_string(a.i);
    case Attribute::Kind::kString: return Quote(a.s);
    case Attribute::Kind::kTensor: {
      std::string values = InlineConstantValues(a.t);
      return "tensor<" + TensorSummary(a.t) + ">" + (values.empty() ? "" : " " + values);
    }
    case Attribute::Kind::kGraph: return "<graph>";
    case Attribute::Kind::kFloats: return FormatList(a.floats, [](float f) { return FormatFloat(f); });
    case Attribute::Kind::kInts: return FormatList(a.ints, [](int64_t i) { return std::to_string(i); });
    case Attribute::Kind::kStrings: return FormatList(a.strings, Quote);
  }
  return "?";
}

std::string OpName(const Node& n) { return n.domain.empty() ? n.op_type : n.domain + "." + n.op_type; }

// Topological order when there is one, otherwise every live node in id
// order: a printer must work on the broken graphs people debug.
std::vector<NodeId> PrintOrder(const Graph& graph, bool* has_cycle) {
  auto order = graph.TopologicalOrder();
  *has_cycle = !order.ok();
  if (order.ok()) return std::move(order).value();
  std::vector<NodeId> all;
  for (size_t i = 0; i < graph.num_nodes(); ++i) {
    if (!graph.node(static_cast<NodeId>(i)).dead) all.push_back(static_cast<NodeId>(i));
  }
  return all;
}

bool IsValidId(const Graph& graph, ValueId id) { return id >= 0 && static_cast<size_t>(id) < graph.num_values(); }

// The listing of `graph` after its header line, each line starting with
// `indent`; sub-graphs follow their node, indented one level more.
void PrintBody(const Graph& graph, const std::string& indent, std::ostringstream& os) {
  for (ValueId id : graph.inputs())
    os << indent << "input  " << ValueName(graph, id) << ":" << TypeString(graph.value(id)) << "\n";
  for (ValueId id : graph.outer_scope_values())
    os << indent << "outer  " << ValueName(graph, id) << ":" << TypeString(graph.value(id)) << "\n";

  // Constants that something still refers to: a node input or a graph
  // output. Value ids follow the model's order, which keeps this stable.
  for (size_t i = 0; i < graph.num_values(); ++i) {
    const Value& v = graph.value(static_cast<ValueId>(i));
    if (!v.constant) continue;
    os << indent << "const  " << ValueName(graph, static_cast<ValueId>(i)) << ":" << TensorSummary(*v.constant);
    std::string values = InlineConstantValues(*v.constant);
    if (!values.empty()) os << " = " << values;
    os << "\n";
  }

  bool has_cycle = false;
  std::vector<NodeId> order = PrintOrder(graph, &has_cycle);
  if (has_cycle) os << indent << "# the graph has a cycle: nodes in model order\n";
  for (NodeId id : order) {
    const Node& n = graph.node(id);
    std::string outs;
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      if (i) outs += ", ";
      outs += ValueName(graph, n.outputs[i]);
      if (IsValidId(graph, n.outputs[i])) outs += ":" + TypeString(graph.value(n.outputs[i]));
    }
    os << indent << outs << (outs.empty() ? "" : " ") << "= " << OpName(n) << "(";
    // Implicit inputs (what the node's sub-graphs read from here) after a
    // bar: they are not ONNX inputs.
    const size_t explicit_inputs = n.implicit_inputs >= 0 && static_cast<size_t>(n.implicit_inputs) <= n.inputs.size()
                                       ? n.num_explicit_inputs()
                                       : n.inputs.size();
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      os << (i == explicit_inputs ? (i ? " | " : "| ") : i ? ", " : "") << ValueName(graph, n.inputs[i]);
    }
    os << ")";
    if (!n.attributes.empty()) {
      os << " {";
      bool first_attr = true;
      for (const auto& [name, attr] : n.attributes) {
        os << (first_attr ? "" : ", ") << name << "=" << AttributeString(attr);
        first_attr = false;
      }
      os << "}";
    }
    if (!n.name.empty()) os << "  # " << n.name;
    os << "\n";
    for (const auto& [attr_name, body] : Subgraphs(n)) {
      os << indent << "  " << attr_name << " " << Quote(body->name) << " {\n";
      PrintBody(*body, indent + "    ", os);
      os << indent << "  }\n";
    }
  }

  for (ValueId id : graph.outputs()) os << indent << "output " << ValueName(graph, id) << "\n";
}

}  // namespace

std::string PrintGraph(const Graph& graph) {
  std::ostringstream os;
  os << "graph " << Quote(graph.name) << " opsets {";
  bool first = true;
  for (const auto& [domain, version] : graph.opset_imports()) {
    os << (first ? "" : ", ") << Quote(domain) << ": " << version;
    first = false;
  }
  os << "}\n";
  PrintBody(graph, "", os);
  return os.str();
}

namespace {

// A DOT string literal: quotes and backslashes escaped, '\n' turned into
// DOT's centred line break.
std::string DotString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Light fills that keep black text readable; groups beyond the palette
// wrap around, which is enough to tell neighbouring regions apart.
constexpr std::array<const char*, 12> kPalette = {
    "#a6cee3", "#b2df8a", "#fb9a99", "#fdbf6f", "#cab2d6", "#ffff99",
    "#8dd3c7", "#bebada", "#80b1d3", "#fccde5", "#d9d9d9", "#ccebc5",
};

std::string DotNodeId(NodeId id) { return "n" + std::to_string(id); }
std::string DotValueId(ValueId id) { return "v" + std::to_string(id); }

std::string EdgeLabel(const Value& v) {
  // The name first: the shape alone does not say which tensor an edge is.
  std::string label = v.name;
  std::string type = TypeString(v);
  if (type != "?") label += (label.empty() ? "" : "\n") + type;
  return label;
}

// The colour group of `body`'s node `id` in options.body_color_groups, or -1.
int BodyColorGroup(const Graph& body, NodeId id, const DotOptions& options) {
  for (const auto& [graph, groups] : options.body_color_groups) {
    if (graph != &body) continue;
    return static_cast<size_t>(id) < groups.size() ? groups[static_cast<size_t>(id)] : -1;
  }
  return -1;
}

std::string GroupLabel(int group, const DotOptions& options) {
  return group >= 0 && static_cast<size_t>(group) < options.group_labels.size()
             ? options.group_labels[static_cast<size_t>(group)]
             : std::string();
}

// A sub-graph as a DOT cluster: its inputs and outer-scope values as
// ellipses, its nodes, the edges between them, and its own sub-graphs as
// nested clusters. Ids carry `prefix` so that no two bodies collide. Nodes
// of a colour group (options.body_color_groups) sit in a cluster per group.
void DotCluster(const Graph& body, const std::string& prefix, const std::string& label, const DotOptions& options,
                std::ostringstream& os, const std::string& indent) {
  os << indent << "subgraph " << DotString("cluster_" + prefix) << " {\n";
  os << indent << "  label=" << DotString(label) << "; style=dashed;\n";
  const auto value_id = [&](ValueId id) { return DotString(prefix + DotValueId(id)); };
  const auto node_id = [&](NodeId id) { return DotString(prefix + DotNodeId(id)); };
  for (ValueId id : body.inputs()) {
    os << indent << "  " << value_id(id)
       << " [shape=ellipse, fillcolor=\"#eeeeee\", label=" << DotString(body.value(id).name) << "];\n";
  }
  for (ValueId id : body.outer_scope_values()) {
    os << indent << "  " << value_id(id)
       << " [shape=ellipse, style=dashed, label=" << DotString("outer " + body.value(id).name) << "];\n";
  }
  // Groups in order of their first node, so that the text is stable.
  std::vector<int> groups;
  for (size_t i = 0; i < body.num_nodes(); ++i) {
    const int group = BodyColorGroup(body, static_cast<NodeId>(i), options);
    if (group >= 0 && !body.node(static_cast<NodeId>(i)).dead &&
        std::find(groups.begin(), groups.end(), group) == groups.end()) {
      groups.push_back(group);
    }
  }
  for (int group : groups) {
    const std::string group_label = GroupLabel(group, options);
    const char* colour = kPalette[static_cast<size_t>(group) % kPalette.size()];
    os << indent << "  subgraph " << DotString("cluster_" + prefix + "g" + std::to_string(group)) << " {\n";
    os << indent << "    label=" << DotString(group_label.empty() ? "group " + std::to_string(group) : group_label)
       << "; style=\"rounded,filled\"; fillcolor=\"#f8f8f8\";\n";
    for (size_t i = 0; i < body.num_nodes(); ++i) {
      const Node& n = body.node(static_cast<NodeId>(i));
      if (n.dead || BodyColorGroup(body, static_cast<NodeId>(i), options) != group) continue;
      os << indent << "    " << node_id(static_cast<NodeId>(i))
         << " [label=" << DotString(OpName(n) + (n.name.empty() ? "" : "\n" + n.name)) << ", fillcolor=\"" << colour
         << "\"];\n";
    }
    os << indent << "  }\n";
  }
  for (size_t i = 0; i < body.num_nodes(); ++i) {
    const Node& n = body.node(static_cast<NodeId>(i));
    if (n.dead) continue;
    if (BodyColorGroup(body, static_cast<NodeId>(i), options) < 0) {
      os << indent << "  " << node_id(static_cast<NodeId>(i))
         << " [label=" << DotString(OpName(n) + (n.name.empty() ? "" : "\n" + n.name)) << "];\n";
    }
    for (const auto& [attr_name, inner] : Subgraphs(n)) {
      DotCluster(*inner, prefix + DotNodeId(static_cast<NodeId>(i)) + "_" + attr_name + "_",
                 n.Label() + " " + attr_name, options, os, indent + "  ");
    }
  }
  for (size_t i = 0; i < body.num_nodes(); ++i) {
    const Node& n = body.node(static_cast<NodeId>(i));
    if (n.dead) continue;
    for (ValueId in : n.inputs) {
      if (!IsValidId(body, in)) continue;
      const Value& v = body.value(in);
      if (v.producer != kNoNode) {
        os << indent << "  " << node_id(v.producer);
      } else if (v.is_graph_input || v.is_outer_scope) {
        os << indent << "  " << value_id(in);
      } else {
        continue;
      }
      os << " -> " << node_id(static_cast<NodeId>(i)) << " [label=" << DotString(EdgeLabel(v)) << "];\n";
    }
  }
  os << indent << "}\n";
}

}  // namespace

std::string GraphToDot(const Graph& graph, const DotOptions& options) {
  std::ostringstream os;
  os << "digraph " << DotString(graph.name.empty() ? "kiln" : graph.name) << " {\n";
  os << "  rankdir=TB;\n";
  os << "  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=\"Helvetica\"];\n";
  os << "  edge [fontname=\"Helvetica\", fontsize=9];\n";

  // Sources: graph inputs, and constants when asked for.
  for (ValueId id : graph.inputs()) {
    const Value& v = graph.value(id);
    os << "  " << DotValueId(id)
       << " [shape=ellipse, fillcolor=\"#eeeeee\", label=" << DotString(v.name + "\n" + TypeString(v)) << "];\n";
  }
  auto draws_as_source = [&](ValueId id) {
    const Value& v = graph.value(id);
    return v.is_graph_input || (v.constant && options.include_constants);
  };
  if (options.include_constants) {
    for (size_t i = 0; i < graph.num_values(); ++i) {
      const Value& v = graph.value(static_cast<ValueId>(i));
      if (!v.constant) continue;
      std::string label = v.name + "\n" + TensorSummary(*v.constant);
      std::string values = InlineConstantValues(*v.constant);
      if (!values.empty()) label += "\n" + values;
      os << "  " << DotValueId(static_cast<ValueId>(i))
         << " [shape=note, style=filled, fillcolor=\"#fff8dc\", label=" << DotString(label) << "];\n";
    }
  }

  // Operator nodes, in id order so that the text is stable.
  for (size_t i = 0; i < graph.num_nodes(); ++i) {
    const NodeId id = static_cast<NodeId>(i);
    const Node& n = graph.node(id);
    if (n.dead) continue;
    std::string label = OpName(n);
    if (!n.name.empty()) label += "\n" + n.name;
    const int group = i < options.node_color_group.size() ? options.node_color_group[i] : -1;
    const std::string group_label = group >= 0 && static_cast<size_t>(group) < options.group_labels.size()
                                        ? options.group_labels[static_cast<size_t>(group)]
                                        : std::string();
    if (!group_label.empty()) label += "\n[" + group_label + "]";
    os << "  " << DotNodeId(id) << " [label=" << DotString(label);
    if (group >= 0) {
      os << ", fillcolor=\"" << kPalette[static_cast<size_t>(group) % kPalette.size()]
         << "\", tooltip=" << DotString(group_label.empty() ? "group " + std::to_string(group) : group_label);
    }
    os << "];\n";
    // If/Loop/Scan bodies as clusters beside their node.
    for (const auto& [attr_name, body] : Subgraphs(n)) {
      DotCluster(*body, DotNodeId(id) + "_" + attr_name + "_", n.Label() + " " + attr_name, options, os, "  ");
    }
  }

  // Edges into each node from the producer of each input (or from the
  // input/constant box). One edge per use, so a node reading a value twice
  // gets two edges, as it gets two operands.
  for (size_t i = 0; i < graph.num_nodes(); ++i) {
    const NodeId id = static_cast<NodeId>(i);
    const Node& n = graph.node(id);
    if (n.dead) continue;
    for (ValueId in : n.inputs) {
      if (!IsValidId(graph, in)) continue;
      const Value& v = graph.value(in);
      std::string from;
      if (v.producer != kNoNode) {
        from = DotNodeId(v.producer);
      } else if (draws_as_source(in)) {
        from = DotValueId(in);
      } else {
        continue;  // an undefined value (Validate reports it) or a hidden constant
      }
      os << "  " << from << " -> " << DotNodeId(id) << " [label=" << DotString(EdgeLabel(v)) << "];\n";
    }
  }

  // Graph outputs as sinks, so that it is visible which results leave.
  for (size_t i = 0; i < graph.outputs().size(); ++i) {
    const ValueId id = graph.outputs()[i];
    const Value& v = graph.value(id);
    const std::string sink = "out" + std::to_string(i);
    os << "  " << sink << " [shape=ellipse, fillcolor=\"#eeeeee\", label=" << DotString(v.name) << "];\n";
    std::string from;
    if (v.producer != kNoNode) {
      from = DotNodeId(v.producer);
    } else if (draws_as_source(id)) {
      from = DotValueId(id);
    } else {
      continue;
    }
    os << "  " << from << " -> " << sink << " [label=" << DotString(TypeString(v)) << "];\n";
  }
  os << "}\n";
  return os.str();
}

}  // namespace kiln::graph
