#include "runtime/subgraph_body.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "kiln/sequence.h"
#include "runtime/value_kind_check.h"

namespace kiln::runtime {

StatusOr<std::unique_ptr<SubgraphBody>> SubgraphBody::Create(const graph::Graph& graph,
                                                             const kernels::KernelRegistry& registry,
                                                             size_t capture_offset, std::string what,
                                                             const std::vector<graph::BodyRegions>* bodies) {
  std::unique_ptr<SubgraphBody> body(new SubgraphBody(graph, capture_offset, std::move(what)));
  const graph::BodyRegions* own = bodies != nullptr ? graph::FindBodyRegions(*bodies, graph) : nullptr;
  auto interpreter =
      Interpreter::Create(graph, registry, own != nullptr ? own->regions : std::vector<graph::Region>{}, bodies);
  if (!interpreter.ok()) return interpreter.status().WithContext(body->what_);
  body->interpreter_ = std::move(interpreter).value();
  return body;
}

void SubgraphBody::AppendCaptures(const kernels::KernelContext& ctx, std::vector<const Tensor*>& inputs) const {
  for (size_t i = 0; i < num_captures(); ++i) inputs.push_back(ctx.input(static_cast<int>(capture_offset_ + i)));
}

Status SubgraphBody::Run(ExecutionFrame& frame, const std::vector<const Tensor*>& inputs, std::vector<Tensor>& outputs,
                         const kernels::ParallelRunner& parallel, const RunHooks& hooks) const {
  const auto& formal = graph_.inputs();
  for (size_t i = 0; i < formal.size(); ++i) {
    const graph::Value& v = graph_.value(formal[i]);
    const Tensor* t = inputs[i];
    if (t == nullptr || !t->defined()) return InvalidArgument(what_, ": input '", v.name, "' has no value");
    if (v.kind != graph::ValueKind::kTensor || t->dtype() == DType::kSequence) {
      KILN_RETURN_IF_ERROR(CheckValueOfKind(v, *t));
      continue;
    }
    if (v.dtype != DType::kUndefined && t->dtype() != v.dtype) {
      return InvalidArgument(what_, ": input '", v.name, "' is declared ", DTypeName(v.dtype), " but receives ",
                             DTypeName(t->dtype()), " ", DimsToString(t->dims()));
    }
    if (!v.shape.rank_known) continue;
    bool fits = static_cast<size_t>(t->rank()) == v.shape.dims.size();
    for (size_t d = 0; fits && d < v.shape.dims.size(); ++d) {
      fits = !v.shape.dims[d].is_concrete() || v.shape.dims[d].size == t->dim(static_cast<int64_t>(d));
    }
    if (!fits) {
      return InvalidArgument(what_, ": input '", v.name, "' is declared ", v.shape.ToString(), " but receives ",
                             DimsToString(t->dims()));
    }
  }
  for (size_t i = formal.size(); i < inputs.size(); ++i) {
    if (inputs[i] == nullptr) return Internal(what_, ": outer-scope input ", i - formal.size(), " is missing");
  }
  return interpreter_->Run(frame, inputs, outputs, parallel, hooks);
}

RunHooks BodyRunHooks(const RunHooks& outer) {
  RunHooks hooks;
  hooks.before_allocate = outer.before_allocate;
  hooks.profile = outer.profile;
  hooks.jit = outer.jit;
  hooks.trace = outer.trace;
  hooks.deadline = outer.deadline;
  hooks.cancel = outer.cancel;
  hooks.borrow_passthrough_outputs = true;
  hooks.max_loop_iterations = outer.max_loop_iterations;
  return hooks;
}

Status CheckIterationLimits(const RunHooks& hooks, const std::string& what, int64_t iterations_done) {
  if (iterations_done >= hooks.max_loop_iterations) {
    return ResourceExhausted(what, " stopped after ", iterations_done, " iterations, kiln's cap for one loop");
  }
  if (hooks.cancel != nullptr && hooks.cancel->load(std::memory_order_relaxed)) {
    return Cancelled("the run was cancelled in ", what, " after ", iterations_done, " iterations");
  }
  if (hooks.deadline != std::chrono::steady_clock::time_point::max() &&
      std::chrono::steady_clock::now() >= hooks.deadline) {
    return DeadlineExceeded("the run passed its deadline in ", what, " after ", iterations_done, " iterations");
  }
  return Status::Ok();
}

StatusOr<Tensor> OwnedCopy(const Tensor& t, ExecutionFrame& frame, const RunHooks& hooks) {
  if (t.dtype() == DType::kSequence) return CopySequence(t);  // shares the immutable elements
  const size_t bytes = t.byte_size();
  if (bytes == 0) return Tensor::Allocate(t.dtype(), t.dims());
  const auto admit = [&hooks](size_t n) {
    return hooks.before_allocate != nullptr ? (*hooks.before_allocate)(n) : Status::Ok();
  };
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> buffer, frame.output_pool->Acquire(bytes, admit));
  void* data = buffer.get();
  std::memcpy(data, t.raw_data(), bytes);
  return Tensor::Shared(t.dtype(), t.dims(), std::move(buffer), data);
}

