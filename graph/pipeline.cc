#include "graph/pipeline.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "graph/channels_last.h"
#include "graph/dead_code.h"
#include "graph/fold_batch_norm.h"
#include "graph/fuse_epilogues.h"
#include "graph/fuse_gelu.h"
#include "graph/fuse_layer_norm.h"
#include "graph/log.h"
#include "graph/printer.h"
#include "graph/shape_propagation.h"
#include "graph/subgraph_passes.h"

namespace kiln::graph {
namespace {

// Folding and shape propagation feed each other (see below); real models
// settle in two or three rounds. The bound only guards against a pass that
// keeps reporting a change (each productive round removes at least one
// node, so it cannot loop forever anyway, but it could take long).
constexpr int kMaxFoldRounds = 8;

// Writes PrintGraph output after each pass when a dump folder is set.
class GraphDumper {
 public:
  // An empty `dir` dumps nothing.
  explicit GraphDumper(std::string dir) : dir_(std::move(dir)) {}

  Status Dump(const Graph& graph, const std::string& pass_name) {
    if (dir_.empty()) return Status::Ok();
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) return IoError("cannot create graph dump folder '", dir_, "': ", ec.message());
    char prefix[16];
    std::snprintf(prefix, sizeof(prefix), "%02d_", next_index_++);
    const std::filesystem::path path = std::filesystem::path(dir_) / (prefix + pass_name + ".txt");
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << PrintGraph(graph);
    out.close();
    if (!out) return IoError("cannot write graph dump '", path.string(), "'");
    return Status::Ok();
  }

 private:
  std::string dir_;
  int next_index_ = 0;
};

std::string DumpDir(const PipelineOptions& options) {
  if (!options.dump_dir.empty()) return options.dump_dir;
  const char* env = std::getenv("KILN_DUMP_GRAPH");
  return env ? std::string(env) : std::string();
}

Status RunPasses(Graph& graph, const PipelineOptions& options, GraphDumper& dumper);

// Runs the pipeline inside every sub-graph of `graph`'s nodes (and, through
// the recursion, theirs), without dumps: the enclosing graph's dump prints
// its bodies. Channels-last stays off in bodies: it decides per island of
// convolutions, and an island does not cross a body's boundary.
Status RunBodyPipelines(Graph& graph, const PipelineOptions& options) {
  PipelineOptions body_options = options;
  body_options.channels_last = false;
  GraphDumper no_dump("");
  for (size_t i = 0; i < graph.num_nodes(); ++i) {
    Node& node = graph.node(static_cast<NodeId>(i));
    if (node.dead) continue;
    for (const auto& [name, body] : MutableSubgraphs(node)) {
      Status s = RunPasses(*body, body_options, no_dump);
      if (!s.ok()) return s.WithContext(node.Describe() + " attribute '" + name + "'");
    }
  }
  return Status::Ok();
}

}  // namespace

Status RunGraphPipeline(Graph& graph, const PipelineOptions& options) {
  GraphDumper dumper(DumpDir(options));
  KILN_RETURN_IF_ERROR(dumper.Dump(graph, "loaded"));
  return RunPasses(graph, options, dumper);
}

