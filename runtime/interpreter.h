// Tier 0: runs a graph node by node on the interpreter kernels, in
// topological order, over a memory plan that reuses intermediate buffers.
//
// Lifecycle (XNNPACK-style phases): Create() validates the graph, builds one
// kernel per node and plans memory; Run() only executes. An Interpreter is
// immutable after Create and may run from many threads at once, each with its
// own ExecutionFrame.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "graph/body_partitioner.h"
#include "graph/graph.h"
#include "graph/region.h"
#include "kernels/kernel.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "runtime/memory_plan.h"
#include "runtime/output_buffer_pool.h"
#include "runtime/preparation_queue.h"
#include "runtime/region_call.h"

namespace kiln {
struct NodeProfile;
}  // namespace kiln

namespace kiln::runtime {

class ControlFlowKernel;
class JitTier;
class TraceRecorder;

// RunHooks::max_loop_iterations by default: a Loop or Scan stops with an
// error after this many iterations, so a model asking for 2^63 iterations of
// a cheap body fails instead of running for days when no deadline is set.
inline constexpr int64_t kDefaultMaxLoopIterations = int64_t{1} << 24;

// SessionOptions::before_allocate_hook: admits (Ok) or fails an allocation
// of `bytes` for a run.
using AllocateHook = std::function<Status(size_t bytes)>;

// What one Run does besides executing: profiling, the JIT tier, tracing,
// and the caller's RunOptions.
struct RunHooks {
  bool profile = false;                           // per-step call counts and time
  const JitTier* jit = nullptr;                   // region units dispatch through it
  TraceRecorder* trace = nullptr;                 // one slice per unit
  const AllocateHook* before_allocate = nullptr;  // before each buffer the run allocates
  // Checked before each unit: past the deadline or once *cancel is set the
  // run stops with kDeadlineExceeded or kCancelled.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  const std::atomic<bool>* cancel = nullptr;
  // Units to run, parallel to units() (Interpreter::UnitsNeededFor); null
  // runs them all.
  const std::vector<bool>* units_needed = nullptr;
  // Graph outputs to return, as indices into graph.outputs(); null returns
  // all, in order.
  const std::vector<size_t>* output_indices = nullptr;
  // Caller-owned tensors the graph outputs with these value ids are written
  // into; their dtype and dims must be what the kernel produces.
  std::vector<std::pair<graph::ValueId, const Tensor*>> bound_outputs;
  // Graph outputs that are inputs, outer-scope values or constants are
  // returned as views instead of copies (valid as long as those are). For
  // sub-graph runs: the control-flow kernel copies what it keeps.
  bool borrow_passthrough_outputs = false;
  // The most iterations one Loop or Scan node may run (see
  // kDefaultMaxLoopIterations).
  int64_t max_loop_iterations = kDefaultMaxLoopIterations;
};

// Per-step call counts and time, shared by all runs of an interpreter.
struct StepProfile {
  std::atomic<int64_t> calls{0};
  std::atomic<int64_t> total_ns{0};
};

// The mutable state of one run: value tensors and the planned buffers. A
// frame is reused across runs (its buffers then need no allocation) but used
// by one run at a time.
class ExecutionFrame {
 public:
  struct Slot {
    std::shared_ptr<void> buffer;
    size_t capacity = 0;
  };
  std::vector<Tensor> values;  // per graph value id, for the current run
  // The current run's inputs (Interpreter::Run), read in place.
  const std::vector<const Tensor*>* run_inputs = nullptr;
  std::vector<Slot> slots;  // per memory-plan slot
  std::vector<const Tensor*> scratch_inputs;
  std::vector<Tensor> scratch_outputs;
  // The JIT tier's per-frame state for region calls (RegionCall::scratch).
  std::unique_ptr<RegionScratch> region_scratch;
  // Memory for values outside the plan (graph outputs), reused once the
  // caller releases what an earlier run returned. Set by NewFrame.
  std::shared_ptr<OutputBufferPool> output_pool;
  int64_t run_unplanned_bytes = 0;                // bytes allocated for intermediates in the last run
  const AllocateHook* before_allocate = nullptr;  // the current run's RunHooks::before_allocate
  // The current run's RunHooks::bound_outputs.
  const std::vector<std::pair<graph::ValueId, const Tensor*>>* bound_outputs = nullptr;
  // The current run's hooks, for control-flow kernels running sub-graphs.
  const RunHooks* hooks = nullptr;

  int64_t SlotBytes() const;
};

class Interpreter {
 public:
  // Fails (listing every unsupported op) when a node has no kernel. Each
  // of `regions` becomes one execution unit: its nodes run back to back, so
  // a JIT tier can replace them with one compiled call (JitTier::Run with
  // the region's id). Control-flow nodes give their bodies the regions
  // `bodies` lists for them (graph/body_partitioner.h). Kernel preparation
  // runs in the background for runs of `run_threads` threads (a run with
  // another count builds what it needs itself).
  static StatusOr<std::unique_ptr<Interpreter>> Create(const graph::Graph& graph,
                                                       const kernels::KernelRegistry& registry,
                                                       const std::vector<graph::Region>& regions = {},
                                                       const std::vector<graph::BodyRegions>* bodies = nullptr,
                                                       int run_threads = 1);

