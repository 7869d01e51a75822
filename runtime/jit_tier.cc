#include "runtime/jit_tier.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "graph/gemm_pattern.h"
#include "graph/log.h"
#include "jit/compiled_region.h"
#include "jit/gemm_codegen.h"
#include "jit/ir_perturbation.h"
#include "jit/jit_compiler.h"
#include "jit/region_compiler.h"
#include "runtime/lazy_jit_compiler.h"
#include "runtime/output_comparison.h"
#include "runtime/trace_recorder.h"

namespace kiln::runtime {
namespace {

// Signatures that never turn hot would grow a region's profile forever:
// past this many, its counts start over (a truly hot shape soon counts up
// again).
constexpr size_t kMaxProfiledSignatures = 256;

// A region's description for logs, with the body it sits in.
std::string Described(const graph::Region& region) {
  return region.path.empty() ? region.reason : region.reason + ", in " + region.path;
}

// A verification call's view of the region call, for the compiled run:
// inputs and threads are the call's, but outputs go to buffers of its own,
// so nothing the code computes can reach the request before it is checked.
// (These buffers skip SessionOptions::before_allocate_hook: they are the
// tier's, like JIT code, and live for one verification call.)
class CapturingCall final : public RegionCall {
 public:
  // `prepared`: buffers the compile thread allocated and touched for the
  // outputs (or empty), used where dtype and dims match.
  CapturingCall(RegionCall& call, const graph::Graph& graph, const graph::Region& region,
                std::vector<Tensor> prepared = {})
      : call_(call),
        graph_(graph),
        region_(region),
        prepared_(std::move(prepared)),
        outputs_(region.outputs.size()),
        written_(outputs_.size()) {}

  const Tensor& input(size_t i) const override { return call_.input(i); }
  StatusOr<void*> AllocateOutput(size_t o, const Dims& dims) override {
    const DType dtype = graph_.value(region_.outputs[o]).dtype;
    if (o < prepared_.size() && prepared_[o].dtype() == dtype && prepared_[o].dims() == dims) {
      outputs_[o] = std::move(prepared_[o]);
      written_[o] = true;
      return outputs_[o].raw_data();
    }
    KILN_ASSIGN_OR_RETURN(outputs_[o], Tensor::Allocate(dtype, dims));
    written_[o] = true;
    return outputs_[o].raw_data();
  }
  const Tensor& output(size_t o) const override { return outputs_[o]; }
  Status RunInterpreted() override { return Internal("a verification call runs only compiled code into its buffers"); }
  const kernels::ParallelRunner& parallel() const override { return call_.parallel(); }
  std::unique_ptr<RegionScratch>& scratch() override { return call_.scratch(); }

  bool has_output(size_t o) const { return written_[o]; }

 private:
  RegionCall& call_;
  const graph::Graph& graph_;
  const graph::Region& region_;
  std::vector<Tensor> prepared_;
  std::vector<Tensor> outputs_;
  std::vector<bool> written_;
};

}  // namespace

// An immutable list of specializations; replaced whole on every publish.
struct JitTier::Table {
  std::vector<std::shared_ptr<const Specialization>> specs;
};

struct JitTier::RegionState {
  RegionState() {
    tables.push_back(std::make_unique<const Table>());
    table.store(tables.back().get(), std::memory_order_release);
  }

  // The current table, read without a lock. A replaced table is kept in
  // `tables` until the tier is destroyed, so a caller may go on using the
  // table it loaded, and the code its entries hold, for as long as it runs.
  // (std::atomic<std::shared_ptr> would free them sooner, but libstdc++ 12's
  // load releases its internal lock with a relaxed store, which orders
  // nothing: ThreadSanitizer rightly reports its read of the pointer against
  // a later store.) Tables are a few pointers each, one per publish.
  std::atomic<const Table*> table{nullptr};
  std::atomic<int64_t> interpreted_calls{0};
  std::atomic<int64_t> compiled_calls{0};
  std::atomic<int64_t> interpreted_ns{0};  // wall time of the calls, per tier
  std::atomic<int64_t> compiled_ns{0};
  std::atomic<int64_t> deopts{0};
  std::atomic<double> compiled_flops{0};

