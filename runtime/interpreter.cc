#include "runtime/interpreter.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <queue>
#include <set>

#include "graph/log.h"
#include "kiln/session.h"
#include "runtime/control_flow.h"
#include "runtime/jit_tier.h"
#include "runtime/subgraph_body.h"
#include "runtime/trace_recorder.h"

namespace kiln::runtime {
namespace {

// Static size of a value when its shape and dtype are known, else 0.
int64_t EstimateBytes(const graph::Value& v) {
  // A sequence lives outside the plan (kernels::KernelContext::SetOutput).
  if (v.kind != graph::ValueKind::kTensor) return 0;
  if (!v.shape.is_concrete() || v.dtype == DType::kUndefined) return 0;
  auto count = CheckedNumElements(v.shape.ConcreteDims(), v.dtype);
  return count.ok() ? *count * static_cast<int64_t>(DTypeSize(v.dtype)) : 0;
}

// Hands kernels their outputs: planned intermediates live in frame slots,
// graph outputs get memory of their own because they outlive the run.
class FrameAllocator final : public kernels::OutputAllocator {
 public:
  FrameAllocator(const graph::Graph& graph, ExecutionFrame& frame, const std::vector<int>& slot_of_value,
                 const std::vector<graph::ValueId>& outs)
      : graph_(graph), frame_(frame), slot_of_value_(slot_of_value), outs_(outs) {}

  StatusOr<Tensor> AllocateOutput(int index, DType dtype, const Dims& dims) override {
    const graph::ValueId id = outs_[static_cast<size_t>(index)];
    const int slot = id == graph::kNoValue ? -1 : slot_of_value_[static_cast<size_t>(id)];
    KILN_ASSIGN_OR_RETURN(int64_t count, CheckedNumElements(dims, dtype));
    const size_t bytes = static_cast<size_t>(count) * DTypeSize(dtype);
    if (slot < 0) {
      if (const Tensor* bound = BoundOutput(id)) {
        if (bound->dtype() != dtype || bound->dims() != dims) {
          return InvalidArgument("output '", graph_.value(id).name, "' is ", DTypeName(dtype), " ", DimsToString(dims),
                                 " but the tensor bound for it is ", DTypeName(bound->dtype()), " ",
                                 DimsToString(bound->dims()));
        }
        return Tensor::View(dtype, dims, const_cast<void*>(bound->raw_data()));
      }
      if (bytes == 0) {
        KILN_RETURN_IF_ERROR(Admit(bytes));
        return Tensor::Allocate(dtype, dims);
      }
      KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> buffer,
                            frame_.output_pool->Acquire(bytes, [this](size_t n) { return Admit(n); }));
      void* data = buffer.get();
      return Tensor::Shared(dtype, dims, std::move(buffer), data);
    }
    frame_.run_unplanned_bytes += static_cast<int64_t>(bytes);
    ExecutionFrame::Slot& s = frame_.slots[static_cast<size_t>(slot)];
    if (s.capacity < bytes || !s.buffer) {
      // A failure here leaves the slot's old buffer in place for later runs.
      KILN_RETURN_IF_ERROR(Admit(bytes));
      KILN_ASSIGN_OR_RETURN(Tensor fresh, Tensor::Allocate(DType::kUint8, {static_cast<int64_t>(bytes)}));
      // The slot keeps the allocation alive through the tensor's owner.
      s.buffer = std::shared_ptr<void>(std::make_shared<Tensor>(fresh), fresh.raw_data());
      s.capacity = bytes;
    }
    return Tensor::Shared(dtype, dims, s.buffer, s.buffer.get());
  }

 private:
  Status Admit(size_t bytes) const {
    return frame_.before_allocate != nullptr ? (*frame_.before_allocate)(bytes) : Status::Ok();
  }
  const Tensor* BoundOutput(graph::ValueId id) const {
    if (frame_.bound_outputs == nullptr) return nullptr;
    for (const auto& [value, tensor] : *frame_.bound_outputs) {
      if (value == id) return tensor;
    }
    return nullptr;
  }

