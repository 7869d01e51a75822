#include "graph/body_partitioner.h"

namespace kiln::graph {
namespace {

Status PartitionBodiesInto(const Graph& graph, const PartitionOptions& options, const std::string& path, int& next_id,
                           std::vector<BodyRegions>& out) {
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  for (NodeId id : order) {
    const Node& node = graph.node(id);
    if (!node.has_subgraphs()) continue;
    const std::string node_path = (path.empty() ? "" : path + "/") + node.Label();
    for (const auto& [attr_name, body] : Subgraphs(node)) {
      const std::string body_path = node_path + "/" + attr_name;
      auto regions = PartitionGraph(*body, options);
      if (!regions.ok()) return regions.status().WithContext(body_path);
      if (!regions->empty()) {
        BodyRegions entry;
        entry.body = body;
        entry.path = body_path;
        entry.regions = std::move(regions).value();
        for (Region& r : entry.regions) {
          r.id = next_id++;
          r.path = body_path;
        }
        out.push_back(std::move(entry));
      }
      KILN_RETURN_IF_ERROR(PartitionBodiesInto(*body, options, body_path, next_id, out));
    }
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::vector<BodyRegions>> PartitionBodies(const Graph& graph, const PartitionOptions& options, int first_id,
                                                   const std::string& path) {
  std::vector<BodyRegions> bodies;
  int next_id = first_id;
  KILN_RETURN_IF_ERROR(PartitionBodiesInto(graph, options, path, next_id, bodies));
  return bodies;
}

const BodyRegions* FindBodyRegions(const std::vector<BodyRegions>& bodies, const Graph& body) {
  for (const BodyRegions& b : bodies) {
    if (b.body == &body) return &b;
  }
  return nullptr;
}

}  // namespace kiln::graph
