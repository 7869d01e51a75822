// Scan: runs its body once per slice of the scan inputs along their scan
// axis, carrying state values from one step to the next and stacking the
// per-step scan outputs along their own axis. Opset 9 on: per-input and
// per-output axes and directions. Opset 8: a leading batch axis on every
// input and output, each batch row scanned on its own along axis 1 (the
// whole sequence; kiln does not support sequence_lens shorter than that).
//
// A slice along axis 0 is a view of the input; along another axis it is
// gathered into a per-input buffer that the kernel keeps across runs.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/control_flow.h"
#include "runtime/control_flow_ops.h"
#include "runtime/subgraph_body.h"

namespace kiln::runtime {
namespace {

struct ScanState {
  std::unique_ptr<ExecutionFrame> frame;
  std::vector<Tensor> states;
  std::vector<Tensor> slices;
  std::vector<GrowableBuffer> slice_buffers;  // per scan input
  std::vector<const Tensor*> inputs;
  std::vector<Tensor> outputs;
};

struct ScanConfig {
  int opset = 9;
  size_t num_states = 0;
  size_t num_scan_inputs = 0;
  size_t num_scan_outputs = 0;
  std::vector<int64_t> input_axes;  // opset 9+, may be negative until checked against ranks
  std::vector<int64_t> input_directions;
  std::vector<int64_t> output_axes;
  std::vector<int64_t> output_directions;
};

// Where scan output `k` of one step goes: its output tensor, allocated on
// the first step once the step's dims are known.
using EmitFn = std::function<Status(size_t k, int64_t position, const Tensor& slice)>;

class ScanKernel final : public ControlFlowKernel {
 public:
  ScanKernel(std::unique_ptr<SubgraphBody> body, ScanConfig config, std::string what)
      : body_(std::move(body)), config_(std::move(config)), what_(std::move(what)) {}

  std::vector<NamedBody> bodies() const override { return {{"body", body_.get()}}; }

  Status Run(kernels::KernelContext& ctx, const RunHooks& hooks) const override {
    std::unique_ptr<ScanState> state = states_.Acquire([this]() -> std::unique_ptr<ScanState> {
      auto s = std::make_unique<ScanState>();
      s->frame = body_->NewFrame();
      s->slice_buffers.resize(config_.num_scan_inputs);
      return s;
    });
    Status status = config_.opset >= 9 ? RunScan9(ctx, hooks, *state) : RunScan8(ctx, hooks, *state);
    state->states.clear();
    state->slices.clear();
    state->outputs.clear();
    states_.Release(std::move(state));
    return status;
  }

 private:
  // One sequence: states in `state.states` (replaced by the final states),
  // scan inputs `scan_inputs` sliced along `axes`.
  Status ScanSequence(kernels::KernelContext& ctx, const RunHooks& hooks, ScanState& state,
                      const std::vector<const Tensor*>& scan_inputs, const std::vector<int64_t>& axes,
                      const std::vector<int64_t>& directions, int64_t length, const EmitFn& emit) const {
    const RunHooks body_hooks = BodyRunHooks(hooks);
    const size_t n = config_.num_states;
    for (int64_t t = 0; t < length; ++t) {
      KILN_RETURN_IF_ERROR(CheckIterationLimits(hooks, what_, t));
      state.slices.clear();
      for (size_t j = 0; j < scan_inputs.size(); ++j) {
        const int64_t index = directions[j] == 0 ? t : length - 1 - t;
        KILN_ASSIGN_OR_RETURN(Tensor slice, SliceAlong(*scan_inputs[j], axes[j], index, state.slice_buffers[j], hooks));
        state.slices.push_back(std::move(slice));
      }
      state.inputs.clear();
      for (const Tensor& s : state.states) state.inputs.push_back(&s);
      for (const Tensor& s : state.slices) state.inputs.push_back(&s);
      body_->AppendCaptures(ctx, state.inputs);
      Status s = body_->Run(*state.frame, state.inputs, state.outputs, ctx.parallel(), body_hooks);
      if (!s.ok()) return s.WithContext(what_ + " step " + std::to_string(t));
      for (size_t k = 0; k < n; ++k) {
        Tensor& next = state.outputs[k];
        if (next.dtype() != state.states[k].dtype()) {
          return InvalidArgument(what_, ": state value ", k, " is ", DTypeName(state.states[k].dtype()), " but step ",
                                 t, " returned ", DTypeName(next.dtype()));
        }
        if (next.is_view()) {
          KILN_ASSIGN_OR_RETURN(next, OwnedCopy(next, *state.frame, hooks));
        }
      }
      for (size_t k = 0; k < n; ++k) state.states[k] = std::move(state.outputs[k]);
      for (size_t k = 0; k < config_.num_scan_outputs; ++k) {
        KILN_RETURN_IF_ERROR(emit(k, t, state.outputs[n + k]));
      }
      state.outputs.clear();
    }
    return Status::Ok();
  }

