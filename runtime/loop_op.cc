// Loop (opsets 1-16, tensors only): runs its body while the iteration count
// is below the trip count M (when given) and the condition holds (when
// given, then as the body returns it). Loop-carried values go from one
// iteration's outputs to the next one's inputs; scan outputs are the
// per-iteration values stacked along a new first axis.
//
// One body frame serves every iteration: its memory plan's slots are sized
// by the first iteration and reused after, body outputs come from the
// frame's output pool and go back to it when the next iteration replaces
// them, and scan outputs accumulate in a buffer that doubles when it grows.
#include <cstdint>
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

struct LoopState {
  std::unique_ptr<ExecutionFrame> frame;
  Tensor iteration;  // int64 scalar, the body's first input
  Tensor condition;  // bool scalar, its second
  std::vector<Tensor> carried;
  std::vector<const Tensor*> inputs;
  std::vector<Tensor> outputs;
  std::vector<GrowableBuffer> scans;  // per scan output, the stacked values
  std::vector<Dims> scan_dims;        // per scan output, one iteration's dims
  std::vector<DType> scan_dtypes;
};

StatusOr<bool> ReadCondition(const Tensor& t, const std::string& what, const char* which) {
  if (t.dtype() != DType::kBool || t.num_elements() != 1) {
    return InvalidArgument(what, ": ", which, " must be one bool, got ", DTypeName(t.dtype()), " ",
                           DimsToString(t.dims()));
  }
  return *t.data<bool>();
}

class LoopKernel final : public ControlFlowKernel {
 public:
  LoopKernel(std::unique_ptr<SubgraphBody> body, std::vector<graph::ValueId> scan_values, std::string what)
      : body_(std::move(body)), scan_values_(std::move(scan_values)), what_(std::move(what)) {}

  std::vector<NamedBody> bodies() const override { return {{"body", body_.get()}}; }

  Status Run(kernels::KernelContext& ctx, const RunHooks& hooks) const override {
    std::unique_ptr<LoopState> state = states_.Acquire([this]() -> std::unique_ptr<LoopState> {
      auto s = std::make_unique<LoopState>();
      s->frame = body_->NewFrame();
      s->scans.resize(scan_values_.size());
      return s;
    });
    Status status = RunLoop(ctx, hooks, *state);
    state->carried.clear();
    state->outputs.clear();
    states_.Release(std::move(state));
    return status;
  }

 private:
  size_t num_carried() const { return body_->num_inputs() - 2; }