  std::unique_ptr<ExecutionFrame> NewFrame() const;

  // Which units the graph outputs at `output_indices` depend on, parallel
  // to units(): the rest need not run for them.
  std::vector<bool> UnitsNeededFor(const std::vector<size_t>& output_indices) const;

  // Runs the graph. `inputs` are parallel to graph.inputs() followed by
  // graph.outer_scope_values() (a sub-graph's), and already checked by the
  // caller; `outputs` receives graph.outputs() in order, each
  // owning its memory (or, for hooks.bound_outputs, the caller's). With
  // hooks.jit, every call of a region unit goes to
  // the tier (JitTier::Run), which decides how it runs.
  Status Run(ExecutionFrame& frame, const std::vector<const Tensor*>& inputs, std::vector<Tensor>& outputs,
             const kernels::ParallelRunner& parallel, const RunHooks& hooks = {}) const;

  struct Step {
    graph::NodeId node = graph::kNoNode;
    std::unique_ptr<kernels::OpKernel> kernel;
    std::vector<graph::ValueId> inputs;
    std::vector<graph::ValueId> outputs;
    std::vector<bool> input_is_constant;  // parallel to `inputs`
    std::string description;              // "node Conv 'conv1'", for errors
    // Set when `kernel` runs sub-graphs (If, Loop, Scan): it is then called
    // with the run's hooks rather than through OpKernel::Compute.
    const ControlFlowKernel* control_flow = nullptr;
  };
  // Consecutive steps that run as one: a single node, or a region's nodes.
  struct Unit {
    int region = -1;  // index into the regions given to Create, or -1
    size_t first_step = 0;
    size_t end_step = 0;
  };
  const std::vector<Step>& steps() const { return steps_; }
  const std::vector<Unit>& units() const { return units_; }
  const StepProfile& profile(size_t step) const { return profiles_[step]; }
  // Appends every step's profile, then (after each control-flow step) its
  // bodies' at any depth, their NodeProfile::path naming the body
  // ("Loop 'l'/body" under `path`, "" for the top level).
  void AppendProfiles(const std::string& path, std::vector<NodeProfile>& out) const;
  const MemoryPlan& memory_plan() const { return plan_; }
  const graph::Graph& graph() const { return graph_; }

  // Waits until the kernels' background preparation (OpKernel::
  // TakePreparation: packed weights, oneDNN primitives), the bodies' kernels
  // included, has run. Runs never wait for it; tests, benchmarks and
  // bitwise-equivalent sessions that want the prepared path do.
  void WaitForPreparation() const;

 private:
  Interpreter(const graph::Graph& graph) : graph_(graph) {}

  // A region unit's call as the JIT tier sees it.
  class UnitCall;

  // Fills `outputs` after a successful run (RunHooks::output_indices and
  // bound_outputs).
  Status CollectOutputs(ExecutionFrame& frame, const RunHooks& hooks, std::vector<Tensor>& outputs) const;
  Status RunSteps(ExecutionFrame& frame, const Unit& unit, const kernels::ParallelRunner& parallel, bool profile) const;
  // Runs `unit`; `ran_compiled` tells whether the JIT tier's code served it.
  Status RunUnit(ExecutionFrame& frame, const Unit& unit, const kernels::ParallelRunner& parallel,
                 const RunHooks& hooks, bool& ran_compiled) const;

  const Tensor* ValuePtr(const ExecutionFrame& frame, graph::ValueId id) const {
    const graph::Value& v = graph_.value(id);
    if (v.constant) return &*v.constant;
    const int input = input_of_value_[static_cast<size_t>(id)];
    return input >= 0 ? (*frame.run_inputs)[static_cast<size_t>(input)] : &frame.values[static_cast<size_t>(id)];
  }

  const graph::Graph& graph_;
  std::vector<graph::Region> regions_;
  std::vector<Step> steps_;
  std::vector<Unit> units_;
  // value id -> memory plan slot, or -1 for values not planned (graph
  // inputs, constants, graph outputs).
  std::vector<int> slot_of_value_;
  // value id -> index into Run's inputs (graph inputs, then outer-scope
  // values), or -1.
  std::vector<int> input_of_value_;
  MemoryPlan plan_;
  mutable std::unique_ptr<StepProfile[]> profiles_;
  // Runs the kernels' preparation; null when none has any. Declared last so
  // that it goes first: queued work is dropped and running work finishes
  // before the kernels it prepares are destroyed.
  std::unique_ptr<PreparationQueue> preparation_;
};

}  // namespace kiln::runtime