  Status RunScan9(kernels::KernelContext& ctx, const RunHooks& hooks, ScanState& state) const {
    const size_t n = config_.num_states;
    const size_t m = config_.num_scan_inputs;
    KILN_RETURN_IF_ERROR(TakeInitialStates(ctx, 0, state));
    std::vector<const Tensor*> scan_inputs;
    std::vector<int64_t> axes(m);
    int64_t length = -1;
    for (size_t j = 0; j < m; ++j) {
      const Tensor* in = ctx.input(static_cast<int>(n + j));
      if (in == nullptr) return InvalidArgument(what_, ": scan input ", j, " is missing");
      int64_t axis = config_.input_axes[j];
      if (axis < -in->rank() || axis >= in->rank()) {
        return InvalidArgument(what_, ": scan input ", j, " has rank ", in->rank(), ", no axis ", axis);
      }
      if (axis < 0) axis += in->rank();
      axes[j] = axis;
      const int64_t len = in->dim(axis);
      if (length >= 0 && len != length) {
        return InvalidArgument(what_, ": scan inputs have different lengths along their axes (", length, " and ", len,
                               ")");
      }
      length = len;
      scan_inputs.push_back(in);
    }
    std::vector<Tensor*> outs(config_.num_scan_outputs, nullptr);
    std::vector<int64_t> out_axes(config_.num_scan_outputs, 0);
    const EmitFn emit = [&](size_t k, int64_t t, const Tensor& slice) -> Status {
      if (outs[k] == nullptr) {
        int64_t axis = config_.output_axes[k];
        const int64_t rank = slice.rank() + 1;
        if (axis < -rank || axis >= rank) {
          return InvalidArgument(what_, ": scan output ", k, " has rank ", rank, ", no axis ", axis);
        }
        if (axis < 0) axis += rank;
        out_axes[k] = axis;
        Dims dims = slice.dims();
        dims.insert(dims.begin() + axis, length);
        KILN_ASSIGN_OR_RETURN(outs[k], ctx.Output(static_cast<int>(n + k), slice.dtype(), dims));
      }
      Dims expected = outs[k]->dims();
      expected.erase(expected.begin() + out_axes[k]);
      if (slice.dims() != expected || slice.dtype() != outs[k]->dtype()) {
        return InvalidArgument(what_, ": scan output ", k, " is ", DTypeName(slice.dtype()), " ",
                               DimsToString(slice.dims()), " at step ", t, " but ", DTypeName(outs[k]->dtype()), " ",
                               DimsToString(expected), " before; scan outputs must keep their shape");
      }
      const int64_t position = config_.output_directions[k] == 0 ? t : length - 1 - t;
      CopySliceInto(*outs[k], out_axes[k], position, slice);
      return Status::Ok();
    };
    KILN_RETURN_IF_ERROR(ScanSequence(ctx, hooks, state, scan_inputs, axes, config_.input_directions, length, emit));
    KILN_RETURN_IF_ERROR(WriteFinalStates(ctx, state, nullptr, 0));
    for (size_t k = 0; k < config_.num_scan_outputs; ++k) {
      if (outs[k] == nullptr) KILN_RETURN_IF_ERROR(EmptyScanOutput(ctx, n + k, length, {}));
    }
    return Status::Ok();
  }