  Status RunLoop(kernels::KernelContext& ctx, const RunHooks& hooks, LoopState& state) const {
    // Validate everything the node was given before the first iteration.
    int64_t trip_count = INT64_MAX;
    if (const Tensor* m = ctx.input(0)) {
      if ((m->dtype() != DType::kInt64 && m->dtype() != DType::kInt32) || m->num_elements() != 1) {
        return InvalidArgument(what_, ": the trip count M must be one int64, got ", DTypeName(m->dtype()), " ",
                               DimsToString(m->dims()));
      }
      trip_count = m->dtype() == DType::kInt64 ? *m->data<int64_t>() : *m->data<int32_t>();
    }
    bool keep_going = true;
    if (const Tensor* cond = ctx.input(1)) {
      KILN_ASSIGN_OR_RETURN(keep_going, ReadCondition(*cond, what_, "the condition"));
    }
    const size_t n = num_carried();
    state.carried.clear();
    for (size_t k = 0; k < n; ++k) {
      const Tensor* initial = ctx.input(static_cast<int>(2 + k));
      if (initial == nullptr || !initial->defined()) {
        return InvalidArgument(what_, ": loop-carried value ", k, " has no initial value");
      }
      state.carried.push_back(Tensor::View(initial->dtype(), initial->dims(), const_cast<void*>(initial->raw_data())));
    }
    if (!state.iteration.defined()) {
      KILN_ASSIGN_OR_RETURN(state.iteration, Tensor::Allocate(DType::kInt64, {}));
      KILN_ASSIGN_OR_RETURN(state.condition, Tensor::Allocate(DType::kBool, {}));
    }
    const size_t k_scans = scan_values_.size();
    state.scan_dims.assign(k_scans, Dims{});
    state.scan_dtypes.assign(k_scans, DType::kUndefined);

    const RunHooks body_hooks = BodyRunHooks(hooks);
    int64_t i = 0;
    for (; i < trip_count && keep_going; ++i) {
      KILN_RETURN_IF_ERROR(CheckIterationLimits(hooks, what_, i));
      *state.iteration.data<int64_t>() = i;
      *state.condition.data<bool>() = keep_going;
      state.inputs.clear();
      state.inputs.push_back(&state.iteration);
      state.inputs.push_back(&state.condition);
      for (const Tensor& t : state.carried) state.inputs.push_back(&t);
      body_->AppendCaptures(ctx, state.inputs);
      Status s = body_->Run(*state.frame, state.inputs, state.outputs, ctx.parallel(), body_hooks);
      if (!s.ok()) return s.WithContext(what_ + " iteration " + std::to_string(i));
      KILN_ASSIGN_OR_RETURN(keep_going, ReadCondition(state.outputs[0], what_, "the body's condition output"));
      for (size_t k = 0; k < n; ++k) {
        Tensor& next = state.outputs[1 + k];
        if (next.dtype() != state.carried[k].dtype()) {
          return InvalidArgument(what_, ": loop-carried value ", k, " ('",
                                 body_->graph().value(body_->graph().inputs()[2 + k]).name, "') is ",
                                 DTypeName(state.carried[k].dtype()), " but iteration ", i, " returned ",
                                 DTypeName(next.dtype()));
        }
        // A value passed through (an input, an outer value) is a view of
        // memory the next iteration replaces: give it memory of its own.
        if (next.is_view()) {
          KILN_ASSIGN_OR_RETURN(next, OwnedCopy(next, *state.frame, hooks));
        }
      }
      for (size_t k = 0; k < n; ++k) state.carried[k] = std::move(state.outputs[1 + k]);
      for (size_t k = 0; k < k_scans; ++k)
        KILN_RETURN_IF_ERROR(AppendScan(state, k, i, state.outputs[1 + n + k], hooks));
      state.outputs.clear();
    }

    for (size_t k = 0; k < n; ++k) {
      const Tensor& value = state.carried[k];
      if (value.dtype() == DType::kSequence) {  // a sequence or None: shares its elements
        KILN_ASSIGN_OR_RETURN(Tensor copy, CopySequence(value));
        KILN_RETURN_IF_ERROR(ctx.SetOutput(static_cast<int>(k), std::move(copy)));
        continue;
      }
      KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(static_cast<int>(k), value.dtype(), value.dims()));
      if (value.byte_size() > 0) std::memcpy(out->raw_data(), value.raw_data(), value.byte_size());
    }
    for (size_t k = 0; k < k_scans; ++k) {
      Dims dims = state.scan_dims[k];
      DType dtype = state.scan_dtypes[k];
      if (i == 0) {
        // No iteration ran: the static shape says what one would have made.
        const graph::Value& v = body_->graph().value(scan_values_[k]);
        dtype = v.dtype;
        if (dtype == DType::kUndefined) {
          return InvalidArgument(what_, ": no iteration ran and the dtype of scan output ", k, " is not known");
        }
        dims.clear();
        for (const graph::Dim& d : v.shape.dims) dims.push_back(d.is_concrete() ? d.size : 0);
      }
      dims.insert(dims.begin(), i);
      KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(static_cast<int>(n + k), dtype, dims));
      if (out->byte_size() > 0) std::memcpy(out->raw_data(), state.scans[k].data(), out->byte_size());
    }
    return Status::Ok();
  }

  Status AppendScan(LoopState& state, size_t k, int64_t i, const Tensor& value, const RunHooks& hooks) const {
    if (i == 0) {
      state.scan_dims[k] = value.dims();
      state.scan_dtypes[k] = value.dtype();
    } else if (value.dims() != state.scan_dims[k] || value.dtype() != state.scan_dtypes[k]) {
      return InvalidArgument(what_, ": scan output ", k, " is ", DTypeName(value.dtype()), " ",
                             DimsToString(value.dims()), " in iteration ", i, " but was ",
                             DTypeName(state.scan_dtypes[k]), " ", DimsToString(state.scan_dims[k]),
                             " in iteration 0; scan outputs must keep their shape");
    }
    const size_t bytes = value.byte_size();
    KILN_ASSIGN_OR_RETURN(void* base, state.scans[k].Reserve(bytes * static_cast<size_t>(i + 1), hooks));
    if (bytes > 0) std::memcpy(static_cast<uint8_t*>(base) + bytes * static_cast<size_t>(i), value.raw_data(), bytes);
    return Status::Ok();
  }

  std::unique_ptr<SubgraphBody> body_;
  std::vector<graph::ValueId> scan_values_;  // the body's scan outputs, for their static dtype and shape
  std::string what_;
  StatePool<LoopState> states_;
};

}  // namespace

