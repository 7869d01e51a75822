// If: runs then_branch or else_branch on a boolean scalar. Each branch has
// its own interpreter and memory plan. A branch output a kernel of the
// branch made (pooled memory of its own) becomes the node's output as it
// is; one the branch passes through (an outer value, a constant, a view)
// is copied, since it does not belong to the branch.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kiln/sequence.h"
#include "runtime/control_flow.h"
#include "runtime/control_flow_ops.h"
#include "runtime/subgraph_body.h"

namespace kiln::runtime {
namespace {

// What one run of a branch needs, reused by later runs.
struct BranchState {
  std::unique_ptr<ExecutionFrame> frame;
  std::vector<const Tensor*> inputs;
  std::vector<Tensor> outputs;
};

class IfKernel final : public ControlFlowKernel {
 public:
  IfKernel(std::unique_ptr<SubgraphBody> then_branch, std::unique_ptr<SubgraphBody> else_branch, std::string what)
      : then_(std::move(then_branch)), else_(std::move(else_branch)), what_(std::move(what)) {
    const SubgraphBody* branches[2] = {then_.get(), else_.get()};
    for (int b = 0; b < 2; ++b) {
      const graph::Graph& g = branches[b]->graph();
      for (graph::ValueId id : g.outputs()) {
        const graph::Value& v = g.value(id);
        branch_owns_[b].push_back(!v.constant && !v.is_graph_input && !v.is_outer_scope);
      }
    }
  }

  std::vector<NamedBody> bodies() const override {
    return {{"then_branch", then_.get()}, {"else_branch", else_.get()}};
  }

  Status Run(kernels::KernelContext& ctx, const RunHooks& hooks) const override {
    const Tensor* cond = ctx.input(0);
    if (cond == nullptr || cond->dtype() != DType::kBool || cond->num_elements() != 1) {
      return InvalidArgument(what_, ": the condition must be one bool, got ",
                             cond == nullptr ? "nothing" : DTypeName(cond->dtype()),
                             cond == nullptr ? "" : " " + DimsToString(cond->dims()));
    }
    const bool take_then = *cond->data<bool>();
    const SubgraphBody& branch = take_then ? *then_ : *else_;
    const StatePool<BranchState>& pool = take_then ? then_states_ : else_states_;
    std::unique_ptr<BranchState> state = pool.Acquire([&] {
      auto s = std::make_unique<BranchState>();
      s->frame = branch.NewFrame();
      return s;
    });
    state->inputs.clear();
    branch.AppendCaptures(ctx, state->inputs);
    Status status = branch.Run(*state->frame, state->inputs, state->outputs, ctx.parallel(), BodyRunHooks(hooks));
    if (status.ok() && state->outputs.size() != static_cast<size_t>(ctx.num_outputs())) {
      status = InvalidModel(branch.what(), " returns ", state->outputs.size(), " values for ", ctx.num_outputs(),
                            " outputs");
    }
    for (size_t o = 0; status.ok() && o < state->outputs.size(); ++o) {
      const Tensor& value = state->outputs[o];
      if (value.dtype() == DType::kSequence) {  // a sequence or None: shares its elements
        auto copy = CopySequence(value);
        status = copy.ok() ? ctx.SetOutput(static_cast<int>(o), std::move(copy).value()) : copy.status();
        continue;
      }
      if (branch_owns_[take_then ? 0 : 1][o] && !value.is_view()) {
        status = ctx.SetOutput(static_cast<int>(o), std::move(state->outputs[o]));
        continue;
      }
      auto out = ctx.Output(static_cast<int>(o), value.dtype(), value.dims());
      if (!out.ok()) {
        status = out.status();
        break;
      }
      if (value.byte_size() > 0) std::memcpy((*out)->raw_data(), value.raw_data(), value.byte_size());
    }
    state->outputs.clear();
    pool.Release(std::move(state));
    return status;
  }

 private:
  std::unique_ptr<SubgraphBody> then_;
  std::unique_ptr<SubgraphBody> else_;
  std::string what_;
  // Per branch (then, else) and output: whether a node of the branch
  // produces it, so that the value is the branch's own to hand over.
  std::vector<bool> branch_owns_[2];
  StatePool<BranchState> then_states_;
  StatePool<BranchState> else_states_;
};

}  // namespace

StatusOr<std::unique_ptr<kernels::OpKernel>> CreateIfKernel(const graph::Node& node,
                                                            const kernels::KernelRegistry& registry,
                                                            const std::vector<graph::BodyRegions>* bodies) {
  if (node.num_explicit_inputs() != 1) return InvalidModel(node.Describe(), ": If takes one input, the condition");
  std::unique_ptr<SubgraphBody> branches[2];
  const char* names[2] = {"then_branch", "else_branch"};
  for (int b = 0; b < 2; ++b) {
    KILN_ASSIGN_OR_RETURN(BodyRef ref, FindBody(node, names[b]));
    KILN_ASSIGN_OR_RETURN(branches[b], SubgraphBody::Create(*ref.graph, registry, ref.capture_offset,
                                                            node.Describe() + " " + names[b], bodies));
    if (branches[b]->num_inputs() != 0) {
      return InvalidModel(node.Describe(), ": ", names[b], " declares ", branches[b]->num_inputs(),
                          " inputs; If branches take none");
    }
    if (branches[b]->num_outputs() != node.outputs.size()) {
      return InvalidModel(node.Describe(), ": ", names[b], " returns ", branches[b]->num_outputs(),
                          " values but the node has ", node.outputs.size(), " outputs");
    }
  }
  return std::unique_ptr<kernels::OpKernel>(
      new IfKernel(std::move(branches[0]), std::move(branches[1]), node.Describe()));
}

}  // namespace kiln::runtime