  // Guards the profile and compile bookkeeping below. Publishing a table
  // also happens under it, so writers are serialised; readers never take it.
  Mutex mu;
  // Interpreted calls per signature and their wall time (the time is what
  // the break-even gate projects a saving from).
  struct SignatureProfile {
    int64_t calls = 0;
    int64_t ns = 0;
    // The fastest call: what the code's calls save is credited against it
    // (a first call does one-off work the mean would count as saved).
    int64_t min_ns = std::numeric_limits<int64_t>::max();
  };
  BoundedMap<ShapeSignature, SignatureProfile> calls_by_signature KILN_GUARDED_BY(mu){kMaxProfiledSignatures};
  // Queued, compiled or failed: never compiled twice.
  std::set<ShapeSignature> requested KILN_GUARDED_BY(mu);
  // Signatures whose specialization lost its trial: interpreted by choice,
  // so their calls are not deopts.
  std::set<ShapeSignature> declined KILN_GUARDED_BY(mu);
  bool generic_requested KILN_GUARDED_BY(mu) = false;
  // Compile the shape-generic version at once: a GEMM whose M is symbolic
  // would otherwise compile (and pack its weight) once per sequence length.
  bool generic_first = false;
  int failed_compiles KILN_GUARDED_BY(mu) = 0;
  int reused_code KILN_GUARDED_BY(mu) = 0;
  double compile_ms KILN_GUARDED_BY(mu) = 0;
  int64_t code_bytes KILN_GUARDED_BY(mu) = 0;
  int64_t packed_weight_bytes KILN_GUARDED_BY(mu) = 0;
  // Code unpublished because it computed something else than the
  // interpreter (shadow verification), and the signatures it failed on,
  // interpreted from then on by choice.
  int verify_failures KILN_GUARDED_BY(mu) = 0;
  std::set<ShapeSignature> failed_verification KILN_GUARDED_BY(mu);
  // Signatures not compiled because their projected payback exceeded the
  // horizon: interpreted by choice from then on (not reconsidered, so the
  // reason is logged once).
  std::set<ShapeSignature> payback_skipped KILN_GUARDED_BY(mu);
  // Every version compiled, in compile order, dropped ones included.
  std::vector<std::shared_ptr<const BreakEvenLedger>> ledgers KILN_GUARDED_BY(mu);
  // Output buffers for the next verification call, allocated and touched
  // by the compile thread: the verifying request would otherwise fault in
  // fresh pages for them (1024 faults for a 4 MiB output). Taken by that
  // call; a mismatch in dims (another signature) allocates as before.
  std::vector<Tensor> verification_outputs KILN_GUARDED_BY(mu);

  // Every table published, the current one last.
  std::vector<std::unique_ptr<const Table>> tables KILN_GUARDED_BY(mu);

