#include "runtime/interpreter.h"

#include <chrono>
#include <cstdlib>
#include <map>

#include "graph/log.h"

namespace kiln::runtime {
namespace {

// Static size of a value when its shape and dtype are known, else 0.
int64_t EstimateBytes(const graph::Value& v) {
  if (!v.shape.is_concrete() || v.dtype == DType::kUndefined) return 0;
  auto count = CheckedNumElements(v.shape.ConcreteDims(), v.dtype);
  return count.ok() ? *count * static_cast<int64_t>(DTypeSize(v.dtype)) : 0;
}

// Hands kernels their outputs: planned intermediates live in frame slots,
// graph outputs get memory of their own because they outlive the run.
class FrameAllocator final : public kernels::OutputAllocator {
 public:
  FrameAllocator(ExecutionFrame& frame, const std::vector<int>& slot_of_value, const std::vector<graph::ValueId>& outs)
      : frame_(frame), slot_of_value_(slot_of_value), outs_(outs) {}

  StatusOr<Tensor> AllocateOutput(int index, DType dtype, const Dims& dims) override {
    const graph::ValueId id = outs_[static_cast<size_t>(index)];
    const int slot = id == graph::kNoValue ? -1 : slot_of_value_[static_cast<size_t>(id)];
    if (slot < 0) return Tensor::Allocate(dtype, dims);
    KILN_ASSIGN_OR_RETURN(int64_t count, CheckedNumElements(dims, dtype));
    const size_t bytes = static_cast<size_t>(count) * DTypeSize(dtype);
    frame_.run_unplanned_bytes += static_cast<int64_t>(bytes);
    ExecutionFrame::Slot& s = frame_.slots[static_cast<size_t>(slot)];
    if (s.capacity < bytes || !s.buffer) {
      KILN_ASSIGN_OR_RETURN(Tensor fresh, Tensor::Allocate(DType::kUint8, {static_cast<int64_t>(bytes)}));
      // The slot keeps the allocation alive through the tensor's owner.
      s.buffer = std::shared_ptr<void>(std::make_shared<Tensor>(fresh), fresh.raw_data());
      s.capacity = bytes;
    }
    return Tensor::Shared(dtype, dims, s.buffer, s.buffer.get());
  }

