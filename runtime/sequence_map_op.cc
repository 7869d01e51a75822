// SequenceMap (opset 17): runs its body once per element of its input
// sequence. Each input that is a sequence gives the body its i-th element
// (all such sequences must have the same length), each tensor input is
// passed whole every time, and output j is the sequence of the body's j-th
// outputs. The elements are copied out of the body's frame, whose memory
// the next iteration reuses.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kiln/sequence.h"
#include "runtime/control_flow.h"
#include "runtime/control_flow_ops.h"
#include "runtime/subgraph_body.h"

namespace kiln::runtime {
namespace {

struct MapState {
  std::unique_ptr<ExecutionFrame> frame;
  std::vector<const Tensor*> inputs;
  std::vector<Tensor> outputs;
};

class SequenceMapKernel final : public ControlFlowKernel {
 public:
  SequenceMapKernel(std::unique_ptr<SubgraphBody> body, std::string what)
      : body_(std::move(body)), what_(std::move(what)) {}

  std::vector<NamedBody> bodies() const override { return {{"body", body_.get()}}; }

  Status Run(kernels::KernelContext& ctx, const RunHooks& hooks) const override {
    std::unique_ptr<MapState> state = states_.Acquire([this] {
      auto s = std::make_unique<MapState>();
      s->frame = body_->NewFrame();
      return s;
    });
    Status status = Map(ctx, hooks, *state);
    state->outputs.clear();
    states_.Release(std::move(state));
    return status;
  }

 private:
  Status Map(kernels::KernelContext& ctx, const RunHooks& hooks, MapState& state) const {
    // Validate every input before the first iteration.
    const size_t n = body_->num_inputs();
    std::vector<const std::vector<Tensor>*> sequences(n, nullptr);
    int64_t length = -1;
    for (size_t k = 0; k < n; ++k) {
      const Tensor* t = ctx.input(static_cast<int>(k));
      if (t == nullptr || !t->defined() || IsNoneOptional(*t)) {
        return InvalidArgument(what_, ": input ", k, " has no value");
      }
      sequences[k] = SequenceElements(*t);
      if (k == 0 && sequences[k] == nullptr) {
        return InvalidArgument(what_, ": input 0 must be a sequence, got a ", DTypeName(t->dtype()), " tensor");
      }
      if (sequences[k] == nullptr) continue;
      const auto size = static_cast<int64_t>(sequences[k]->size());
      if (length >= 0 && size != length) {
        return InvalidArgument(what_, ": input ", k, " is a sequence of ", size, " tensors but input 0 has ", length);
      }
      length = size;
    }
    const size_t m = body_->num_outputs();
    std::vector<std::vector<Tensor>> collected(m);
    const RunHooks body_hooks = BodyRunHooks(hooks);
    for (int64_t i = 0; i < length; ++i) {
      KILN_RETURN_IF_ERROR(CheckIterationLimits(hooks, what_, i));
      state.inputs.clear();
      for (size_t k = 0; k < n; ++k) {
        state.inputs.push_back(sequences[k] != nullptr ? &(*sequences[k])[static_cast<size_t>(i)]
                                                       : ctx.input(static_cast<int>(k)));
      }
      body_->AppendCaptures(ctx, state.inputs);
      Status s = body_->Run(*state.frame, state.inputs, state.outputs, ctx.parallel(), body_hooks);
      if (!s.ok()) return s.WithContext(what_ + " element " + std::to_string(i));
      for (size_t o = 0; o < m; ++o) {
        if (state.outputs[o].dtype() == DType::kSequence) {
          return Unsupported(what_, ": body output ", o, " is a sequence; sequences of sequences are not supported");
        }
        if (hooks.before_allocate != nullptr && *hooks.before_allocate) {
          KILN_RETURN_IF_ERROR((*hooks.before_allocate)(state.outputs[o].byte_size()));
        }
        KILN_ASSIGN_OR_RETURN(Tensor copy, state.outputs[o].Clone());
        collected[o].push_back(std::move(copy));
      }
      state.outputs.clear();
    }
    for (size_t o = 0; o < m; ++o) {
      // An empty input gives empty sequences of the body's declared dtype.
      DType dtype =
          collected[o].empty() ? body_->graph().value(body_->graph().outputs()[o]).dtype : collected[o].front().dtype();
      if (dtype == DType::kUndefined) {
        return InvalidArgument(what_, ": the input sequence is empty and the dtype of body output ", o,
                               " is not declared");
      }
      auto sequence = MakeSequence(dtype, std::move(collected[o]));
      if (!sequence.ok()) return sequence.status().WithContext(what_ + " output " + std::to_string(o));
      KILN_RETURN_IF_ERROR(ctx.SetOutput(static_cast<int>(o), std::move(sequence).value()));
    }
    return Status::Ok();
  }

  std::unique_ptr<SubgraphBody> body_;
  std::string what_;
  StatePool<MapState> states_;
};

}  // namespace

StatusOr<std::unique_ptr<kernels::OpKernel>> CreateSequenceMapKernel(const graph::Node& node,
                                                                     const kernels::KernelRegistry& registry,
                                                                     const std::vector<graph::BodyRegions>* bodies) {
  KILN_ASSIGN_OR_RETURN(BodyRef ref, FindBody(node, "body"));
  const graph::Graph& g = *ref.graph;
  if (node.num_explicit_inputs() < 1 || g.inputs().size() != node.num_explicit_inputs()) {
    return InvalidModel(node.Describe(), ": the body takes ", g.inputs().size(), " inputs but the node passes ",
                        node.num_explicit_inputs());
  }
  if (g.outputs().size() != node.outputs.size()) {
    return InvalidModel(node.Describe(), ": the body returns ", g.outputs().size(), " values for ", node.outputs.size(),
                        " outputs");
  }
  KILN_ASSIGN_OR_RETURN(auto body,
                        SubgraphBody::Create(g, registry, ref.capture_offset, node.Describe() + " body", bodies));
  return std::unique_ptr<kernels::OpKernel>(new SequenceMapKernel(std::move(body), node.Describe()));
}

}  // namespace kiln::runtime