namespace {

Status RunPasses(Graph& graph, const PipelineOptions& options, GraphDumper& dumper) {
  // Every pass trusts the producer/user links and needs a topological
  // order; check them once, up front, so a malformed model fails here with
  // a clear message instead of deep inside a pass.
  KILN_RETURN_IF_ERROR(graph.Validate());

  // 1. Dead code first: nodes that cannot reach an output should not be
  //    evaluated by folding (wasted load time, and an op kiln cannot run
  //    there would only produce noise).
  KILN_RETURN_IF_ERROR(EliminateDeadNodes(graph).status());
  KILN_RETURN_IF_ERROR(dumper.Dump(graph, "eliminate_dead_nodes"));

  // 2. Shape propagation and folding, in rounds to a fixed point; they feed
  //    each other both ways:
  //    - propagation before folding: a Shape/Size node folds only once its
  //      input's shape is concrete, and ONNX's inference (run by the
  //      loader) misses shapes behind computed Reshape/Expand operands;
  //    - propagation after folding: folding is what turns those operands
  //      into constants that propagation can read, which may make more
  //      shapes concrete and so more Shape nodes foldable.
  //    One folding sweep folds whole chains (it walks in topological
  //    order), so a round whose folding changes nothing leaves the graph as
  //    the round's propagation saw it: that is the fixed point.
  bool folded = true;
  for (int round = 0; round < kMaxFoldRounds && folded; ++round) {
    KILN_RETURN_IF_ERROR(PropagateShapes(graph));
    KILN_RETURN_IF_ERROR(dumper.Dump(graph, "propagate_shapes"));
    KILN_ASSIGN_OR_RETURN(folded, FoldConstants(graph, options.evaluator));
    KILN_RETURN_IF_ERROR(dumper.Dump(graph, "fold_constants"));
    //    An If whose condition folding made constant becomes its branch,
    //    whose nodes then take part in the next round.
    KILN_ASSIGN_OR_RETURN(const bool inlined, InlineConstantIfs(graph));
    if (inlined) KILN_RETURN_IF_ERROR(dumper.Dump(graph, "inline_constant_ifs"));
    folded = folded || inlined;
  }
  if (folded) {
    // Out of rounds with the last folding still changing things: give the
    // final graph its shapes all the same.
    KILN_RETURN_IF_ERROR(PropagateShapes(graph));
    KILN_RETURN_IF_ERROR(dumper.Dump(graph, "propagate_shapes"));
  }

  // 2b. Bodies of the If/Loop/Scan nodes left, once this graph's constants
  //     are final: constants they read from here become theirs, then each
  //     body goes through this same pipeline.
  KILN_RETURN_IF_ERROR(PropagateConstantsIntoBodies(graph).status());
  KILN_RETURN_IF_ERROR(RunBodyPipelines(graph, options));

  // Steps 3 and 5 replace op patterns with fused kernels; without
  // options.fuse_kernels (GraphOptimization::kBasic) they are skipped, so
  // that every node stays one of the model's ops.
  if (options.fuse_kernels) {
    // 3. LayerNorm fusion, after constant folding: the epsilon and the Pow
    //    exponent are often Constant nodes, and the ReduceMean axes (opset
    //    18) an input, which folding turns into the constants its guards
    //    read; it also needs x's last dim, which propagation has settled.
    KILN_RETURN_IF_ERROR(FuseLayerNorm(graph).status());
    KILN_RETURN_IF_ERROR(dumper.Dump(graph, "fuse_layer_norm"));

    //    GELU fusion for the same reasons (its constants are often Constant
    //    nodes), and before epilogue fusion, which can then fold the one Gelu
    //    into a preceding MatMul or Conv as a post-op.
    KILN_RETURN_IF_ERROR(FuseGelu(graph).status());
    KILN_RETURN_IF_ERROR(dumper.Dump(graph, "fuse_gelu"));
  }

  // 4. Batch-norm folding, after constant folding (exporters may compute
  //    the statistics or the Conv weights with nodes that only folding
  //    turns into constants) and before epilogue fusion: removing the BN
  //    makes Conv -> BN -> Relu a Conv -> Relu that epilogue fusion then
  //    merges into one FusedConv; the other way round, the BN would sit
  //    between the Conv and the activation and block that fusion.
  KILN_RETURN_IF_ERROR(FoldBatchNormIntoConv(graph).status());
  KILN_RETURN_IF_ERROR(dumper.Dump(graph, "fold_batch_norm"));

  if (options.fuse_kernels) {
    // 5. Epilogue fusion, after folding: its guards need constant biases and
    //    Clip bounds, which folding is what produces (exporters often compute
    //    them: Unsqueeze/Reshape of an initializer, Constant nodes), and the
    //    dtypes and shapes of the values it removes, which propagation has
    //    just settled. Nothing after it needs the unfused ops.
    KILN_RETURN_IF_ERROR(FuseEpilogues(graph).status());
    KILN_RETURN_IF_ERROR(dumper.Dump(graph, "fuse_epilogues"));

    //    Channels-last islands, after epilogue fusion: a residual Add that
    //    became part of a FusedConv is then one layout input of it rather
    //    than an island member of its own, and the activations it absorbed
    //    need no rewriting. Last of the rewrites, since the passes above
    //    match NCHW patterns (per-channel biases of shape [C, 1, 1]).
    if (options.channels_last) {
      KILN_RETURN_IF_ERROR(ConvertToChannelsLast(graph).status());
      KILN_RETURN_IF_ERROR(dumper.Dump(graph, "channels_last"));
    }
  }

  // 6. Dead code again, after folding and fusion: folding leaves behind the
  //    initializers it consumed and the Shape-chain inputs it no longer
  //    needs, the fusions the constants they absorbed (LayerNorm's epsilon
  //    and exponent, biases merged into new ones), batch-norm folding the
  //    original weights; dropping them releases their memory before the
  //    session plans anything.
  KILN_RETURN_IF_ERROR(EliminateDeadNodes(graph).status());
  KILN_RETURN_IF_ERROR(dumper.Dump(graph, "eliminate_dead_nodes"));

  // The passes keep the graph valid by construction; checking again costs
  // little and turns a pass bug into an error rather than a crash later.
  Status valid = graph.Validate();
  if (!valid.ok()) return Internal("graph pipeline produced an invalid graph: ", valid.message());
  Log().debug("graph pipeline: {} live nodes", graph.num_live_nodes());
  return Status::Ok();
}

}  // namespace

}  // namespace kiln::graph