 private:
  ExecutionFrame& frame_;
  const std::vector<int>& slot_of_value_;
  const std::vector<graph::ValueId>& outs_;
};

}  // namespace

int64_t ExecutionFrame::SlotBytes() const {
  int64_t total = 0;
  for (const Slot& s : slots) total += static_cast<int64_t>(s.capacity);
  return total;
}

StatusOr<std::unique_ptr<Interpreter>> Interpreter::Create(const graph::Graph& graph,
                                                           const kernels::KernelRegistry& registry) {
  KILN_ASSIGN_OR_RETURN(std::vector<graph::NodeId> order, graph.TopologicalOrder());
  std::unique_ptr<Interpreter> interp(new Interpreter(graph));

  // Build every kernel first so that all unsupported ops are reported at
  // once, not one per attempt.
  std::map<std::string, int> unsupported;  // "Op (opset N)" -> count, sorted for a stable message
  Status first_error;
  for (graph::NodeId id : order) {
    const graph::Node& node = graph.node(id);
    auto kernel = registry.Create(node);
    if (!kernel.ok()) {
      if (kernel.status().code() == StatusCode::kUnsupported && !registry.Supports(node.op_type, node.domain, node.opset)) {
        std::string key = (node.domain.empty() ? "" : node.domain + ".") + node.op_type + " (opset " +
                          std::to_string(node.opset) + ")";
        ++unsupported[key];
      } else if (first_error.ok()) {
        first_error = kernel.status();
      }
      continue;
    }
    Step step;
    step.node = id;
    step.kernel = std::move(kernel).value();
    step.inputs = node.inputs;
    step.outputs = node.outputs;
    step.description = node.Describe();
    interp->steps_.push_back(std::move(step));
  }
  if (!unsupported.empty()) {
    std::string list;
    for (const auto& [op, count] : unsupported) {
      if (!list.empty()) list += ", ";
      list += op;
      if (count > 1) list += " x" + std::to_string(count);
    }
    return Unsupported("the model uses ops kiln does not support: ", list);
  }
  KILN_RETURN_IF_ERROR(first_error);

  // Lifetimes of intermediates, in step numbers.
  std::vector<int> def_step(graph.num_values(), -1);
  std::vector<int> last_use(graph.num_values(), -1);
  for (size_t s = 0; s < interp->steps_.size(); ++s) {
    for (graph::ValueId v : interp->steps_[s].outputs) {
      if (v != graph::kNoValue) def_step[static_cast<size_t>(v)] = static_cast<int>(s);
    }
    for (graph::ValueId v : interp->steps_[s].inputs) {
      if (v != graph::kNoValue) last_use[static_cast<size_t>(v)] = static_cast<int>(s);
    }
  }
  std::vector<PlannedValue> planned;
  std::vector<graph::ValueId> planned_ids;
  for (size_t v = 0; v < graph.num_values(); ++v) {
    const graph::Value& value = graph.value(static_cast<graph::ValueId>(v));
    if (def_step[v] < 0 || value.is_graph_output || value.constant) continue;
    planned.push_back({def_step[v], std::max(def_step[v], last_use[v]), EstimateBytes(value)});
    planned_ids.push_back(static_cast<graph::ValueId>(v));
  }
  interp->plan_ = PlanMemory(planned);
  interp->slot_of_value_.assign(graph.num_values(), -1);
  for (size_t i = 0; i < planned_ids.size(); ++i) {
    interp->slot_of_value_[static_cast<size_t>(planned_ids[i])] = interp->plan_.slot_of_value[i];
  }
  interp->profiles_.reset(new StepProfile[interp->steps_.size()]);
  Log().debug("interpreter: {} steps, {} planned values in {} slots (estimated {} bytes)", interp->steps_.size(),
              planned.size(), interp->plan_.num_slots(), interp->plan_.PlannedBytes());
  return interp;
}

std::unique_ptr<ExecutionFrame> Interpreter::NewFrame() const {
  auto frame = std::make_unique<ExecutionFrame>();
  frame->values.resize(graph_.num_values());
  frame->slots.resize(static_cast<size_t>(plan_.num_slots()));
  return frame;
}

Status Interpreter::Run(ExecutionFrame& frame, const std::vector<const Tensor*>& inputs, std::vector<Tensor>& outputs,
                        const kernels::ParallelRunner& parallel, bool profile) const {
  frame.run_unplanned_bytes = 0;
  // Borrow inputs without copying; Tensor views keep no ownership, so the
  // frame never extends the caller's buffers' lifetime.
  const auto& graph_inputs = graph_.inputs();
  for (size_t i = 0; i < graph_inputs.size(); ++i) {
    const Tensor& in = *inputs[i];
    frame.values[static_cast<size_t>(graph_inputs[i])] =
        Tensor::View(in.dtype(), in.dims(), const_cast<void*>(in.raw_data()));
  }
  auto value_ptr = [&](graph::ValueId id) -> const Tensor* {
    const graph::Value& v = graph_.value(id);
    if (v.constant) return &*v.constant;
    return &frame.values[static_cast<size_t>(id)];
  };

  Status status;
  for (size_t s = 0; s < steps_.size() && status.ok(); ++s) {
    const Step& step = steps_[s];
    frame.scratch_inputs.clear();
    for (graph::ValueId id : step.inputs) frame.scratch_inputs.push_back(id == graph::kNoValue ? nullptr : value_ptr(id));
    frame.scratch_outputs.assign(step.outputs.size(), Tensor());
    FrameAllocator allocator(frame, slot_of_value_, step.outputs);
    kernels::KernelContext ctx(frame.scratch_inputs, frame.scratch_outputs, allocator, parallel);

    const auto start = profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    status = step.kernel->Compute(ctx);
    if (profile) {
      const auto ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
      profiles_[s].calls.fetch_add(1, std::memory_order_relaxed);
      profiles_[s].total_ns.fetch_add(ns, std::memory_order_relaxed);
    }
    if (!status.ok()) {
      status = status.WithContext(step.description);
      break;
    }
    for (size_t o = 0; o < step.outputs.size(); ++o) {
      const graph::ValueId id = step.outputs[o];
      if (id == graph::kNoValue) continue;
      if (!frame.scratch_outputs[o].defined()) {
        status = Internal(step.description, ": kernel did not produce output ", o);
        break;
      }
      frame.values[static_cast<size_t>(id)] = std::move(frame.scratch_outputs[o]);
    }
  }

  if (status.ok()) {
    outputs.clear();
    for (graph::ValueId id : graph_.outputs()) {
      const graph::Value& v = graph_.value(id);
      if (v.constant || v.is_graph_input) {
        // Outputs that are constants or pass-through inputs are copied: the
        // caller owns what Run returns.
        auto copy = value_ptr(id)->Clone();
        if (!copy.ok()) {
          status = copy.status();
          break;
        }
        outputs.push_back(std::move(copy).value());
      } else {
        outputs.push_back(frame.values[static_cast<size_t>(id)]);
      }
    }
  }
  // Drop every reference so the frame holds neither caller memory nor
  // returned outputs between runs.
  for (Tensor& t : frame.values) t = Tensor();
  return status;
}

}  // namespace kiln::runtime
