// One sub-graph of a control-flow node, ready to run many times: its
// interpreter (kernels and memory plan built once) and the checks and
// copies every control-flow op needs around a body run.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graph/body_partitioner.h"
#include "graph/graph.h"
#include "graph/mutex.h"
#include "kernels/kernel.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "runtime/interpreter.h"

namespace kiln::runtime {

class SubgraphBody {
 public:
  // `capture_offset`: where this body's outer-scope values start among the
  // node's inputs. `what` names the body in errors ("node Loop 'l' body").
  // The regions `bodies` lists for this graph become units of its
  // interpreter, which the run's JIT tier serves (none when null); nested
  // bodies find theirs there too.
  static StatusOr<std::unique_ptr<SubgraphBody>> Create(const graph::Graph& graph,
                                                        const kernels::KernelRegistry& registry, size_t capture_offset,
                                                        std::string what,
                                                        const std::vector<graph::BodyRegions>* bodies = nullptr);

  const graph::Graph& graph() const { return graph_; }
  size_t num_inputs() const { return graph_.inputs().size(); }
  size_t num_outputs() const { return graph_.outputs().size(); }
  size_t capture_offset() const { return capture_offset_; }
  size_t num_captures() const { return graph_.outer_scope_values().size(); }
  const std::string& what() const { return what_; }

  std::unique_ptr<ExecutionFrame> NewFrame() const { return interpreter_->NewFrame(); }
  const Interpreter& interpreter() const { return *interpreter_; }

  // Appends the node's inputs this body reads from outside to `inputs`.
  void AppendCaptures(const kernels::KernelContext& ctx, std::vector<const Tensor*>& inputs) const;

  // Runs the body once. `inputs` are its formal inputs then its captures.
  // Each formal input is checked against what the body declares (dtype,
  // rank, fixed dims) first. Outputs that pass an input or a constant
  // through come back as views (Tensor::is_view or shared constants).
  Status Run(ExecutionFrame& frame, const std::vector<const Tensor*>& inputs, std::vector<Tensor>& outputs,
             const kernels::ParallelRunner& parallel, const RunHooks& hooks) const;

 private:
  SubgraphBody(const graph::Graph& graph, size_t capture_offset, std::string what)
      : graph_(graph), capture_offset_(capture_offset), what_(std::move(what)) {}

  const graph::Graph& graph_;
  const size_t capture_offset_;
  const std::string what_;
  std::unique_ptr<Interpreter> interpreter_;
};

// The hooks a body runs with: the enclosing run's limits, allocation hook,
// JIT tier (which serves the body's region units) and trace (a slice per
// unit of every iteration, nested in the control-flow node's), step
// profiling as the enclosing run has it, pass-through outputs borrowed.
RunHooks BodyRunHooks(const RunHooks& outer);

// Past the deadline, cancelled, or over the iteration cap: a Status naming
// `what` and how many iterations ran. Reads the clock only when a deadline
// is set.
Status CheckIterationLimits(const RunHooks& hooks, const std::string& what, int64_t iterations_done);

// `t` with memory of its own from `frame`'s output pool (recycled once the
// tensor is dropped): how a control-flow op keeps a value a body returned as
// a view of something that will not outlive the next iteration.
StatusOr<Tensor> OwnedCopy(const Tensor& t, ExecutionFrame& frame, const RunHooks& hooks);

// Copies `slice` into `out` at index `index` of axis `axis`, where out's dims
// are slice's with one dim inserted at `axis`.
void CopySliceInto(Tensor& out, int64_t axis, int64_t index, const Tensor& slice);

// A reusable byte buffer that grows (through the allocation hook) and never
// shrinks, for per-run state such as scan slices and loop scan outputs.
class GrowableBuffer {
 public:
  // At least `bytes`; growing keeps the contents, at least doubling the
  // capacity, so appending one iteration at a time allocates O(log n) times.
  StatusOr<void*> Reserve(size_t bytes, const RunHooks& hooks);
  void* data() { return storage_.raw_data(); }

 private:
  Tensor storage_;
  size_t capacity_ = 0;
};

// Index `index` of axis `axis` of `in` (that dim removed): a view when the
// slice is contiguous (axis 0, or all dims before it 1), else a copy in
// `buffer`.
StatusOr<Tensor> SliceAlong(const Tensor& in, int64_t axis, int64_t index, GrowableBuffer& buffer,
                            const RunHooks& hooks);

// Per-run state of a control-flow kernel, pooled: Acquire hands out an idle
// state (or a new one from `make`), Release gives it back.
template <typename State>
class StatePool {
 public:
  template <typename Make>
  std::unique_ptr<State> Acquire(const Make& make) const {
    {
      MutexLock lock(mutex_);
      if (!idle_.empty()) {
        std::unique_ptr<State> state = std::move(idle_.back());
        idle_.pop_back();
        return state;
      }
    }
    return make();
  }
  void Release(std::unique_ptr<State> state) const {
    MutexLock lock(mutex_);
    idle_.push_back(std::move(state));
  }

 private:
  mutable Mutex mutex_;
  mutable std::vector<std::unique_ptr<State>> idle_ KILN_GUARDED_BY(mutex_);
};

}  // namespace kiln::runtime