  // Copy-on-write: callers already inside `spec` keep using it (their
  // table stays).
  void Unpublish(const Specialization& spec) KILN_REQUIRES(mu) {
    auto next = std::make_unique<Table>();
    for (const auto& s : table.load(std::memory_order_acquire)->specs) {
      if (s.get() != &spec) next->specs.push_back(s);
    }
    Publish(std::move(next));
  }
  void Publish(std::unique_ptr<const Table> next) KILN_REQUIRES(mu) {
    table.store(next.get(), std::memory_order_release);
    tables.push_back(std::move(next));
  }
};

JitTier::JitTier(const graph::Graph& graph, std::vector<graph::Region> regions, const SessionOptions& options,
                 JitTierHooks hooks)
    : regions_(std::move(regions)),
      graph_of_(regions_.size(), &graph),
      options_(options),
      hooks_(std::move(hooks)),
      hot_threshold_(options.tier == TierPolicy::kJit ? 1 : std::max(1, options.jit_hot_threshold)),
      max_specializations_(std::max(0, options.jit_max_specializations)),
      blocking_(options.tier == TierPolicy::kJit) {}

JitTier::~JitTier() {
  // A compile waiting for its share must not hold up the queue's join.
  if (scheduler_) scheduler_->Stop();
}

StatusOr<std::unique_ptr<JitTier>> JitTier::Create(const graph::Graph& graph, std::vector<graph::Region> regions,
                                                   const SessionOptions& options, JitTierHooks hooks,
                                                   const std::vector<graph::BodyRegions>& bodies) {
  std::unique_ptr<JitTier> tier(new JitTier(graph, std::move(regions), options, std::move(hooks)));
  for (const graph::BodyRegions& body : bodies) {
    for (const graph::Region& region : body.regions) {
      if (region.id != static_cast<int>(tier->regions_.size())) {
        return Internal("jit: region ", region.id, " in ", body.path, " comes at position ", tier->regions_.size(),
                        "; body region ids must continue the top level's");
      }
      tier->regions_.push_back(region);
      tier->graph_of_.push_back(body.body);
    }
  }
  jit::JitOptions jit_options;
  jit_options.dump_dir = options.jit_dump_dir;
  jit_options.cache_dir = options.jit_cache_dir;
  if (jit_options.cache_dir.empty()) {
    if (const char* env = std::getenv("KILN_JIT_CACHE"); env != nullptr) jit_options.cache_dir = env;
  }
  const std::string cache_dir = jit_options.cache_dir;
  jit_options.cache_max_bytes = options.jit_cache_max_bytes;
  jit_options.bit_exact = options.jit_bitwise_equivalent;
  if (options.jit_test_perturb_ir) {
    jit_options.rewrite_ir = [](llvm::Module& module) { jit::PerturbFloatAdds(module); };
  }
  const double share = options.jit_compile_cpu_share;
  const bool paced = !tier->blocking_ && share > 0 && share < 1 && tier->hooks_.cores_busy;
  if (paced) {
    tier->scheduler_ =
        std::make_unique<CompileScheduler>(share, CompileScheduler::Environment::Real(tier->hooks_.cores_busy));
    jit_options.yield_point = [scheduler = tier->scheduler_.get()] { scheduler->YieldPoint(); };
  }
  tier->compiler_ = std::make_unique<LazyJitCompiler>(std::move(jit_options));
  tier->states_.reset(new RegionState[tier->regions_.size()]);
  for (size_t r = 0; r < tier->regions_.size(); ++r) {
    const graph::Region& region = tier->regions_[r];
    const graph::Graph& region_graph = *tier->graph_of_[r];
    if (region.kind == graph::RegionKind::kAttention) {
      // Attention code takes the sequence lengths as parameters: with a
      // symbolic one, compile the version that serves them all at once.
      for (graph::ValueId in : region.inputs) {
        if (!region_graph.value(in).shape.is_concrete()) tier->states_[r].generic_first = true;
      }
      continue;
    }
    if (region.kind != graph::RegionKind::kGemm) continue;
    const std::optional<graph::GemmPattern> gemm = graph::AsGemm(region_graph, region_graph.node(region.nodes[0]));
    tier->states_[r].generic_first = gemm && !region_graph.value(gemm->a).shape.is_concrete();
  }
  if (!tier->blocking_) {
    // Paced compiles (and a share of 1) run at normal priority: the
    // scheduler, not the kernel, keeps them off the requests' cores. Unpaced
    // ones (a share of 0 or less, or no activity to pace by) keep the low
    // priority.
    tier->queue_ = std::make_unique<CompileQueue>(std::max(1, options.jit_compile_threads),
                                                  /*low_priority=*/!paced && share < 1);
    // The code cache keeps code; the hot set says which of it this model
    // used, so a new process links it before its regions turn hot again.
    if (!cache_dir.empty() && !options.jit_test_perturb_ir && !tier->regions_.empty()) {
      tier->hot_set_ = std::make_unique<HotSetManifest>(cache_dir);
      // First in the queue, so it runs before any compile a hot region asks
      // for; the compiles it queues follow those already asked for.
      tier->queue_->Enqueue([t = tier.get(), g = &graph] {
        t->hot_set_->Bind(HotSetManifest::Fingerprint(*g, t->regions_));
        t->QueueHotSet();
      });
    }
  }
  return tier;
}

void JitTier::QueueHotSet() const {
  int queued = 0, skipped = 0;
  for (const HotSetManifest::Entry& entry : hot_set_->Read()) {
    if (entry.region < 0 || entry.region >= static_cast<int>(regions_.size()) ||
        !SignatureFitsRegion(GraphOf(entry.region), regions_[static_cast<size_t>(entry.region)], entry.signature)) {
      ++skipped;
      continue;
    }
    RegionState& state = states_[entry.region];
    {
      MutexLock lock(state.mu);
      // The limits RunInterpreted keeps: the generic version once, and at
      // most max_specializations_ specialised ones (none for a region that
      // starts generic).
      if (entry.generic) {
        if (state.generic_requested) continue;
        state.generic_requested = true;
        state.calls_by_signature.Clear();
      } else {
        if (state.generic_first || state.requested.count(entry.signature) ||
            static_cast<int>(state.requested.size()) >= max_specializations_) {
          continue;
        }
        state.requested.insert(entry.signature);
      }
    }
    Log().debug("jit: region {} {} {} queued from the hot set", entry.region,
                entry.generic ? "generic version planned on" : "for", entry.signature.ToString());
    queue_->Enqueue([this, entry] { Compile(entry.region, entry.signature, entry.generic); });
    ++queued;
  }
  if (queued + skipped > 0) {
    Log().info("jit: {} compiles queued from the hot set {} ({} entries that do not fit this model skipped)", queued,
               hot_set_->path(), skipped);
  }
}

int64_t JitTier::NowNs() const {
  if (hooks_.now_ns) return hooks_.now_ns();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::shared_ptr<const Specialization> JitTier::Lookup(int region, const ShapeSignature& signature) const {
  const Table* table = states_[region].table.load(std::memory_order_acquire);
  const graph::Region& r = regions_[static_cast<size_t>(region)];
  const std::shared_ptr<const Specialization>* generic = nullptr;
  for (const auto& spec : table->specs) {
    if (spec->generic) {
      generic = &spec;
    } else if (spec->Serves(r, signature)) {
      return spec;
    }
  }
  return generic != nullptr && (*generic)->Serves(r, signature) ? *generic : nullptr;
}

StatusOr<ServedBy> JitTier::Run(int region_id, RegionCall& call) const {
  const graph::Region& region = regions_[static_cast<size_t>(region_id)];
  std::unique_ptr<RegionScratch>& slot = call.scratch();
  if (slot == nullptr) slot = std::make_unique<CompiledCallScratch>();
  auto& scratch = static_cast<CompiledCallScratch&>(*slot);
  ShapeSignature& signature = scratch.signature;
  signature.dims.resize(region.inputs.size());
  for (size_t i = 0; i < region.inputs.size(); ++i) signature.dims[i] = call.input(i).dims();

  std::shared_ptr<const Specialization> spec = Lookup(region_id, signature);
  if (spec == nullptr) {
    KILN_RETURN_IF_ERROR(RunInterpreted(region_id, call, signature));
    return ServedBy::kInterpreter;
  }
  // Generic row code is planned per signature (remembered); shapes it does
  // not lay out the same way, or loses to the interpreter on, are
  // interpreted.
  std::shared_ptr<const Specialization::RowCall> row_call;
  if (spec->generic && Specialization::PlannedPerSignature(region.kind)) {
    KILN_ASSIGN_OR_RETURN(row_call, spec->PlanRowCall(GraphOf(region_id), region, signature));
    if (!row_call->served || row_call->declined.load(std::memory_order_acquire)) {
      KILN_RETURN_IF_ERROR(RunInterpreted(region_id, call, signature));
      return ServedBy::kInterpreter;
    }
  }
  const ShadowVerification& verification = row_call != nullptr ? row_call->verification : spec->verification;
  switch (verification.Claim()) {
    case ShadowVerification::Turn::kServe: break;
    case ShadowVerification::Turn::kInterpret:
      KILN_RETURN_IF_ERROR(RunInterpretedByChoice(region_id, call));
      return ServedBy::kInterpreter;
    case ShadowVerification::Turn::kVerify:
      KILN_RETURN_IF_ERROR(RunVerification(region_id, *spec, row_call.get(), verification, call, scratch));
      return ServedBy::kInterpreter;
  }
  RegionState& state = states_[region_id];
  const TierTrial& trial = row_call != nullptr ? row_call->trial : spec->trial;
  const bool interpreted_turn = trial.TakeInterpretedTurn();
  const int64_t start = NowNs();
  double flops = 0;
  if (interpreted_turn) {
    KILN_RETURN_IF_ERROR(call.RunInterpreted());
  } else {
    KILN_ASSIGN_OR_RETURN(flops, spec->Run(region, row_call.get(), call, scratch));
  }
  const int64_t elapsed = NowNs() - start;
  if (flops > 0) state.compiled_flops.fetch_add(flops, std::memory_order_relaxed);
  // A trial's interpreted sample is a choice, not a deopt, and does not
  // count towards compiling anything.
  std::atomic<int64_t>& calls = interpreted_turn ? state.interpreted_calls : state.compiled_calls;
  std::atomic<int64_t>& ns = interpreted_turn ? state.interpreted_ns : state.compiled_ns;
  calls.fetch_add(1, std::memory_order_relaxed);
  ns.fetch_add(elapsed, std::memory_order_relaxed);
  if (!interpreted_turn) {
    spec->ledger->CountCompiledCall();
    if (scheduler_ && compiles_running_.load(std::memory_order_relaxed) > 0) {
      scheduler_->Credit(spec->interpreted_ns_per_call.load(std::memory_order_relaxed) - elapsed);
    }
  }
  AddTrialSample(region_id, *spec, row_call.get(), /*compiled=*/!interpreted_turn, elapsed);
  return interpreted_turn ? ServedBy::kInterpreter : ServedBy::kCompiledCode;
}

Status JitTier::RunInterpreted(int region, RegionCall& call, const ShapeSignature& signature) const {
  const int64_t start = NowNs();
  KILN_RETURN_IF_ERROR(call.RunInterpreted());
  const int64_t elapsed = NowNs() - start;
  RegionState& state = states_[region];
  state.interpreted_calls.fetch_add(1, std::memory_order_relaxed);
  state.interpreted_ns.fetch_add(elapsed, std::memory_order_relaxed);
  bool generic = false;
  int64_t interpreted_ns_per_call = 0;
  {
    MutexLock lock(state.mu);
    if (state.declined.count(signature) || state.failed_verification.count(signature) ||
        state.payback_skipped.count(signature)) {
      return Status::Ok();
    }
    if (!state.table.load(std::memory_order_acquire)->specs.empty()) {
      state.deopts.fetch_add(1, std::memory_order_relaxed);
    }
    // With the generic version requested nothing is left to compile, so the
    // profile stops: a stream of new shapes must not grow it without bound.
    if (state.generic_requested || state.requested.count(signature)) return Status::Ok();
    RegionState::SignatureProfile& profile = state.calls_by_signature[signature];
    ++profile.calls;
    profile.ns += elapsed;
    profile.min_ns = std::min(profile.min_ns, elapsed);
    if (profile.calls < hot_threshold_) return Status::Ok();
    interpreted_ns_per_call = profile.min_ns;
    const double interpreted_ms_per_call = static_cast<double>(profile.ns) * 1e-6 / static_cast<double>(profile.calls);
    state.calls_by_signature.Erase(signature);
    if (!PaysBackWithinHorizon(region, signature, interpreted_ms_per_call)) {
      state.payback_skipped.insert(signature);
      return Status::Ok();
    }
    if (!state.generic_first && static_cast<int>(state.requested.size()) < max_specializations_) {
      state.requested.insert(signature);
    } else {
      // Past the limit (or at once for a symbolic-M GEMM): one generic
      // version, compiled for this signature's rank. Once it exists,
      // signatures it does not serve stay interpreted.
      state.generic_requested = true;
      state.calls_by_signature.Clear();
      generic = true;
      if (!state.generic_first) {
        Log().info("jit: region {} reached its limit of {} specializations; compiling a shape-generic version", region,
                   max_specializations_);
      }
    }
  }
  if (blocking_) {
    Compile(region, signature, generic, interpreted_ns_per_call);
    // The call that compiled the code is its first: the interpreter has
    // served it, so it verifies the code on its inputs, and the next call
    // can run compiled (TierPolicy::kJit's promise).
    std::shared_ptr<const Specialization> spec = Lookup(region, signature);
    if (spec == nullptr) return Status::Ok();
    std::shared_ptr<const Specialization::RowCall> row_call;
    const graph::Region& r = regions_[static_cast<size_t>(region)];
    if (spec->generic && Specialization::PlannedPerSignature(r.kind)) {
      KILN_ASSIGN_OR_RETURN(row_call, spec->PlanRowCall(GraphOf(region), r, signature));
      if (!row_call->served) return Status::Ok();
    }
    const ShadowVerification& verification = row_call != nullptr ? row_call->verification : spec->verification;
    if (verification.Claim() == ShadowVerification::Turn::kVerify) {
      auto& scratch = static_cast<CompiledCallScratch&>(*call.scratch());
      Verify(region, *spec, row_call.get(), verification, call, scratch);
    }
  } else {
    queue_->Enqueue([this, region, signature, generic, interpreted_ns_per_call] {
      Compile(region, signature, generic, interpreted_ns_per_call);
    });
  }
  return Status::Ok();
}

void JitTier::AddTrialSample(int region, const Specialization& spec, const Specialization::RowCall* row_call,
                             bool compiled, int64_t nanoseconds) const {
  const TierTrial& trial = row_call != nullptr ? row_call->trial : spec.trial;
  const TierTrial::Verdict verdict = trial.AddSample(compiled, nanoseconds);
  if (verdict == TierTrial::Verdict::kPending) return;
  const ShapeSignature& signature = row_call != nullptr ? row_call->signature : spec.signature;
  const char* what = row_call != nullptr ? "generic code" : "compiled code";
  // Break-even accounting uses the medians: what a typical call saves.
  const double interpreted_ms = trial.interpreted_median_ms();
  const double compiled_ms = trial.compiled_median_ms();
  projection_.RecordTrial(regions_[static_cast<size_t>(region)].kind, interpreted_ms, compiled_ms);
  // Generic row code's account covers every signature; one signature's
  // trial does not measure it.
  if (row_call == nullptr) {
    spec.ledger->RecordTrial(interpreted_ms, compiled_ms);
    if (!spec.generic) {
      spec.interpreted_ns_per_call.store(static_cast<int64_t>(interpreted_ms * 1e6), std::memory_order_relaxed);
    }
    if (hooks_.trace) {
      const BreakEven b = spec.ledger->Snapshot();
      const std::string track = "break-even region " + std::to_string(region) + " " + signature.ToString();
      const auto now = TraceRecorder::Clock::now();
      hooks_.trace->AddCounter(track, "saving_us_per_call", b.saving_ms_per_call * 1e3, now);
      hooks_.trace->AddCounter(track, "payback_calls", static_cast<double>(b.payback_calls), now);
    }
  }
  if (verdict == TierTrial::Verdict::kKeep) {
    Log().debug("jit: region {} for {} keeps its {}: {:.3f} ms vs {:.3f} ms interpreted (best of {})", region,
                signature.ToString(), what, trial.compiled_best_ms(), trial.interpreted_best_ms(), TierTrial::kSamples);
    return;
  }
  Log().info(
      "jit: region {} for {} goes back to the interpreter: {} {:.3f} ms vs {:.3f} ms interpreted "
      "(best of {} calls each)",
      region, signature.ToString(), what, trial.compiled_best_ms(), trial.interpreted_best_ms(), TierTrial::kSamples);
  RegionState& state = states_[region];
  MutexLock lock(state.mu);
  state.declined.insert(signature);
  if (row_call != nullptr) {
    // The generic code stays for the signatures it wins.
    row_call->declined.store(true, std::memory_order_release);
    return;
  }
  state.Unpublish(spec);
}

Status JitTier::RunInterpretedByChoice(int region, RegionCall& call) const {
  const int64_t start = NowNs();
  KILN_RETURN_IF_ERROR(call.RunInterpreted());
  RegionState& state = states_[region];
  state.interpreted_calls.fetch_add(1, std::memory_order_relaxed);
  state.interpreted_ns.fetch_add(NowNs() - start, std::memory_order_relaxed);
  return Status::Ok();
}

Status JitTier::RunVerification(int region, const Specialization& spec, const Specialization::RowCall* row_call,
                                const ShadowVerification& verification, RegionCall& call,
                                CompiledCallScratch& scratch) const {
  const Status served = RunInterpretedByChoice(region, call);
  if (!served.ok()) {
    // Nothing to compare against: the next call verifies instead.
    verification.Abandon();
    return served;
  }
  Verify(region, spec, row_call, verification, call, scratch);
  return Status::Ok();
}

void JitTier::Verify(int region_id, const Specialization& spec, const Specialization::RowCall* row_call,
                     const ShadowVerification& verification, RegionCall& call, CompiledCallScratch& scratch) const {
  const graph::Region& region = regions_[static_cast<size_t>(region_id)];
  const auto start = TraceRecorder::Clock::now();
  const graph::Graph& graph = GraphOf(region_id);
  std::vector<Tensor> prepared;
  {
    RegionState& state = states_[region_id];
    MutexLock lock(state.mu);
    prepared = std::move(state.verification_outputs);
    state.verification_outputs.clear();
  }
  CapturingCall compiled_call(call, graph, region, std::move(prepared));
  const StatusOr<double> ran = spec.Run(region, row_call, compiled_call, scratch);
  const double tolerance =
      options_.jit_bitwise_equivalent ? kBitwise : VerificationTolerance(graph, region, scratch.signature);
  OutputComparison comparison;
  if (!ran.ok()) {
    comparison.equal = false;
    comparison.problem = "the compiled code failed: " + ran.status().ToString();
  }
  for (size_t o = 0; comparison.equal && o < region.outputs.size(); ++o) {
    if (!compiled_call.has_output(o)) {
      comparison.equal = false;
      comparison.problem = "the compiled code did not write output " + std::to_string(o);
      break;
    }
    CompareOutput(o, compiled_call.output(o), call.output(o), tolerance, comparison);
  }
  const std::string signature = scratch.signature.ToString();
  if (hooks_.trace) {
    hooks_.trace->AddSlice("verify region " + std::to_string(region_id) + " " + signature +
                               (comparison.equal ? " (passed)" : " (FAILED: " + comparison.ToString(tolerance) + ")"),
                           "verify", start, TraceRecorder::Clock::now());
  }
  if (comparison.equal) {
    // Formatting the comparison costs the verifying request as much as a
    // small region's run: only when it is logged.
    if (Log().should_log(spdlog::level::debug)) {
      Log().debug("jit: region {} for {}: the compiled code matches the interpreter ({})", region_id, signature,
                  comparison.ToString(tolerance));
    }
    verification.Pass();
    return;
  }
  if (!verification.Fail()) return;  // another call found it first
  Log().warn(
      "jit: region {} ({}) for {}: the compiled code differs from the interpreter: {}; it is dropped and the region "
      "stays interpreted for these shapes",
      region_id, Described(region), signature, comparison.ToString(tolerance));
  RegionState& state = states_[region_id];
  MutexLock lock(state.mu);
  ++state.verify_failures;
  state.failed_verification.insert(scratch.signature);
  // Generic code that is wrong for one signature is not trusted with any.
  state.Unpublish(spec);
}

void JitTier::Compile(int region_id, const ShapeSignature& signature, bool generic,
                      int64_t interpreted_ns_per_call) const {
  const graph::Region& region = regions_[static_cast<size_t>(region_id)];
  RegionState& state = states_[region_id];
  const auto start = std::chrono::steady_clock::now();
  // Timed by the tier's clock (tests drive it), traced on the real one.
  const int64_t start_ns = NowNs();
  const CompileScheduler::Account paced_before =
      scheduler_ ? scheduler_->ThisThreadAccount() : CompileScheduler::Account{};
  const Status hook = options_.jit_before_compile_hook ? options_.jit_before_compile_hook(region_id) : Status::Ok();
  compiles_running_.fetch_add(1, std::memory_order_relaxed);
  // Ticks pace LLVM's work between its yield points too (building the
  // LLJIT has none at all); they stop before publishing takes the region's
  // lock, which request threads take.
  CompileScheduler::BurstBound bound = scheduler_ ? scheduler_->BoundBursts() : CompileScheduler::BurstBound();
  StatusOr<jit::JitCompiler*> compiler = hook.ok() ? compiler_->Get() : hook;
  StatusOr<std::unique_ptr<jit::CompiledRegion>> code =
      compiler.ok() ? jit::CompileRegion(**compiler, GraphOf(region_id), region, signature.dims, generic)
                    : compiler.status();
  bound = CompileScheduler::BurstBound();
  compiles_running_.fetch_sub(1, std::memory_order_relaxed);
  std::string what = signature.ToString();
  if (generic) {
    switch (region.kind) {
      case graph::RegionKind::kElementwise:
        what = "generic rank " + std::to_string(jit::MaxRank(signature.dims));
        break;
      case graph::RegionKind::kRowReduction: what = "any rows and row length (generic, planned on " + what + ")"; break;
      case graph::RegionKind::kGemm: what = "any M (generic, planned on " + what + ")"; break;
      case graph::RegionKind::kDepthwiseConv: what = "generic (not compiled: per shape only)"; break;
      case graph::RegionKind::kAttention: what = "any sequence length (generic, planned on " + what + ")"; break;
      case graph::RegionKind::kLstm: what = "generic (not compiled: per shape only)"; break;
    }
  }
  const auto end = std::chrono::steady_clock::now();
  const double ms = static_cast<double>(NowNs() - start_ns) * 1e-6;
  // Pauses the scheduler imposed: part of the wall time, not of the
  // compile's cost, so the break-even accounts leave them out.
  double paced_ms = 0;
  if (scheduler_) {
    const CompileScheduler::Account after = scheduler_->ThisThreadAccount();
    paced_ms = static_cast<double>(after.waited_ns - paced_before.waited_ns) * 1e-6;
    Log().debug(
        "jit: region {} compile for {} paced at {:.0f}% of a core: {:.1f} ms wall, {} pauses for {:.1f} ms, "
        "{:.1f} ms CPU while every core served (longest burst so far {:.2f} ms), {:.1f} ms with a core idle, {} "
        "yield points, {} ticks; request time saved by compiled code credited so far {:.1f} ms",
        region_id, what, scheduler_->cpu_share() * 100, ms, after.waits - paced_before.waits, paced_ms,
        static_cast<double>(after.busy_cpu_ns - paced_before.busy_cpu_ns) * 1e-6,
        static_cast<double>(after.longest_busy_burst_ns) * 1e-6,
        static_cast<double>(after.idle_cpu_ns - paced_before.idle_cpu_ns) * 1e-6,
        after.yield_points - paced_before.yield_points, after.ticks - paced_before.ticks,
        static_cast<double>(scheduler_->credited_ns()) * 1e-6);
  }
  const double cost_ms = std::max(0.0, ms - paced_ms);
  if (hooks_.trace) {
    std::string paced;
    if (paced_ms > 0) paced = " (paused " + std::to_string(static_cast<int>(paced_ms + 0.5)) + " ms for requests)";
    hooks_.trace->AddSlice(
        "compile region " + std::to_string(region_id) + " " + what + (code.ok() ? "" : " (failed)") + paced, "compile",
        start, end, TraceRecorder::kCompileTrack);
  }
  if (!code.ok()) {
    // The region keeps running interpreted for this signature; a failed
    // compile never fails a request.
    Log().info("jit: region {} ({}) {} stays interpreted: {}", region_id, Described(region), what,
               code.status().ToString());
    MutexLock lock(state.mu);
    ++state.failed_compiles;
    return;
  }
  auto spec = std::make_shared<Specialization>();
  spec->generic = generic;
  if (generic && Specialization::PlannedPerSignature(region.kind)) {
    spec->row_call_verify_calls = options_.jit_verify_calls;
  } else {
    spec->verification.Start(options_.jit_verify_calls);
  }
  if (options_.jit_keep_faster_tier) {
    if (!generic) spec->trial.Start();
    spec->trial_row_calls = generic && Specialization::PlannedPerSignature(region.kind);
  }
  if (generic) {
    spec->domain_rank = jit::MaxRank(signature.dims);
  } else {
    spec->signature = signature;
    spec->interpreted_ns_per_call.store(interpreted_ns_per_call, std::memory_order_relaxed);
    // Buffer sizes of this signature's outputs, as the generator planned them.
    spec->output_dims = (*code)->output_dims();
    if (spec->output_dims.size() != region.outputs.size()) {
      Log().warn("jit: region {}: the code describes {} outputs, the region has {}", region_id,
                 spec->output_dims.size(), region.outputs.size());
      MutexLock lock(state.mu);
      ++state.failed_compiles;
      return;
    }
  }
  // For the verification call: allocated and touched here, beside the
  // compile, not on the request that verifies.
  std::vector<Tensor> verification_outputs;
  if (!generic && options_.jit_verify_calls > 0) {
    for (size_t o = 0; o < spec->output_dims.size(); ++o) {
      StatusOr<Tensor> buffer =
          Tensor::Allocate(GraphOf(region_id).value(region.outputs[o]).dtype, spec->output_dims[o]);
      if (!buffer.ok()) break;  // the call allocates its own
      if (buffer->byte_size() > 0) std::memset(buffer->raw_data(), 0, buffer->byte_size());
      verification_outputs.push_back(std::move(buffer).value());
    }
  }
  spec->code = std::shared_ptr<const jit::CompiledRegion>(std::move(code).value());
  spec->ledger = std::make_shared<const BreakEvenLedger>(what, cost_ms);
  projection_.RecordCompile(region.kind, static_cast<int>(region.nodes.size()), cost_ms);
  const bool reused = spec->code->reused_code();
  if (reused) {
    Log().info("jit: region {} ({}) for {} reuses the code of {} (same IR), {:.1f} ms", region_id, Described(region),
               what, spec->code->name(), ms);
  } else if (const jit::CompiledLstm* lstm = spec->code->lstm()) {
    Log().info("jit: region {} ({}) {} for {} in {:.1f} ms ({}, {} bytes of code, {} bytes of packed weights)",
               region_id, Described(region), spec->code->from_disk_cache() ? "linked from the code cache" : "compiled",
               what, ms, lstm->label(), spec->code->code_bytes(), lstm->packed_weight_bytes());
  } else if (const jit::CompiledGemm* gemm = spec->code->gemm()) {
    Log().info("jit: region {} ({}) {} for {} in {:.1f} ms ({}, {} bytes of code, {} bytes of packed weight)",
               region_id, Described(region), spec->code->from_disk_cache() ? "linked from the code cache" : "compiled",
               what, ms, gemm->label(), spec->code->code_bytes(), gemm->packed_weight_bytes());
  } else {
    Log().info("jit: region {} ({}) {} for {} in {:.1f} ms ({} bytes of code)", region_id, Described(region),
               spec->code->from_disk_cache() ? "linked from the code cache" : "compiled", what, ms,
               spec->code->code_bytes());
  }

  // Recorded before publishing, outside the region's lock: file I/O.
  if (hot_set_) hot_set_->Record({region_id, signature, generic});
  MutexLock lock(state.mu);
  if (!verification_outputs.empty()) state.verification_outputs = std::move(verification_outputs);
  state.compile_ms += ms;
  state.ledgers.push_back(spec->ledger);
  // Shared code counts once, for the region that compiled it.
  if (reused) {
    ++state.reused_code;
  } else {
    state.code_bytes += static_cast<int64_t>(spec->code->code_bytes());
  }
  if (const jit::CompiledGemm* gemm = spec->code->gemm()) {
    state.packed_weight_bytes += static_cast<int64_t>(gemm->packed_weight_bytes());
  }
  if (const jit::CompiledLstm* lstm = spec->code->lstm()) {
    state.packed_weight_bytes += static_cast<int64_t>(lstm->packed_weight_bytes());
  }
  // Copy-on-write publish; writers are serialised by `mu`, readers never wait.
  auto next = std::make_unique<Table>(*state.table.load(std::memory_order_acquire));
  next->specs.push_back(std::move(spec));
  state.Publish(std::move(next));
}

bool JitTier::PaysBackWithinHorizon(int region_id, const ShapeSignature& signature,
                                    double interpreted_ms_per_call) const {
  const int64_t horizon = options_.jit_payback_horizon_calls;
  if (horizon <= 0) return true;
  const graph::Region& region = regions_[static_cast<size_t>(region_id)];
  const PaybackProjection::Projection p =
      projection_.Project(region.kind, static_cast<int>(region.nodes.size()), interpreted_ms_per_call);
  if (p.payback_calls >= 0 && p.payback_calls <= horizon) return true;
  Log().info(
      "jit: region {} ({}) for {} stays interpreted: projected payback {} calls exceeds the horizon of {} "
      "(compile {:.2f} ms {}, saving {:.4f} ms per call: {:.4f} ms interpreted at {:.2f}x {})",
      region_id, Described(region), signature.ToString(),
      p.payback_calls < 0 ? std::string("never") : std::to_string(p.payback_calls), horizon, p.compile_ms,
      p.compile_measured ? "as measured for its kind" : "by default", p.saving_ms_per_call, interpreted_ms_per_call,
      p.speedup, p.speedup_measured ? "measured speedup for its kind" : "default speedup");
  return false;
}

void JitTier::WaitForCompiles() const {
  if (queue_) queue_->WaitIdle();
}

void JitTier::AddCacheStats(SessionStats& stats) const {
  // Before the first compile nothing has been looked up.
  jit::JitCompiler* compiler = compiler_->IfBuilt();
  if (compiler == nullptr) return;
  const jit::PersistentCodeCache* cache = compiler->persistent_cache();
  if (cache == nullptr) return;
  const jit::PersistentCodeCache::Counters c = cache->counters();
  stats.jit_cache_hits = c.hits;
  stats.jit_cache_misses = c.misses;
  stats.jit_cache_rejected = c.rejected;
}

std::vector<RegionStats> JitTier::Stats() const {
  std::vector<RegionStats> stats;
  for (size_t r = 0; r < regions_.size(); ++r) {
    RegionState& state = states_[r];
    RegionStats s;
    s.id = regions_[r].id;
    s.kind = graph::RegionKindName(regions_[r].kind);
    s.description = regions_[r].reason;
    s.path = regions_[r].path;
    s.interpreted_calls = state.interpreted_calls.load();
    s.compiled_calls = state.compiled_calls.load();
    s.interpreted_ms = static_cast<double>(state.interpreted_ns.load()) * 1e-6;
    s.compiled_ms = static_cast<double>(state.compiled_ns.load()) * 1e-6;
    s.deopts = state.deopts.load();
    s.specializations = static_cast<int>(state.table.load()->specs.size());
    s.tier = s.specializations > 0 ? "jit" : "interp";
    MutexLock lock(state.mu);
    s.failed_compiles = state.failed_compiles;
    s.declined = static_cast<int>(state.declined.size());
    s.reused_code = state.reused_code;
    s.verify_failures = state.verify_failures;
    s.compile_ms = state.compile_ms;
    s.code_bytes = state.code_bytes;
    s.packed_weight_bytes = state.packed_weight_bytes;
    s.compiled_flops = state.compiled_flops.load();
    if (s.compiled_ms > 0) s.compiled_gflops = s.compiled_flops / (s.compiled_ms * 1e6);
    for (const auto& ledger : state.ledgers) s.break_even.push_back(ledger->Snapshot());
    s.skipped_for_payback = static_cast<int>(state.payback_skipped.size());
    stats.push_back(std::move(s));
  }
  return stats;
}

}  // namespace kiln::runtime