  // Opset 8: every input and output has a leading batch axis.
  Status RunScan8(kernels::KernelContext& ctx, const RunHooks& hooks, ScanState& state) const {
    const size_t n = config_.num_states;
    const size_t m = config_.num_scan_inputs;
    const int first = 1;  // input 0 is sequence_lens
    int64_t batch = -1;
    int64_t length = -1;
    for (size_t i = 0; i < n + m; ++i) {
      const Tensor* in = ctx.input(first + static_cast<int>(i));
      if (in == nullptr || in->rank() < (i < n ? 1 : 2)) {
        return InvalidArgument(what_, ": input ", first + static_cast<int>(i), " needs a batch axis",
                               i < n ? "" : " and a sequence axis");
      }
      if (batch >= 0 && in->dim(0) != batch) return InvalidArgument(what_, ": inputs disagree on the batch size");
      batch = in->dim(0);
      if (i >= n) {
        if (length >= 0 && in->dim(1) != length) {
          return InvalidArgument(what_, ": scan inputs have different sequence lengths");
        }
        length = in->dim(1);
      }
    }
    if (const Tensor* lens = ctx.input(0)) {
      const bool all_full =
          lens->dtype() == DType::kInt32 && lens->num_elements() == batch &&
          std::all_of(lens->data<int32_t>(), lens->data<int32_t>() + batch, [&](int32_t l) { return l == length; });
      if (!all_full) {
        return Unsupported(what_, ": sequence_lens shorter than the scan inputs' length ", length,
                           " are not supported");
      }
    }
    if (length < 0) length = 0;
    std::vector<Tensor*> outs(config_.num_scan_outputs, nullptr);
    std::vector<Tensor*> state_outs(n, nullptr);
    for (int64_t b = 0; b < batch; ++b) {
      state.states.clear();
      for (size_t k = 0; k < n; ++k) {
        const Tensor* in = ctx.input(first + static_cast<int>(k));
        const size_t row = in->byte_size() / static_cast<size_t>(batch);
        Dims dims(in->dims().begin() + 1, in->dims().end());
        state.states.push_back(Tensor::View(
            in->dtype(), dims,
            const_cast<uint8_t*>(static_cast<const uint8_t*>(in->raw_data())) + row * static_cast<size_t>(b)));
      }
      std::vector<Tensor> rows;
      std::vector<const Tensor*> scan_inputs;
      for (size_t j = 0; j < m; ++j) {
        const Tensor* in = ctx.input(first + static_cast<int>(n + j));
        const size_t row = in->byte_size() / static_cast<size_t>(batch);
        Dims dims(in->dims().begin() + 1, in->dims().end());
        rows.push_back(Tensor::View(
            in->dtype(), dims,
            const_cast<uint8_t*>(static_cast<const uint8_t*>(in->raw_data())) + row * static_cast<size_t>(b)));
      }
      for (const Tensor& r : rows) scan_inputs.push_back(&r);
      const EmitFn emit = [&](size_t k, int64_t t, const Tensor& slice) -> Status {
        if (outs[k] == nullptr) {
          Dims dims = slice.dims();
          dims.insert(dims.begin(), {batch, length});
          KILN_ASSIGN_OR_RETURN(outs[k], ctx.Output(static_cast<int>(n + k), slice.dtype(), dims));
        }
        const Dims expected(outs[k]->dims().begin() + 2, outs[k]->dims().end());
        if (slice.dims() != expected || slice.dtype() != outs[k]->dtype()) {
          return InvalidArgument(what_, ": scan output ", k, " changes shape at step ", t);
        }
        const Dims row_dims(outs[k]->dims().begin() + 1, outs[k]->dims().end());
        Tensor row = Tensor::View(outs[k]->dtype(), row_dims,
                                  static_cast<uint8_t*>(outs[k]->raw_data()) +
                                      outs[k]->byte_size() / static_cast<size_t>(batch) * static_cast<size_t>(b));
        CopySliceInto(row, 0, t, slice);
        return Status::Ok();
      };
      KILN_RETURN_IF_ERROR(ScanSequence(ctx, hooks, state, scan_inputs, std::vector<int64_t>(m, 0),
                                        config_.input_directions, length, emit));
      KILN_RETURN_IF_ERROR(WriteFinalStates(ctx, state, &state_outs, b, batch));
    }
    for (size_t k = 0; k < config_.num_scan_outputs; ++k) {
      if (outs[k] == nullptr) KILN_RETURN_IF_ERROR(EmptyScanOutput(ctx, n + k, length, {std::max<int64_t>(batch, 0)}));
    }
    if (batch == 0) {
      for (size_t k = 0; k < n; ++k) {
        const Tensor* in = ctx.input(first + static_cast<int>(k));
        KILN_RETURN_IF_ERROR(ctx.Output(static_cast<int>(k), in->dtype(), in->dims()).status());
      }
    }
    return Status::Ok();
  }

  Status TakeInitialStates(kernels::KernelContext& ctx, int first, ScanState& state) const {
    state.states.clear();
    for (size_t k = 0; k < config_.num_states; ++k) {
      const Tensor* in = ctx.input(first + static_cast<int>(k));
      if (in == nullptr) return InvalidArgument(what_, ": initial state ", k, " is missing");
      state.states.push_back(Tensor::View(in->dtype(), in->dims(), const_cast<void*>(in->raw_data())));
    }
    return Status::Ok();
  }

  // Final states to the node's outputs; with `batched`, as row `b` of
  // `batch` (allocated on the first row).
  Status WriteFinalStates(kernels::KernelContext& ctx, ScanState& state, std::vector<Tensor*>* batched, int64_t b,
                          int64_t batch = 1) const {
    for (size_t k = 0; k < config_.num_states; ++k) {
      const Tensor& value = state.states[k];
      if (batched == nullptr) {
        KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(static_cast<int>(k), value.dtype(), value.dims()));
        if (value.byte_size() > 0) std::memcpy(out->raw_data(), value.raw_data(), value.byte_size());
        continue;
      }
      Tensor*& out = (*batched)[k];
      if (out == nullptr) {
        Dims dims = value.dims();
        dims.insert(dims.begin(), batch);
        KILN_ASSIGN_OR_RETURN(out, ctx.Output(static_cast<int>(k), value.dtype(), dims));
      }
      if (out->byte_size() != value.byte_size() * static_cast<size_t>(batch)) {
        return InvalidArgument(what_, ": state ", k, " changes shape between batch rows");
      }
      if (value.byte_size() > 0) {
        std::memcpy(static_cast<uint8_t*>(out->raw_data()) + value.byte_size() * static_cast<size_t>(b),
                    value.raw_data(), value.byte_size());
      }
    }
    return Status::Ok();
  }

