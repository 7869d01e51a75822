#include "kiln/session.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include "graph/body_partitioner.h"
#include "graph/log.h"
#include "graph/mutex.h"
#include "graph/partitioner.h"
#include "kernels/kernel.h"
#include "runtime/host_cpu.h"
#include "runtime/interpreter.h"
#include "runtime/jit_tier.h"
#include "runtime/model_internal.h"
#include "runtime/openmp_runner.h"
#include "runtime/thread_budget.h"
#include "runtime/tier_trial.h"
#include "runtime/trace_recorder.h"
#include "runtime/value_kind_check.h"

namespace kiln {

struct Session::Impl {
  std::shared_ptr<const Model> model;
  SessionOptions options;
  std::shared_ptr<ThreadBudget> budget;
  // runners[k] runs loops on k + 1 threads: a run uses the one for the
  // threads its budget granted.
  std::vector<std::unique_ptr<kernels::ParallelRunner>> runners;
  std::unique_ptr<runtime::Interpreter> interpreter;
  // Null unless SessionOptions::enable_tracing. Declared before `jit`, whose
  // compile threads record into it, so it outlives them.
  std::unique_ptr<runtime::TraceRecorder> trace;
  // Null with TierPolicy::kInterpreter or when no JIT could be built.
  std::unique_ptr<runtime::JitTier> jit;

  // Frames are reused across runs; concurrent runs each take their own.
  mutable Mutex frames_mu;
  mutable std::vector<std::unique_ptr<runtime::ExecutionFrame>> idle_frames KILN_GUARDED_BY(frames_mu);
  mutable std::atomic<int64_t> runs{0};
  mutable std::atomic<int64_t> peak_planned_bytes{0};
  mutable std::atomic<int64_t> unplanned_bytes{0};

  std::unique_ptr<runtime::ExecutionFrame> AcquireFrame() const {
    MutexLock lock(frames_mu);
    if (idle_frames.empty()) return interpreter->NewFrame();
    auto frame = std::move(idle_frames.back());
    idle_frames.pop_back();
    return frame;
  }
  void ReleaseFrame(std::unique_ptr<runtime::ExecutionFrame> frame) const {
    MutexLock lock(frames_mu);
    idle_frames.push_back(std::move(frame));
  }

  // RunOptions::output_names, resolved: graph output indices and the units
  // they need, per distinct request, built once.
  struct OutputSelection {
    std::vector<size_t> indices;
    std::vector<bool> units_needed;
  };
  mutable Mutex selections_mu;
  mutable std::map<std::vector<size_t>, std::shared_ptr<const OutputSelection>> selections
      KILN_GUARDED_BY(selections_mu);