  const graph::Graph& graph_;
  ExecutionFrame& frame_;
  const std::vector<int>& slot_of_value_;
  const std::vector<graph::ValueId>& outs_;
};

// Between units: the caller's deadline and cancellation. A kernel is not
// interrupted; the check costs a clock read per unit, and only when a
// deadline is set.
Status CheckRunLimits(const RunHooks& hooks, size_t units_done, size_t units_total) {
  if (hooks.cancel != nullptr && hooks.cancel->load(std::memory_order_relaxed)) {
    return Cancelled("the run was cancelled after ", units_done, " of ", units_total, " kernels");
  }
  if (hooks.deadline != std::chrono::steady_clock::time_point::max() &&
      std::chrono::steady_clock::now() >= hooks.deadline) {
    return DeadlineExceeded("the run passed its deadline after ", units_done, " of ", units_total, " kernels");
  }
  return Status::Ok();
}

}  // namespace

int64_t ExecutionFrame::SlotBytes() const {
  int64_t total = 0;
  for (const Slot& s : slots) total += static_cast<int64_t>(s.capacity);
  return total;
}

namespace {

// Orders execution units (regions, and single nodes outside regions) so that
// every unit comes after the units producing its inputs; ties go to the unit
// whose first node comes first in the graph's own order. Returns node ids in
// execution order with each region's nodes contiguous, plus unit bounds.
StatusOr<std::vector<Interpreter::Unit>> OrderUnits(const graph::Graph& graph, const std::vector<graph::NodeId>& order,
                                                    const std::vector<graph::Region>& regions,
                                                    std::vector<graph::NodeId>& node_order) {
  std::vector<int> unit_of_node(graph.num_nodes(), -1);
  std::vector<std::vector<graph::NodeId>> members;
  std::vector<int> region_of_unit;
  for (size_t r = 0; r < regions.size(); ++r) {
    for (graph::NodeId n : regions[r].nodes) unit_of_node[static_cast<size_t>(n)] = static_cast<int>(members.size());
    members.push_back(regions[r].nodes);
    region_of_unit.push_back(static_cast<int>(r));
  }
  std::vector<int> position(graph.num_nodes(), 0);
  for (size_t i = 0; i < order.size(); ++i) {
    graph::NodeId n = order[i];
    position[static_cast<size_t>(n)] = static_cast<int>(i);
    if (unit_of_node[static_cast<size_t>(n)] < 0) {
      unit_of_node[static_cast<size_t>(n)] = static_cast<int>(members.size());
      members.push_back({n});
      region_of_unit.push_back(-1);
    }
  }
  const size_t num_units = members.size();
  std::vector<std::set<int>> successors(num_units);
  std::vector<int> pending(num_units, 0);
  for (size_t u = 0; u < num_units; ++u) {
    for (graph::NodeId n : members[u]) {
      for (graph::ValueId in : graph.node(n).inputs) {
        if (in == graph::kNoValue) continue;
        graph::NodeId p = graph.value(in).producer;
        if (p == graph::kNoNode) continue;
        int pu = unit_of_node[static_cast<size_t>(p)];
        if (pu != static_cast<int>(u) && successors[static_cast<size_t>(pu)].insert(static_cast<int>(u)).second) {
          ++pending[u];
        }
      }
    }
  }
  auto first_position = [&](int u) {
    int best = INT32_MAX;
    for (graph::NodeId n : members[static_cast<size_t>(u)]) best = std::min(best, position[static_cast<size_t>(n)]);
    return best;
  };
  using Entry = std::pair<int, int>;  // (first position, unit)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> ready;
  for (size_t u = 0; u < num_units; ++u) {
    if (pending[u] == 0) ready.push({first_position(static_cast<int>(u)), static_cast<int>(u)});
  }
  std::vector<Interpreter::Unit> units;
  while (!ready.empty()) {
    int u = ready.top().second;
    ready.pop();
    Interpreter::Unit unit;
    unit.region = region_of_unit[static_cast<size_t>(u)];
    unit.first_step = node_order.size();
    for (graph::NodeId n : members[static_cast<size_t>(u)]) node_order.push_back(n);
    unit.end_step = node_order.size();
    units.push_back(unit);
    for (int s : successors[static_cast<size_t>(u)]) {
      if (--pending[static_cast<size_t>(s)] == 0) ready.push({first_position(s), s});
    }
  }
  if (units.size() != num_units) return Internal("regions form a cycle; the partitioner should have prevented it");
  return units;
}

}  // namespace