void CopySliceInto(Tensor& out, int64_t axis, int64_t index, const Tensor& slice) {
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= slice.dim(d);
  const size_t inner = outer == 0 ? 0 : slice.byte_size() / static_cast<size_t>(outer);
  const auto length = static_cast<size_t>(out.dim(axis));
  auto* dst = static_cast<uint8_t*>(out.raw_data());
  const auto* src = static_cast<const uint8_t*>(slice.raw_data());
  for (int64_t o = 0; o < outer; ++o) {
    std::memcpy(dst + (static_cast<size_t>(o) * length + static_cast<size_t>(index)) * inner,
                src + static_cast<size_t>(o) * inner, inner);
  }
}

StatusOr<void*> GrowableBuffer::Reserve(size_t bytes, const RunHooks& hooks) {
  if (bytes > capacity_ || !storage_.defined()) {
    if (hooks.before_allocate != nullptr) KILN_RETURN_IF_ERROR((*hooks.before_allocate)(bytes));
    // Doubling keeps growth to a logarithmic number of allocations when a
    // loop's scan outputs grow one iteration at a time.
    const size_t capacity = std::max(bytes, capacity_ * 2);
    KILN_ASSIGN_OR_RETURN(Tensor grown,
                          Tensor::Allocate(DType::kUint8, {static_cast<int64_t>(std::max<size_t>(capacity, 1))}));
    if (capacity_ > 0) std::memcpy(grown.raw_data(), storage_.raw_data(), capacity_);
    storage_ = std::move(grown);
    capacity_ = capacity;
  }
  return storage_.raw_data();
}

StatusOr<Tensor> SliceAlong(const Tensor& in, int64_t axis, int64_t index, GrowableBuffer& buffer,
                            const RunHooks& hooks) {
  Dims dims = in.dims();
  const int64_t length = dims[static_cast<size_t>(axis)];
  dims.erase(dims.begin() + axis);
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= in.dim(d);
  const size_t slice_bytes = static_cast<size_t>(length == 0 ? 0 : static_cast<int64_t>(in.byte_size()) / length);
  const size_t inner = outer == 0 ? 0 : slice_bytes / static_cast<size_t>(outer);
  const auto* src = static_cast<const uint8_t*>(in.raw_data());
  if (outer == 1) {
    return Tensor::View(in.dtype(), std::move(dims), const_cast<uint8_t*>(src) + static_cast<size_t>(index) * inner);
  }
  KILN_ASSIGN_OR_RETURN(void* raw, buffer.Reserve(slice_bytes, hooks));
  auto* dst = static_cast<uint8_t*>(raw);
  for (int64_t o = 0; o < outer; ++o) {
    std::memcpy(dst + static_cast<size_t>(o) * inner,
                src + (static_cast<size_t>(o) * static_cast<size_t>(length) + static_cast<size_t>(index)) * inner,
                inner);
  }
  return Tensor::View(in.dtype(), std::move(dims), raw);
}

}  // namespace kiln::runtime