  Status BindInputs(const std::vector<NamedTensor>& given, std::vector<const Tensor*>& bound) const;
  StatusOr<std::shared_ptr<const OutputSelection>> SelectOutputs(const std::vector<std::string>& names) const;
  Status BindOutputs(const RunOptions& options, runtime::RunHooks& hooks) const;
};

namespace {

void UpdateMax(std::atomic<int64_t>& target, int64_t value) {
  int64_t cur = target.load(std::memory_order_relaxed);
  while (value > cur && !target.compare_exchange_weak(cur, value, std::memory_order_relaxed)) {
  }
}

}  // namespace

// Every check happens before anything runs, so a bad request changes nothing.
Status Session::Impl::BindInputs(const std::vector<NamedTensor>& given, std::vector<const Tensor*>& bound) const {
  const graph::Graph& g = ModelGraph(*model);
  const auto& infos = model->inputs();
  bound.assign(infos.size(), nullptr);
  for (const NamedTensor& nt : given) {
    auto it = std::find_if(infos.begin(), infos.end(), [&](const TensorInfo& i) { return i.name == nt.name; });
    if (it == infos.end()) {
      std::string names;
      for (const auto& i : infos) names += (names.empty() ? "'" : ", '") + i.name + "'";
      return InvalidArgument("unknown input '", nt.name, "'; the model's inputs are ", names);
    }
    size_t idx = static_cast<size_t>(it - infos.begin());
    if (bound[idx] != nullptr) return InvalidArgument("input '", nt.name, "' is given more than once");
    bound[idx] = &nt.tensor;
  }
  // Symbolic dims must agree across inputs (e.g. every "batch" the same).
  std::map<std::string, std::pair<int64_t, std::string>> symbols;
  for (size_t i = 0; i < infos.size(); ++i) {
    const TensorInfo& info = infos[i];
    const Tensor* t = bound[i];
    if (t == nullptr) return InvalidArgument("missing input '", info.name, "'");
    if (!t->defined()) return InvalidArgument("input '", info.name, "' is an empty (undefined) tensor");
    if (info.is_sequence || info.is_optional || t->dtype() == DType::kSequence) {
      Status s = runtime::CheckValueOfKind(g.value(g.inputs()[i]), *t);
      if (!s.ok()) return InvalidArgument("input ", s.message());
      if (IsNoneOptional(*t) || IsSequence(*t)) continue;
    }
    if (t->dtype() != info.dtype) {
      return InvalidArgument("input '", info.name, "' has dtype ", DTypeName(t->dtype()), ", expected ",
                             DTypeName(info.dtype));
    }
    auto count = CheckedNumElements(t->dims(), t->dtype());
    if (!count.ok()) return count.status().WithContext("input '" + info.name + "'");
    if (*count > 0 && t->raw_data() == nullptr) return InvalidArgument("input '", info.name, "' has no data");
    if (!info.rank_known) continue;
    if (t->rank() != static_cast<int64_t>(info.dims.size())) {
      return InvalidArgument("input '", info.name, "' has rank ", t->rank(), " (shape ", DimsToString(t->dims()),
                             "), expected rank ", info.dims.size(), " (shape ", g.value(g.inputs()[i]).shape.ToString(),
                             ")");
    }
    for (size_t d = 0; d < info.dims.size(); ++d) {
      const int64_t actual = t->dim(static_cast<int64_t>(d));
      if (info.dims[d] >= 0 && actual != info.dims[d]) {
        return InvalidArgument("input '", info.name, "' has shape ", DimsToString(t->dims()), ", expected ",
                               g.value(g.inputs()[i]).shape.ToString(), " (dim ", d, " must be ", info.dims[d], ")");
      }
      const std::string& sym = info.dim_names[d];
      if (info.dims[d] < 0 && !sym.empty()) {
        auto [pos, inserted] = symbols.emplace(sym, std::make_pair(actual, info.name));
        if (!inserted && pos->second.first != actual) {
          return InvalidArgument("dimension '", sym, "' is ", actual, " in input '", info.name, "' but ",
                                 pos->second.first, " in input '", pos->second.second, "'");
        }
      }
    }
  }
  return Status::Ok();
}

StatusOr<std::shared_ptr<const Session::Impl::OutputSelection>> Session::Impl::SelectOutputs(
    const std::vector<std::string>& names) const {
  const auto& infos = model->outputs();
  std::vector<size_t> indices;
  for (const std::string& name : names) {
    auto it = std::find_if(infos.begin(), infos.end(), [&](const TensorInfo& i) { return i.name == name; });
    if (it == infos.end()) {
      std::string known;
      for (const auto& i : infos) known += (known.empty() ? "'" : ", '") + i.name + "'";
      return InvalidArgument("unknown output '", name, "'; the model's outputs are ", known);
    }
    const size_t index = static_cast<size_t>(it - infos.begin());
    if (std::find(indices.begin(), indices.end(), index) != indices.end()) {
      return InvalidArgument("output '", name, "' is asked for more than once");
    }
    indices.push_back(index);
  }
  MutexLock lock(selections_mu);
  auto found = selections.find(indices);
  if (found != selections.end()) return found->second;
  // Requests name few distinct output sets; a caller cycling through many
  // still stays bounded.
  constexpr size_t kMaxSelections = 64;
  if (selections.size() >= kMaxSelections) selections.clear();
  auto selection = std::make_shared<OutputSelection>();
  selection->units_needed = interpreter->UnitsNeededFor(indices);
  selection->indices = indices;
  selections.emplace(std::move(indices), selection);
  return std::shared_ptr<const OutputSelection>(std::move(selection));
}

// Checks what can be checked before the run: names, dtypes, memory. Shapes
// are checked when the output is allocated, once the run knows them.
Status Session::Impl::BindOutputs(const RunOptions& options, runtime::RunHooks& hooks) const {
  const graph::Graph& g = ModelGraph(*model);
  const auto& infos = model->outputs();
  for (const NamedTensor& nt : options.bound_outputs) {
    auto it = std::find_if(infos.begin(), infos.end(), [&](const TensorInfo& i) { return i.name == nt.name; });
    if (it == infos.end()) return InvalidArgument("a tensor is bound to '", nt.name, "', which is not an output");
    const size_t index = static_cast<size_t>(it - infos.begin());
    if (hooks.output_indices != nullptr &&
        std::find(hooks.output_indices->begin(), hooks.output_indices->end(), index) == hooks.output_indices->end()) {
      return InvalidArgument("a tensor is bound to output '", nt.name, "', which output_names does not ask for");
    }
    const graph::ValueId id = g.outputs()[index];
    for (const auto& [bound_id, tensor] : hooks.bound_outputs) {
      if (bound_id == id) return InvalidArgument("output '", nt.name, "' is bound more than once");
    }
    if (nt.tensor.dtype() != it->dtype) {
      return InvalidArgument("the tensor bound to output '", nt.name, "' is ", DTypeName(nt.tensor.dtype()),
                             ", the output is ", DTypeName(it->dtype));
    }
    if (nt.tensor.num_elements() > 0 && nt.tensor.raw_data() == nullptr) {
      return InvalidArgument("the tensor bound to output '", nt.name, "' has no memory");
    }
    hooks.bound_outputs.emplace_back(id, &nt.tensor);
  }
  return Status::Ok();
}

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

StatusOr<std::unique_ptr<Session>> Session::Create(std::shared_ptr<const Model> model, const SessionOptions& options) {
  KILN_RETURN_IF_ERROR(CheckHostCpu());
  if (model == nullptr) return InvalidArgument("Session::Create needs a model");
  if (options.intra_op_threads < 0)
    return InvalidArgument("intra_op_threads must be >= 0, got ", options.intra_op_threads);
  if (!options.log_level.empty() && !SetLogLevel(options.log_level)) {
    return InvalidArgument("unknown log level '", options.log_level, "'");
  }
  auto impl = std::make_unique<Impl>();
  impl->model = std::move(model);
  impl->options = options;
  if (impl->options.intra_op_threads == 0) {
    impl->options.intra_op_threads = runtime::HostCores();
  }
  const graph::Graph& graph = ModelGraph(*impl->model);
  if (options.enable_tracing) impl->trace = std::make_unique<runtime::TraceRecorder>();
  std::vector<graph::Region> regions;
  // Regions inside If branches and Loop/Scan bodies: their ids follow the
  // top level's, so one tier profiles and compiles them all.
  std::vector<graph::BodyRegions> bodies;
  if (options.tier != TierPolicy::kInterpreter) {
    graph::PartitionOptions partition;
    partition.min_region_nodes = std::max(1, options.jit_min_region_nodes);
    partition.gemm_regions = options.jit_compile_gemm;
    partition.depthwise_regions = options.jit_compile_depthwise;
    partition.attention_regions = options.jit_compile_attention;
    KILN_ASSIGN_OR_RETURN(regions, graph::PartitionGraph(graph, partition));
    KILN_ASSIGN_OR_RETURN(bodies, graph::PartitionBodies(graph, partition, static_cast<int>(regions.size())));
  }
  impl->budget = options.thread_budget ? options.thread_budget : ThreadBudget::Create();
  const int max_threads = std::min(impl->options.intra_op_threads, impl->budget->threads());
  KILN_ASSIGN_OR_RETURN(impl->interpreter, runtime::Interpreter::Create(graph, kernels::DefaultKernelRegistry(),
                                                                        regions, &bodies, max_threads));
  // Runs before the background preparation (packing, oneDNN primitives)
  // finishes compute some ops another way (a different order of sums), so
  // their results can depend on timing. Bitwise equivalence promises results
  // that depend on nothing but the inputs: wait for it here.
  if (options.jit_bitwise_equivalent) impl->interpreter->WaitForPreparation();
  for (int t = 1; t <= max_threads; ++t) impl->runners.push_back(runtime::MakeIntraOpRunner(t));
  if (!regions.empty() || !bodies.empty()) {
    runtime::JitTierHooks jit_hooks;
    jit_hooks.trace = impl->trace.get();
    // Every core serves when the budget's threads in use reach the core
    // count (a budget smaller than the machine never fills it: compiles
    // then have a core of their own).
    const int cores = runtime::HostCores();
    jit_hooks.cores_busy = [budget = impl->budget, cores] { return budget->in_use() >= cores; };
    auto jit = runtime::JitTier::Create(graph, std::move(regions), options, std::move(jit_hooks), bodies);
    if (jit.ok()) {
      impl->jit = std::move(jit).value();
      Log().info("session: {} regions eligible for the JIT tier (policy '{}')", impl->jit->regions().size(),
                 TierPolicyName(options.tier));
    } else {
      // No JIT on this host: everything runs interpreted, which is correct.
      Log().warn("session: JIT tier unavailable, running interpreted: {}", jit.status().ToString());
    }
  }
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

StatusOr<std::vector<NamedTensor>> Session::Run(const std::vector<NamedTensor>& inputs) const {
  return Run(inputs, RunOptions());
}

StatusOr<std::vector<NamedTensor>> Session::Run(const std::vector<NamedTensor>& inputs,
                                                const RunOptions& options) const {
  // The clock is read only for the trace's run slice.
  const auto run_start =
      impl_->trace ? runtime::TraceRecorder::Clock::now() : runtime::TraceRecorder::Clock::time_point();
  std::vector<const Tensor*> bound;
  KILN_RETURN_IF_ERROR(impl_->BindInputs(inputs, bound));
  runtime::RunHooks hooks;
  std::shared_ptr<const Impl::OutputSelection> selection;
  if (!options.output_names.empty()) {
    KILN_ASSIGN_OR_RETURN(selection, impl_->SelectOutputs(options.output_names));
    hooks.output_indices = &selection->indices;
    hooks.units_needed = &selection->units_needed;
  }
  KILN_RETURN_IF_ERROR(impl_->BindOutputs(options, hooks));
  hooks.deadline = options.deadline;
  hooks.cancel = options.cancel;
  hooks.profile = impl_->options.enable_profiling;
  hooks.jit = impl_->jit.get();
  hooks.trace = impl_->trace.get();
  if (impl_->options.before_allocate_hook) hooks.before_allocate = &impl_->options.before_allocate_hook;

  ThreadBudget::Impl& budget = impl_->budget->impl();
  KILN_ASSIGN_OR_RETURN(int threads,
                        budget.Acquire(static_cast<int>(impl_->runners.size()), options.deadline, options.cancel));
  runtime::ThreadGrant grant(budget, threads);
  // oneDNN runs on OpenMP; its team size is a per-thread setting, so set it
  // on the calling thread to the threads this run was granted.
  if (omp_get_max_threads() != threads) omp_set_num_threads(threads);

  auto frame = impl_->AcquireFrame();
  std::vector<Tensor> outputs;
  Status status =
      impl_->interpreter->Run(*frame, bound, outputs, *impl_->runners[static_cast<size_t>(threads - 1)], hooks);
  UpdateMax(impl_->peak_planned_bytes, frame->SlotBytes());
  UpdateMax(impl_->unplanned_bytes, frame->run_unplanned_bytes);
  impl_->ReleaseFrame(std::move(frame));
  if (impl_->trace) {
    impl_->trace->AddSlice(options.tag.empty() ? "run" : "run " + options.tag, "run", run_start,
                           runtime::TraceRecorder::Clock::now());
  }
  KILN_RETURN_IF_ERROR(status);
  impl_->runs.fetch_add(1, std::memory_order_relaxed);

  std::vector<NamedTensor> named;
  named.reserve(outputs.size());
  const auto& infos = impl_->model->outputs();
  for (size_t i = 0; i < outputs.size(); ++i) {
    const size_t index = selection ? selection->indices[i] : i;
    named.push_back({infos[index].name, std::move(outputs[i])});
  }
  return named;
}

Status Session::WriteTrace(const std::string& path) const {
  if (!impl_->trace) return InvalidArgument("tracing is off: set SessionOptions::enable_tracing");
  std::ofstream out(path);
  out << impl_->trace->ToChromeJson();
  if (!out) return IoError("cannot write trace file '", path, "'");
  return Status::Ok();
}

Status Session::WarmUp(const std::vector<std::map<std::string, Dims>>& shapes,
                       std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Build every input set first, so a bad shape fails before anything runs.
  const std::vector<TensorInfo>& infos = impl_->model->inputs();
  std::vector<std::vector<NamedTensor>> input_sets;
  for (const auto& given : shapes) {
    for (const auto& [name, dims] : given) {
      if (std::none_of(infos.begin(), infos.end(), [&](const TensorInfo& i) { return i.name == name; })) {
        return InvalidArgument("WarmUp: the model has no input '", name, "'");
      }
    }
    std::vector<NamedTensor> inputs;
    for (const TensorInfo& info : infos) {
      Dims dims = info.dims;
      if (auto it = given.find(info.name); it != given.end()) {
        dims = it->second;
      } else if (!info.rank_known || std::any_of(dims.begin(), dims.end(), [](int64_t d) { return d < 0; })) {
        return InvalidArgument("WarmUp: input '", info.name, "' has dims that are not fixed; give its shape");
      }
      KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Allocate(info.dtype, dims));
      if (t.byte_size() > 0) std::memset(t.raw_data(), 0, t.byte_size());
      inputs.push_back({info.name, std::move(t)});
    }
    input_sets.push_back(std::move(inputs));
  }
  if (!impl_->jit) return Status::Ok();
  // The tier's protocol for a signature, call by call: hot after
  // jit_hot_threshold interpreted calls; then (once compiled) the
  // verification calls; then the trial, alternating tiers until each has
  // its samples. Running that many calls per shape settles the signature
  // whatever the verdict (kept, dropped, failed, or skipped for payback).
  const SessionOptions& o = impl_->options;
  const int settle_calls = std::max(0, o.jit_verify_calls) + 2 * runtime::TierTrial::kSamples + 1;
  RunOptions run;
  run.deadline = deadline;
  run.tag = "warm-up";
  for (const auto& inputs : input_sets) {
    for (int i = 0; i < std::max(1, o.jit_hot_threshold); ++i) KILN_RETURN_IF_ERROR(Run(inputs, run).status());
    impl_->jit->WaitForCompiles();
    for (int i = 0; i < settle_calls; ++i) KILN_RETURN_IF_ERROR(Run(inputs, run).status());
  }
  return Status::Ok();
}

void Session::WaitForCompiles() const {
  if (impl_->jit) impl_->jit->WaitForCompiles();
}

const Model& Session::model() const { return *impl_->model; }
const SessionOptions& Session::options() const { return impl_->options; }

SessionStats Session::stats() const {
  SessionStats stats;
  stats.peak_planned_bytes = impl_->peak_planned_bytes.load();
  stats.unplanned_bytes = impl_->unplanned_bytes.load();
  {
    MutexLock lock(impl_->frames_mu);
    for (const auto& frame : impl_->idle_frames) {
      stats.pooled_output_bytes += static_cast<int64_t>(frame->output_pool->pooled_bytes());
    }
  }
  stats.runs = impl_->runs.load();
  if (impl_->jit) {
    stats.regions = impl_->jit->Stats();
    impl_->jit->AddCacheStats(stats);
  }
  if (impl_->options.enable_profiling) {
    impl_->interpreter->AppendProfiles("", stats.nodes);
  }
  return stats;
}

}  // namespace kiln