StatusOr<std::unique_ptr<Interpreter>> Interpreter::Create(const graph::Graph& graph,
                                                           const kernels::KernelRegistry& registry,
                                                           const std::vector<graph::Region>& regions,
                                                           const std::vector<graph::BodyRegions>* bodies,
                                                           int run_threads) {
  KILN_ASSIGN_OR_RETURN(std::vector<graph::NodeId> topo, graph.TopologicalOrder());
  std::unique_ptr<Interpreter> interp(new Interpreter(graph));
  interp->regions_ = regions;
  std::vector<graph::NodeId> order;
  KILN_ASSIGN_OR_RETURN(interp->units_, OrderUnits(graph, topo, regions, order));

  // Build every kernel first so that all unsupported ops are reported at
  // once, not one per attempt.
  std::map<std::string, int> unsupported;  // "Op (opset N)" -> count, sorted for a stable message
  Status first_error;
  std::vector<std::function<void()>> preparations;
  for (graph::NodeId id : order) {
    const graph::Node& node = graph.node(id);
    const bool control_flow = IsControlFlowOp(node);
    if (control_flow) {
      const size_t before = unsupported.size();
      CountUnsupportedOpsInBodies(node, registry, node.Label(), unsupported);
      if (unsupported.size() != before) continue;
    }
    auto kernel = control_flow ? CreateControlFlowKernel(node, registry, bodies) : registry.Create(node);
    if (!kernel.ok()) {
      if (kernel.status().code() == StatusCode::kUnsupported &&
          !registry.Supports(node.op_type, node.domain, node.opset)) {
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
    if (control_flow) step.control_flow = static_cast<const ControlFlowKernel*>(step.kernel.get());
    step.inputs = node.inputs;
    std::vector<const Tensor*> constants;
    std::vector<std::optional<Dims>> static_dims;
    for (graph::ValueId in : node.inputs) {
      step.input_is_constant.push_back(in != graph::kNoValue && graph.value(in).constant.has_value());
      constants.push_back(step.input_is_constant.back() ? &*graph.value(in).constant : nullptr);
      const bool known = in != graph::kNoValue && graph.value(in).shape.is_concrete();
      static_dims.push_back(known ? std::optional<Dims>(graph.value(in).shape.ConcreteDims()) : std::nullopt);
    }
    if (std::function<void()> prepare = step.kernel->TakePreparation(constants, static_dims)) {
      preparations.push_back(std::move(prepare));
    }
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
  // A compiled region reads all its inputs and writes all its outputs during
  // the whole unit, so those lifetimes cover the unit; values inside it keep
  // their per-node lifetimes for when the region runs interpreted.
  for (const Unit& unit : interp->units_) {
    if (unit.region < 0) continue;
    const graph::Region& region = regions[static_cast<size_t>(unit.region)];
    const int first = static_cast<int>(unit.first_step);
    const int last = static_cast<int>(unit.end_step) - 1;
    for (graph::ValueId v : region.inputs)
      last_use[static_cast<size_t>(v)] = std::max(last_use[static_cast<size_t>(v)], last);
    for (graph::ValueId v : region.outputs) {
      if (def_step[static_cast<size_t>(v)] >= 0) def_step[static_cast<size_t>(v)] = first;
      last_use[static_cast<size_t>(v)] = std::max(last_use[static_cast<size_t>(v)], last);
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
  interp->input_of_value_.assign(graph.num_values(), -1);
  for (size_t i = 0; i < graph.inputs().size(); ++i) {
    interp->input_of_value_[static_cast<size_t>(graph.inputs()[i])] = static_cast<int>(i);
  }
  for (size_t i = 0; i < graph.outer_scope_values().size(); ++i) {
    interp->input_of_value_[static_cast<size_t>(graph.outer_scope_values()[i])] =
        static_cast<int>(graph.inputs().size() + i);
  }
  interp->profiles_.reset(new StepProfile[interp->steps_.size()]);
  Log().debug("interpreter: {} steps, {} planned values in {} slots (estimated {} bytes)", interp->steps_.size(),
              planned.size(), interp->plan_.num_slots(), interp->plan_.PlannedBytes());
  if (!preparations.empty()) {
    // On a thread of its own: a run that comes first uses the kernels'
    // unprepared paths rather than waiting (kernel.h). Last node first: a
    // first run starts at the first node, so in graph order the two would
    // work on the same node and the run would find almost nothing prepared
    // (building a primitive takes about as long as computing without it);
    // in reverse they meet in the middle and the run's second half is
    // prepared.
    std::reverse(preparations.begin(), preparations.end());
    interp->preparation_ = std::make_unique<PreparationQueue>(std::move(preparations), run_threads);
  }
  return interp;
}

void Interpreter::AppendProfiles(const std::string& path, std::vector<NodeProfile>& out) const {
  for (size_t s = 0; s < steps_.size(); ++s) {
    const graph::Node& node = graph_.node(steps_[s].node);
    const StepProfile& p = profiles_[s];
    out.push_back({node.name, node.op_type, p.calls.load(), static_cast<double>(p.total_ns.load()) / 1e6, path});
    if (steps_[s].control_flow == nullptr) continue;
    const std::string node_path = (path.empty() ? "" : path + "/") + node.Label();
    for (const ControlFlowKernel::NamedBody& b : steps_[s].control_flow->bodies()) {
      b.body->interpreter().AppendProfiles(node_path + "/" + b.attribute, out);
    }
  }
}

void Interpreter::WaitForPreparation() const {
  if (preparation_ != nullptr) preparation_->WaitIdle();
  // Each body (If branch, Loop/Scan body) prepares its kernels on a queue
  // of its own.
  for (const Step& step : steps_) {
    if (step.control_flow == nullptr) continue;
    for (const ControlFlowKernel::NamedBody& b : step.control_flow->bodies()) {
      b.body->interpreter().WaitForPreparation();
    }
  }
}

std::unique_ptr<ExecutionFrame> Interpreter::NewFrame() const {
  auto frame = std::make_unique<ExecutionFrame>();
  frame->values.resize(graph_.num_values());
  frame->slots.resize(static_cast<size_t>(plan_.num_slots()));
  // Room for two generations of outputs: the ones a caller still holds
  // while the next run fills fresh ones.
  constexpr size_t kOutputGenerations = 2;
  frame->output_pool =
      OutputBufferPool::Create(std::max<size_t>(kOutputGenerations, kOutputGenerations * graph_.outputs().size()));
  return frame;
}

Status Interpreter::RunSteps(ExecutionFrame& frame, const Unit& unit, const kernels::ParallelRunner& parallel,
                             bool profile) const {
  for (size_t s = unit.first_step; s < unit.end_step; ++s) {
    const Step& step = steps_[s];
    frame.scratch_inputs.clear();
    for (graph::ValueId id : step.inputs) {
      frame.scratch_inputs.push_back(id == graph::kNoValue ? nullptr : ValuePtr(frame, id));
    }
    frame.scratch_outputs.assign(step.outputs.size(), Tensor());
    FrameAllocator allocator(graph_, frame, slot_of_value_, step.outputs);
    kernels::KernelContext ctx(frame.scratch_inputs, frame.scratch_outputs, allocator, parallel,
                               &step.input_is_constant);
    ctx.set_allocation_hook(frame.before_allocate);

    const auto start = profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    Status status = step.control_flow != nullptr && frame.hooks != nullptr ? step.control_flow->Run(ctx, *frame.hooks)
                                                                           : step.kernel->Compute(ctx);
    if (profile) {
      const auto ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
      profiles_[s].calls.fetch_add(1, std::memory_order_relaxed);
      profiles_[s].total_ns.fetch_add(ns, std::memory_order_relaxed);
    }
    if (!status.ok()) return status.WithContext(step.description);
    for (size_t o = 0; o < step.outputs.size(); ++o) {
      const graph::ValueId id = step.outputs[o];
      if (id == graph::kNoValue) continue;
      if (!frame.scratch_outputs[o].defined()) return Internal(step.description, ": kernel did not produce output ", o);
      frame.values[static_cast<size_t>(id)] = std::move(frame.scratch_outputs[o]);
    }
  }
  return Status::Ok();
}

class Interpreter::UnitCall final : public RegionCall {
 public:
  UnitCall(const Interpreter& interpreter, ExecutionFrame& frame, const Unit& unit,
           const kernels::ParallelRunner& parallel, bool profile)
      : interpreter_(interpreter),
        frame_(frame),
        unit_(unit),
        region_(interpreter.regions_[static_cast<size_t>(unit.region)]),
        parallel_(parallel),
        profile_(profile) {}

  const Tensor& input(size_t i) const override { return *interpreter_.ValuePtr(frame_, region_.inputs[i]); }

  StatusOr<void*> AllocateOutput(size_t o, const Dims& dims) override {
    const graph::ValueId id = region_.outputs[o];
    FrameAllocator allocator(interpreter_.graph_, frame_, interpreter_.slot_of_value_, region_.outputs);
    KILN_ASSIGN_OR_RETURN(Tensor out,
                          allocator.AllocateOutput(static_cast<int>(o), interpreter_.graph_.value(id).dtype, dims));
    void* data = out.raw_data();
    frame_.values[static_cast<size_t>(id)] = std::move(out);
    return data;
  }

  const Tensor& output(size_t o) const override { return *interpreter_.ValuePtr(frame_, region_.outputs[o]); }
  Status RunInterpreted() override { return interpreter_.RunSteps(frame_, unit_, parallel_, profile_); }
  const kernels::ParallelRunner& parallel() const override { return parallel_; }
  std::unique_ptr<RegionScratch>& scratch() override { return frame_.region_scratch; }

 private:
  const Interpreter& interpreter_;
  ExecutionFrame& frame_;
  const Unit& unit_;
  const graph::Region& region_;
  const kernels::ParallelRunner& parallel_;
  const bool profile_;
};

Status Interpreter::RunUnit(ExecutionFrame& frame, const Unit& unit, const kernels::ParallelRunner& parallel,
                            const RunHooks& hooks, bool& ran_compiled) const {
  ran_compiled = false;
  if (unit.region < 0 || hooks.jit == nullptr) return RunSteps(frame, unit, parallel, hooks.profile);
  UnitCall call(*this, frame, unit, parallel, hooks.profile);
  // The tier numbers the regions of every graph of the session (bodies
  // included) by their ids.
  const int id = regions_[static_cast<size_t>(unit.region)].id;
  KILN_ASSIGN_OR_RETURN(ServedBy served, hooks.jit->Run(id, call));
  ran_compiled = served == ServedBy::kCompiledCode;
  return Status::Ok();
}

std::vector<bool> Interpreter::UnitsNeededFor(const std::vector<size_t>& output_indices) const {
  std::vector<bool> value_needed(graph_.num_values(), false);
  for (size_t i : output_indices) value_needed[static_cast<size_t>(graph_.outputs()[i])] = true;
  std::vector<bool> needed(units_.size(), false);
  for (size_t u = units_.size(); u-- > 0;) {
    const Unit& unit = units_[u];
    for (size_t s = unit.first_step; s < unit.end_step && !needed[u]; ++s) {
      for (graph::ValueId out : steps_[s].outputs) {
        if (out != graph::kNoValue && value_needed[static_cast<size_t>(out)]) needed[u] = true;
      }
    }
    if (!needed[u]) continue;
    for (size_t s = unit.first_step; s < unit.end_step; ++s) {
      for (graph::ValueId in : steps_[s].inputs) {
        if (in != graph::kNoValue) value_needed[static_cast<size_t>(in)] = true;
      }
    }
  }
  return needed;
}

Status Interpreter::Run(ExecutionFrame& frame, const std::vector<const Tensor*>& inputs, std::vector<Tensor>& outputs,
                        const kernels::ParallelRunner& parallel, const RunHooks& hooks) const {
  if (inputs.size() != graph_.inputs().size() + graph_.outer_scope_values().size()) {
    return Internal("the graph takes ", graph_.inputs().size() + graph_.outer_scope_values().size(),
                    " inputs but the run gave ", inputs.size());
  }
  frame.run_unplanned_bytes = 0;
  frame.before_allocate = hooks.before_allocate;
  frame.bound_outputs = hooks.bound_outputs.empty() ? nullptr : &hooks.bound_outputs;
  frame.hooks = &hooks;
  // Kernels read the caller's input tensors in place (ValuePtr): no copy,
  // not even of a header, and the frame keeps no reference after the run.
  frame.run_inputs = &inputs;

  Status status;
  for (size_t u = 0; u < units_.size(); ++u) {
    if (hooks.units_needed != nullptr && !(*hooks.units_needed)[u]) continue;
    status = CheckRunLimits(hooks, u, units_.size());
    if (!status.ok()) break;
    const Unit& unit = units_[u];
    const auto start = hooks.trace ? TraceRecorder::Clock::now() : TraceRecorder::Clock::time_point();
    bool ran_compiled = false;
    status = RunUnit(frame, unit, parallel, hooks, ran_compiled);
    if (hooks.trace) {
      const std::string tier = ran_compiled ? "jit" : "interp";
      // Region ids are the session's (a body's regions number after the top
      // level's), as RegionStats and kiln info show them.
      const std::string name =
          unit.region >= 0
              ? "region " + std::to_string(regions_[static_cast<size_t>(unit.region)].id) + " [" + tier + "]"
              : graph_.node(steps_[unit.first_step].node).Label();
      hooks.trace->AddSlice(name, tier, start, TraceRecorder::Clock::now());
    }
    if (!status.ok()) break;
  }

  if (status.ok()) status = CollectOutputs(frame, hooks, outputs);
  // Drop every reference so the frame holds neither caller memory nor
  // returned outputs between runs.
  for (Tensor& t : frame.values) t = Tensor();
  frame.run_inputs = nullptr;
  frame.bound_outputs = nullptr;
  frame.hooks = nullptr;
  return status;
}

namespace {

// Whether the output list names `id` again at a position in [from, count).
bool OutputListedAgain(const std::vector<graph::ValueId>& graph_outputs, const std::vector<size_t>* output_indices,
                       size_t from, size_t count, graph::ValueId id) {
  for (size_t k = from; k < count; ++k) {
    if (graph_outputs[output_indices ? (*output_indices)[k] : k] == id) return true;
  }
  return false;
}

}  // namespace

Status Interpreter::CollectOutputs(ExecutionFrame& frame, const RunHooks& hooks, std::vector<Tensor>& outputs) const {
  outputs.clear();
  const auto& graph_outputs = graph_.outputs();
  const size_t count = hooks.output_indices ? hooks.output_indices->size() : graph_outputs.size();
  for (size_t k = 0; k < count; ++k) {
    const graph::ValueId id = graph_outputs[hooks.output_indices ? (*hooks.output_indices)[k] : k];
    const graph::Value& v = graph_.value(id);
    const Tensor& value = *ValuePtr(frame, id);
    const Tensor* bound = nullptr;
    for (const auto& [bound_id, tensor] : hooks.bound_outputs) {
      if (bound_id == id) bound = tensor;
    }
    if (bound != nullptr) {
      // Kernels wrote into the bound memory, unless the output is a
      // constant, a graph input or a view some kernel returned (Reshape):
      // then it is copied there.
      if (value.raw_data() != bound->raw_data()) {
        if (value.dtype() != bound->dtype() || value.dims() != bound->dims()) {
          return InvalidArgument("output '", v.name, "' is ", DTypeName(value.dtype()), " ", DimsToString(value.dims()),
                                 " but the tensor bound for it is ", DTypeName(bound->dtype()), " ",
                                 DimsToString(bound->dims()));
        }
        if (value.byte_size() > 0)
          std::memcpy(const_cast<void*>(bound->raw_data()), value.raw_data(), value.byte_size());
      }
      outputs.push_back(Tensor::View(bound->dtype(), bound->dims(), const_cast<void*>(bound->raw_data())));
    } else if ((v.constant || v.is_graph_input || v.is_outer_scope) && !hooks.borrow_passthrough_outputs) {
      // Outputs that are constants or pass-through inputs are copied: the
      // caller owns what Run returns.
      KILN_ASSIGN_OR_RETURN(Tensor copy, value.Clone());
      outputs.push_back(std::move(copy));
    } else if (v.is_graph_input || v.is_outer_scope) {
      // Borrowed: a view, which tells the control-flow kernel to copy what
      // it keeps.
      outputs.push_back(Tensor::View(value.dtype(), value.dims(), const_cast<void*>(value.raw_data())));
    } else if (!v.constant && !OutputListedAgain(graph_outputs, hooks.output_indices, k + 1, count, id)) {
      // The frame drops its values after the run: hand this one over
      // rather than copying its header.
      outputs.push_back(std::move(frame.values[static_cast<size_t>(id)]));
    } else {
      outputs.push_back(value);
    }
  }
  return Status::Ok();
}

}  // namespace kiln::runtime