StatusOr<std::unique_ptr<kernels::OpKernel>> CreateLoopKernel(const graph::Node& node,
                                                              const kernels::KernelRegistry& registry,
                                                              const std::vector<graph::BodyRegions>* bodies) {
  KILN_ASSIGN_OR_RETURN(BodyRef ref, FindBody(node, "body"));
  const size_t explicit_inputs = node.num_explicit_inputs();
  if (explicit_inputs < 2) {
    return InvalidModel(node.Describe(),
                        ": Loop takes M and cond (either may be empty) before its loop-carried values");
  }
  const size_t n = explicit_inputs - 2;
  const graph::Graph& g = *ref.graph;
  if (g.inputs().size() != n + 2) {
    return InvalidModel(node.Describe(), ": the body takes ", g.inputs().size(),
                        " inputs but the Loop passes the iteration number, the condition and ", n,
                        " loop-carried values");
  }
  if (g.outputs().size() < n + 1 || node.outputs.size() != g.outputs().size() - 1) {
    return InvalidModel(node.Describe(), ": the body returns ", g.outputs().size(), " values; a Loop with ", n,
                        " loop-carried values and ", node.outputs.size(), " outputs needs ", node.outputs.size() + 1);
  }
  for (size_t k = 0; k < n; ++k) {
    const graph::Value& in = g.value(g.inputs()[2 + k]);
    const graph::Value& out = g.value(g.outputs()[1 + k]);
    if (in.dtype != DType::kUndefined && out.dtype != DType::kUndefined && in.dtype != out.dtype) {
      return InvalidModel(node.Describe(), ": loop-carried value ", k, " enters the body as '", in.name, "' (",
                          DTypeName(in.dtype), ") but leaves it as '", out.name, "' (", DTypeName(out.dtype), ")");
    }
    if (in.shape.rank_known && out.shape.rank_known && in.shape.dims.size() != out.shape.dims.size()) {
      return InvalidModel(node.Describe(), ": loop-carried value ", k, " enters the body as '", in.name, "' ",
                          in.shape.ToString(), " but leaves it as '", out.name, "' ", out.shape.ToString());
    }
  }
  KILN_ASSIGN_OR_RETURN(auto body,
                        SubgraphBody::Create(g, registry, ref.capture_offset, node.Describe() + " body", bodies));
  std::vector<graph::ValueId> scans(g.outputs().begin() + static_cast<std::ptrdiff_t>(1 + n), g.outputs().end());
  return std::unique_ptr<kernels::OpKernel>(new LoopKernel(std::move(body), std::move(scans), node.Describe()));
}

}  // namespace kiln::runtime