  // A scan output when no step ran: its static per-step shape with the
  // scan axis (and batch axis) inserted.
  Status EmptyScanOutput(kernels::KernelContext& ctx, size_t index, int64_t length, Dims prefix) const {
    const graph::Graph& g = body_->graph();
    const graph::Value& v = g.value(g.outputs()[index]);
    if (v.dtype == DType::kUndefined) {
      return InvalidArgument(what_, ": no step ran and the dtype of output ", index, " is not known");
    }
    Dims dims = std::move(prefix);
    dims.push_back(length);
    for (const graph::Dim& d : v.shape.dims) dims.push_back(d.is_concrete() ? d.size : 0);
    return ctx.Output(static_cast<int>(index), v.dtype, dims).status();
  }

  std::unique_ptr<SubgraphBody> body_;
  ScanConfig config_;
  std::string what_;
  StatePool<ScanState> states_;
};

}  // namespace

StatusOr<std::unique_ptr<kernels::OpKernel>> CreateScanKernel(const graph::Node& node,
                                                              const kernels::KernelRegistry& registry,
                                                              const std::vector<graph::BodyRegions>* bodies) {
  KILN_ASSIGN_OR_RETURN(BodyRef ref, FindBody(node, "body"));
  const graph::Graph& g = *ref.graph;
  ScanConfig c;
  c.opset = node.opset;
  KILN_ASSIGN_OR_RETURN(int64_t num_scan_inputs, node.GetInt("num_scan_inputs", -1));
  const size_t first = node.opset >= 9 ? 0 : 1;
  const size_t explicit_inputs = node.num_explicit_inputs();
  if (num_scan_inputs < 1 || static_cast<size_t>(num_scan_inputs) + first > explicit_inputs) {
    return InvalidModel(node.Describe(), ": num_scan_inputs ", num_scan_inputs, " does not fit its ", explicit_inputs,
                        " inputs");
  }
  c.num_scan_inputs = static_cast<size_t>(num_scan_inputs);
  c.num_states = explicit_inputs - first - c.num_scan_inputs;
  if (g.inputs().size() != c.num_states + c.num_scan_inputs) {
    return InvalidModel(node.Describe(), ": the body takes ", g.inputs().size(), " inputs but the Scan passes ",
                        c.num_states, " states and ", c.num_scan_inputs, " scan slices");
  }
  if (g.outputs().size() != node.outputs.size() || g.outputs().size() < c.num_states) {
    return InvalidModel(node.Describe(), ": the body returns ", g.outputs().size(), " values for ", node.outputs.size(),
                        " outputs");
  }
  c.num_scan_outputs = g.outputs().size() - c.num_states;
  const auto read = [&](const char* name, size_t count, std::vector<int64_t>& out) -> Status {
    KILN_ASSIGN_OR_RETURN(out, node.GetInts(name, std::vector<int64_t>(count, 0)));
    if (out.size() != count) {
      return InvalidModel(node.Describe(), ": attribute '", name, "' has ", out.size(), " values for ", count);
    }
    return Status::Ok();
  };
  if (node.opset >= 9) {
    KILN_RETURN_IF_ERROR(read("scan_input_axes", c.num_scan_inputs, c.input_axes));
    KILN_RETURN_IF_ERROR(read("scan_input_directions", c.num_scan_inputs, c.input_directions));
    KILN_RETURN_IF_ERROR(read("scan_output_axes", c.num_scan_outputs, c.output_axes));
    KILN_RETURN_IF_ERROR(read("scan_output_directions", c.num_scan_outputs, c.output_directions));
  } else {
    KILN_RETURN_IF_ERROR(read("directions", c.num_scan_inputs, c.input_directions));
    c.output_directions.assign(c.num_scan_outputs, 0);
  }
  for (const auto* dirs : {&c.input_directions, &c.output_directions}) {
    for (int64_t d : *dirs) {
      if (d != 0 && d != 1) return InvalidModel(node.Describe(), ": a scan direction is ", d, "; it must be 0 or 1");
    }
  }
  KILN_ASSIGN_OR_RETURN(auto body,
                        SubgraphBody::Create(g, registry, ref.capture_offset, node.Describe() + " body", bodies));
  return std::unique_ptr<kernels::OpKernel>(new ScanKernel(std::move(body), std::move(c), node.Describe()));
}

}  // namespace kiln::runtime
