// Control-flow ops: If, Loop and Scan, whose attributes hold sub-graphs.
//
// A control-flow op cannot be a plain kernel: kernels/ knows nothing of the
// interpreter, and running a body means running a graph. So each one is a
// ControlFlowKernel built here, in runtime/, holding one nested Interpreter
// per body (its own kernels and its own memory plan). The enclosing
// interpreter calls Run instead of Compute, handing down its run's hooks so
// that a body obeys the same deadline, cancellation and allocation hook as
// the run that started it.
//
// The node's inputs are its ONNX inputs followed by its implicit inputs, the
// outer-scope values its bodies read (graph::Node::implicit_inputs); each
// body receives its share after its formal inputs.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/body_partitioner.h"
#include "graph/graph.h"
#include "kernels/kernel.h"
#include "kiln/status.h"

namespace kiln::runtime {

struct RunHooks;
class SubgraphBody;

class ControlFlowKernel : public kernels::OpKernel {
 public:
  // A body and the attribute that holds it ("then_branch", "body").
  struct NamedBody {
    const char* attribute;
    const SubgraphBody* body;
  };

  // Bodies need the run's hooks; the interpreter never calls this.
  Status Compute(kernels::KernelContext& ctx) const final;
  // Runs the op. Thread-safe: per-run state (body frames, buffers) comes
  // from a pool the kernel owns, so concurrent runs never share it and a
  // warm kernel allocates nothing for it.
  virtual Status Run(kernels::KernelContext& ctx, const RunHooks& hooks) const = 0;
  // The bodies, for walks over nested interpreters (per-node profiles).
  virtual std::vector<NamedBody> bodies() const = 0;
};

// If, Loop, Scan or SequenceMap in the default domain.
bool IsControlFlowOp(const graph::Node& node);

// Builds the kernel for a control-flow `node`, with interpreters for its
// bodies from `registry`; a body listed in `bodies` runs its regions as
// units the JIT tier can serve. Fails on an unsupported opset or attribute,
// or on bodies whose signature does not fit the op (counts, loop-carried
// dtypes).
StatusOr<std::unique_ptr<kernels::OpKernel>> CreateControlFlowKernel(
    const graph::Node& node, const kernels::KernelRegistry& registry,
    const std::vector<graph::BodyRegions>* bodies = nullptr);

// Adds to `unsupported` ("Op (opset N) in <path>" -> count) every op inside
// `node`'s bodies, at any depth, that has no kernel; `path` names `node`
// ("Loop 'outer'"), and each body adds "/<attribute>".
void CountUnsupportedOpsInBodies(const graph::Node& node, const kernels::KernelRegistry& registry,
                                 const std::string& path, std::map<std::string, int>& unsupported);

}  // namespace kiln::runtime
