// `kiln info` and `kiln dot`: what a model contains, as text or as a
// Graphviz graph. Both read the graph kiln runs (after its load-time
// optimisations) through the internal model view.
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "graph/body_partitioner.h"
#include "graph/graph.h"
#include "graph/partitioner.h"
#include "graph/printer.h"
#include "kernels/kernel.h"
#include "runtime/control_flow.h"
#include "runtime/model_internal.h"
#include "tools/input_shapes.h"
#include "tools/kiln_cli.h"
#include "tools/user_path.h"

namespace kiln::cli {
namespace {

// Loads the one MODEL argument, or reports why not. Returns null after
// reporting; `exit_code` then holds the code to return.
// `usage` is the command's help text.
std::shared_ptr<const Model> LoadSingleModel(const std::vector<std::string>& args, const char* command,
                                             const char* usage, const std::set<std::string>& switches,
                                             ParsedArgs& parsed_out, std::string& path, int& exit_code) {
  auto parsed = ParseArgs(args, {"graph-opt", "channels-last"}, switches);
  if (!parsed.ok()) {
    exit_code = ReportUsageError(parsed.status().message(), usage);
    return nullptr;
  }
  if (parsed->help) {
    std::fputs(usage, stdout);
    exit_code = 0;
    return nullptr;
  }
  if (parsed->positional.size() != 1) {
    exit_code = ReportUsageError(std::string(command) + ": expected one MODEL", usage);
    return nullptr;
  }
  parsed_out = *parsed;
  path = ResolveUserPath(parsed->positional[0]);
  auto load_options = ParseLoadOptions(*parsed);
  if (!load_options.ok()) {
    exit_code = ReportUsageError(load_options.status().message(), usage);
    return nullptr;
  }
  auto model = LoadModel(path, *load_options);
  if (!model.ok()) {
    exit_code = ReportError(model.status());
    return nullptr;
  }
  return *model;
}

// The text of a model-supplied string on one line: doc strings often span
// several, and a raw newline would break the "key: value" layout.
std::string OneLine(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '\n' ? std::string(" / ") : c == '\r' ? std::string() : std::string(1, c);
  return out;
}

// What the model file says about itself; fields it leaves empty are left
// out.
void PrintMetadata(const ModelMetadata& m) {
  if (!m.producer_name.empty() || !m.producer_version.empty()) {
    std::printf("producer: %s%s%s\n", OneLine(m.producer_name).c_str(), m.producer_version.empty() ? "" : " ",
                OneLine(m.producer_version).c_str());
  }
  if (!m.domain.empty()) std::printf("domain: %s\n", OneLine(m.domain).c_str());
  if (m.model_version != 0) std::printf("model version: %lld\n", static_cast<long long>(m.model_version));
  if (!m.doc_string.empty()) std::printf("doc: %s\n", OneLine(m.doc_string).c_str());
  if (!m.metadata_props.empty()) {
    std::printf("metadata_props:\n");
    for (const auto& [key, value] : m.metadata_props)
      std::printf("  %s: %s\n", OneLine(key).c_str(), OneLine(value).c_str());
  }
}

// "float32", or ONNX's spelling for a sequence or optional:
// "seq(float32)", "optional(seq(float32))".
std::string TypeName(const TensorInfo& info) {
  std::string name = DTypeName(info.dtype);
  if (info.is_sequence) name = "seq(" + name + ")";
  if (info.is_optional) name = "optional(" + name + ")";
  return name;
}

void PrintTensorInfos(const char* title, const std::vector<TensorInfo>& infos) {
  std::printf("%s:\n", title);
  for (size_t i = 0; i < infos.size(); ++i) {
    if (infos[i].is_sequence) {  // its elements have no one shape
      std::printf("  %zu %-24s %s\n", i, infos[i].name.c_str(), TypeName(infos[i]).c_str());
      continue;
    }
    std::printf("  %zu %-24s %-8s %s\n", i, infos[i].name.c_str(), TypeName(infos[i]).c_str(),
                FormatShape(infos[i]).c_str());
  }
}

}  // namespace

int InfoCommand(const std::vector<std::string>& args) {
  int exit_code = 0;
  std::string path;
  ParsedArgs parsed;
  std::shared_ptr<const Model> model =
      LoadSingleModel(args, "info", InfoUsage(), {"graph", "regions"}, parsed, path, exit_code);
  if (model == nullptr) return exit_code;
  const graph::Graph& g = ModelGraph(*model);

  std::printf("model: %s\n", path.c_str());
  if (!g.name.empty()) std::printf("graph: %s\n", g.name.c_str());
  PrintMetadata(model->metadata());
  std::printf("opset: %d", model->opset());
  for (const auto& [domain, version] : g.opset_imports()) {
    if (!domain.empty()) std::printf(", %s %d", domain.c_str(), version);
  }
  std::printf("\n");
  PrintTensorInfos("inputs", model->inputs());
  PrintTensorInfos("outputs", model->outputs());

  int64_t constants = 0;
  int64_t constant_elements = 0;
  int64_t constant_bytes = 0;
  for (size_t v = 0; v < g.num_values(); ++v) {
    const graph::Value& value = g.value(static_cast<graph::ValueId>(v));
    if (!value.constant) continue;
    ++constants;
    constant_elements += value.constant->num_elements();
    constant_bytes += static_cast<int64_t>(value.constant->byte_size());
  }
  std::printf("constants: %lld (%lld elements, %lld bytes)\n", static_cast<long long>(constants),
              static_cast<long long>(constant_elements), static_cast<long long>(constant_bytes));

  // Histogram keyed by "domain:op" so custom-domain ops stay distinct; the
  // map keeps the output order deterministic.
  // Nodes inside If/Loop/Scan bodies count too; an unsupported one is
  // named by its path ("outer_loop/body/inner_node").
  std::map<std::string, int64_t> histogram;
  std::map<std::string, std::vector<std::string>> unsupported;  // op -> node paths
  const kernels::KernelRegistry& registry = kernels::DefaultKernelRegistry();
  int64_t body_nodes = 0;
  const auto count_ops = [&](const auto& self, const graph::Graph& graph, const std::string& prefix) -> void {
    for (size_t n = 0; n < graph.num_nodes(); ++n) {
      const graph::Node& node = graph.node(static_cast<graph::NodeId>(n));
      if (node.dead) continue;
      if (!prefix.empty()) ++body_nodes;
      std::string key = node.domain.empty() ? node.op_type : node.domain + ":" + node.op_type;
      ++histogram[key];
      const std::string path = prefix + (node.name.empty() ? node.op_type : node.name);
      if (!runtime::IsControlFlowOp(node) && !registry.Supports(node.op_type, node.domain, node.opset)) {
        unsupported[key + " (opset " + std::to_string(node.opset) + ")"].push_back(path);
      }
      for (const auto& [attr, body] : graph::Subgraphs(node)) self(self, *body, path + "/" + attr + "/");
    }
  };
  count_ops(count_ops, g, "");
  std::vector<std::pair<std::string, int64_t>> ops(histogram.begin(), histogram.end());
  std::stable_sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (body_nodes > 0) {
    std::printf("nodes: %zu (and %lld inside If/Loop/Scan bodies)\n", g.num_live_nodes(),
                static_cast<long long>(body_nodes));
  } else {
    std::printf("nodes: %zu\n", g.num_live_nodes());
  }
  std::printf("ops (%zu kinds):\n", ops.size());
  for (const auto& [op, count] : ops) std::printf("  %-28s %lld\n", op.c_str(), static_cast<long long>(count));
  if (unsupported.empty()) {
    std::printf("unsupported ops: none\n");
  } else {
    std::printf("unsupported ops:\n");
    for (const auto& [op, nodes] : unsupported) {
      std::printf("  %s: %zu node%s (%s%s)\n", op.c_str(), nodes.size(), nodes.size() == 1 ? "" : "s",
                  nodes.front().c_str(), nodes.size() > 1 ? ", ..." : "");
    }
  }
  if (parsed.switches.count("regions")) {
    auto regions = graph::PartitionGraph(g);
    if (!regions.ok()) return ReportError(path, regions.status());
    // Regions inside If branches and Loop/Scan bodies, numbered after the
    // top level's as a session numbers them.
    auto bodies = graph::PartitionBodies(g, {}, static_cast<int>(regions->size()));
    if (!bodies.ok()) return ReportError(path, bodies.status());
    size_t total = regions->size();
    for (const graph::BodyRegions& b : *bodies) total += b.regions.size();
    std::printf("\nJIT regions: %zu\n", total);
    auto print_region = [](const graph::Graph& in, const graph::Region& r) {
      std::printf("  region %d (%s): %s\n", r.id, graph::RegionKindName(r.kind), r.reason.c_str());
      if (!r.path.empty()) std::printf("    in: %s\n", r.path.c_str());
      std::printf("    nodes:");
      for (graph::NodeId n : r.nodes) {
        const graph::Node& node = in.node(n);
        std::printf(" %s%s%s", node.op_type.c_str(), node.name.empty() ? "" : ":", node.name.c_str());
      }
      std::printf("\n    inputs:");
      for (graph::ValueId v : r.inputs) std::printf(" %s", in.value(v).name.c_str());
      std::printf("\n    outputs:");
      for (graph::ValueId v : r.outputs) std::printf(" %s", in.value(v).name.c_str());
      std::printf("\n");
    };
    for (const graph::Region& r : *regions) print_region(g, r);
    for (const graph::BodyRegions& b : *bodies) {
      for (const graph::Region& r : b.regions) print_region(*b.body, r);
    }
  }
  if (parsed.switches.count("graph")) {
    std::printf("\n%s", graph::PrintGraph(g).c_str());
  }
  return 0;
}

int DotCommand(const std::vector<std::string>& args) {
  int exit_code = 0;
  std::string path;
  ParsedArgs parsed;
  std::shared_ptr<const Model> model =
      LoadSingleModel(args, "dot", DotUsage(), {"no-constants", "regions"}, parsed, path, exit_code);
  if (model == nullptr) return exit_code;
  graph::DotOptions options;
  options.include_constants = parsed.switches.count("no-constants") == 0;
  if (parsed.switches.count("regions")) {
    // Colour each JIT region's nodes with the region's id.
    auto regions = graph::PartitionGraph(ModelGraph(*model));
    if (!regions.ok()) return ReportError(path, regions.status());
    options.node_color_group.assign(ModelGraph(*model).num_nodes(), -1);
    const auto label = [&options](const graph::Region& r) {
      options.group_labels.resize(std::max(options.group_labels.size(), static_cast<size_t>(r.id) + 1));
      options.group_labels[static_cast<size_t>(r.id)] =
          "region " + std::to_string(r.id) + ": " + graph::RegionKindName(r.kind);
    };
    for (const graph::Region& r : *regions) {
      for (graph::NodeId n : r.nodes) options.node_color_group[static_cast<size_t>(n)] = r.id;
      label(r);
    }
    // Regions inside bodies, numbered after the top level's as a session
    // numbers them: clusters inside their body's cluster.
    auto bodies = graph::PartitionBodies(ModelGraph(*model), {}, static_cast<int>(regions->size()));
    if (!bodies.ok()) return ReportError(path, bodies.status());
    for (const graph::BodyRegions& b : *bodies) {
      std::vector<int> groups(b.body->num_nodes(), -1);
      for (const graph::Region& r : b.regions) {
        for (graph::NodeId n : r.nodes) groups[static_cast<size_t>(n)] = r.id;
        label(r);
      }
      options.body_color_groups.emplace_back(b.body, std::move(groups));
    }
  }
  std::string dot = graph::GraphToDot(ModelGraph(*model), options);
  std::fwrite(dot.data(), 1, dot.size(), stdout);
  return 0;
}

}  // namespace kiln::cli
