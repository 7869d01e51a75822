#include "runtime/jit_tier.h"

#include <chrono>

#include "graph/log.h"
#include "jit/compiled_region.h"
#include "jit/elementwise_codegen.h"
#include "jit/generic_codegen.h"
#include "jit/jit_compiler.h"
#include "jit/row_reduction_codegen.h"
#include "runtime/trace_recorder.h"

namespace kiln::runtime {

// An immutable list of specialisations; replaced whole on every publish.
struct JitTier::Table {
  std::vector<std::shared_ptr<const Specialization>> specs;
};

struct JitTier::RegionState {
  std::atomic<std::shared_ptr<const Table>> table{std::make_shared<const Table>()};
  std::atomic<int64_t> interpreted_calls{0};
  std::atomic<int64_t> compiled_calls{0};
  std::atomic<int64_t> interpreted_ns{0};  // wall time of the calls, per tier
  std::atomic<int64_t> compiled_ns{0};
  std::atomic<int64_t> deopts{0};

  // Guards everything below: profile and compile bookkeeping.
  std::mutex mu;
  std::map<ShapeSignature, int64_t> calls_by_signature;
  std::set<ShapeSignature> requested;  // queued, compiled or failed: never compiled twice
  // Signatures whose specialisation lost its trial: interpreted by choice,
  // so their calls are not deopts.
  std::set<ShapeSignature> declined;
  bool generic_requested = false;
  int failed_compiles = 0;
  int reused_code = 0;
  double compile_ms = 0;
  int64_t code_bytes = 0;
};

namespace {

int MaxRank(const ShapeSignature& signature) {
  size_t rank = 0;
  for (const Dims& d : signature.dims) rank = std::max(rank, d.size());
  return static_cast<int>(rank);
}

}  // namespace

JitTier::JitTier(const graph::Graph& graph, std::vector<graph::Region> regions, const JitTierOptions& options)
    : graph_(graph), regions_(std::move(regions)), options_(options) {}

JitTier::~JitTier() = default;

StatusOr<std::unique_ptr<JitTier>> JitTier::Create(const graph::Graph& graph, std::vector<graph::Region> regions,
                                                   const JitTierOptions& options) {
  std::unique_ptr<JitTier> tier(new JitTier(graph, std::move(regions), options));
  jit::JitOptions jit_options;
  jit_options.dump_dir = options.dump_dir;
  KILN_ASSIGN_OR_RETURN(tier->compiler_, jit::JitCompiler::CreateOrStatus(jit_options));
  tier->states_.reset(new RegionState[tier->regions_.size()]);
  if (!options.blocking) tier->queue_ = std::make_unique<CompileQueue>(options.compile_threads);
  return tier;
}

StatusOr<std::shared_ptr<const Specialization::RowCall>> Specialization::PlanRowCall(
    const graph::Graph& graph, const graph::Region& region, const ShapeSignature& signature) const {
  {
    std::lock_guard<std::mutex> lock(row_calls_mutex_);
    auto found = row_calls_.find(signature);
    if (found != row_calls_.end()) return found->second;
  }
  auto call = std::make_shared<RowCall>();
  call->signature = signature;
  if (trial_row_calls) call->trial.Start();
  const Status prepared =
      jit::PrepareGenericRowReductionCall(*code, graph, region, signature.dims, call->params, call->output_dims);
  if (!prepared.ok() && prepared.code() != StatusCode::kUnsupported) return prepared;
  call->served = prepared.ok();
  std::lock_guard<std::mutex> lock(row_calls_mutex_);
  // A stream of new shapes must not grow this without bound: past the cap,
  // start over (a shape still in use is planned again once).
  constexpr size_t kMaxRowCalls = 256;
  if (row_calls_.size() >= kMaxRowCalls) row_calls_.clear();
  row_calls_.emplace(signature, call);
  return std::shared_ptr<const RowCall>(std::move(call));
}

std::shared_ptr<const Specialization> JitTier::Lookup(int region, const ShapeSignature& signature) const {
  std::shared_ptr<const Table> table = states_[region].table.load(std::memory_order_acquire);
  const std::shared_ptr<const Specialization>* generic = nullptr;
  for (const auto& spec : table->specs) {
    if (spec->generic) {
      generic = &spec;
    } else if (spec->signature == signature) {
      return spec;
    }
  }
  if (generic == nullptr) return nullptr;
  // Generic row code checks at the call that the shapes lay the region out
  // as it expects (PrepareGenericRowReductionCall); generic elementwise
  // code serves any signature up to its rank.
  if (regions_[static_cast<size_t>(region)].kind == graph::RegionKind::kRowReduction) return *generic;
  if (MaxRank(signature) <= (*generic)->domain_rank) return *generic;
  return nullptr;
}

bool TierTrial::TakeInterpretedTurn() const {
  if (!active_ || decided_.load(std::memory_order_relaxed)) return false;
  const int turn = turns_.fetch_add(1, std::memory_order_relaxed);
  // Odd turns, so the first call after the swap runs the new code. A trial
  // whose samples never complete (calls that failed) stops alternating.
  return turn % 2 == 1 && turn < 4 * kSamples;
}

TierTrial::Verdict TierTrial::AddSample(bool compiled, int64_t nanoseconds) const {
  if (!active_ || decided_.load(std::memory_order_relaxed)) return Verdict::kPending;
  std::atomic<int64_t>& best = compiled ? compiled_best_ns_ : interpreted_best_ns_;
  int64_t seen = best.load(std::memory_order_relaxed);
  while (nanoseconds < seen && !best.compare_exchange_weak(seen, nanoseconds, std::memory_order_relaxed)) {
  }
  (compiled ? compiled_samples_ : interpreted_samples_).fetch_add(1, std::memory_order_acq_rel);
  if (compiled_samples_.load(std::memory_order_acquire) < kSamples ||
      interpreted_samples_.load(std::memory_order_acquire) < kSamples) {
    return Verdict::kPending;
  }
  if (decided_.exchange(true, std::memory_order_acq_rel)) return Verdict::kPending;  // another call decided
  const double compiled_ns = static_cast<double>(compiled_best_ns_.load());
  const double interpreted_ns = static_cast<double>(interpreted_best_ns_.load());
  return compiled_ns <= interpreted_ns * 1.03 ? Verdict::kKeep : Verdict::kDrop;
}

void JitTier::RecordCompiledCall(int region, const Specialization& spec, const Specialization::RowCall* row_call,
                                 int64_t nanoseconds) const {
  states_[region].compiled_calls.fetch_add(1, std::memory_order_relaxed);
  states_[region].compiled_ns.fetch_add(nanoseconds, std::memory_order_relaxed);
  AddTrialSample(region, spec, row_call, /*compiled=*/true, nanoseconds);
}

void JitTier::RecordTrialInterpretedCall(int region, const Specialization& spec,
                                         const Specialization::RowCall* row_call, int64_t nanoseconds) const {
  states_[region].interpreted_calls.fetch_add(1, std::memory_order_relaxed);
  states_[region].interpreted_ns.fetch_add(nanoseconds, std::memory_order_relaxed);
  AddTrialSample(region, spec, row_call, /*compiled=*/false, nanoseconds);
}

void JitTier::AddTrialSample(int region, const Specialization& spec, const Specialization::RowCall* row_call,
                             bool compiled, int64_t nanoseconds) const {
  const TierTrial& trial = row_call != nullptr ? row_call->trial : spec.trial;
  const TierTrial::Verdict verdict = trial.AddSample(compiled, nanoseconds);
  if (verdict == TierTrial::Verdict::kPending) return;
  const ShapeSignature& signature = row_call != nullptr ? row_call->signature : spec.signature;
  const char* what = row_call != nullptr ? "generic code" : "compiled code";
  if (verdict == TierTrial::Verdict::kKeep) {
    Log().debug("jit: region {} for {} keeps its {}: {:.3f} ms vs {:.3f} ms interpreted (best of {})", region,
                signature.ToString(), what, trial.compiled_best_ms(), trial.interpreted_best_ms(),
                TierTrial::kSamples);
    return;
  }
  Log().info("jit: region {} for {} goes back to the interpreter: {} {:.3f} ms vs {:.3f} ms interpreted "
             "(best of {} calls each)",
             region, signature.ToString(), what, trial.compiled_best_ms(), trial.interpreted_best_ms(),
             TierTrial::kSamples);
  RegionState& state = states_[region];
  std::lock_guard<std::mutex> lock(state.mu);
  state.declined.insert(signature);
  if (row_call != nullptr) {
    // The generic code stays for the signatures it wins.
    row_call->declined.store(true, std::memory_order_release);
    return;
  }
  // Unpublish: callers already inside the code keep it alive until they
  // return (they hold the old table).
  auto next = std::make_shared<Table>();
  for (const auto& s : state.table.load(std::memory_order_acquire)->specs) {
    if (s.get() != &spec) next->specs.push_back(s);
  }
  state.table.store(std::move(next), std::memory_order_release);
}

void JitTier::RecordInterpretedCall(int region, const ShapeSignature& signature, int64_t nanoseconds) const {
  RegionState& state = states_[region];
  state.interpreted_calls.fetch_add(1, std::memory_order_relaxed);
  state.interpreted_ns.fetch_add(nanoseconds, std::memory_order_relaxed);
  bool generic = false;
  {
    std::lock_guard<std::mutex> lock(state.mu);
    if (state.declined.count(signature)) return;
    if (!state.table.load(std::memory_order_acquire)->specs.empty()) {
      state.deopts.fetch_add(1, std::memory_order_relaxed);
    }
    // With the generic version requested nothing is left to compile, so the
    // profile stops: a stream of new shapes must not grow it without bound.
    if (state.generic_requested || state.requested.count(signature)) return;
    // Shapes that never turn hot would grow the profile forever: past the
    // cap, forget the counts (a truly hot shape soon counts up again).
    constexpr size_t kMaxProfiledSignatures = 256;
    if (state.calls_by_signature.size() >= kMaxProfiledSignatures) state.calls_by_signature.clear();
    if (++state.calls_by_signature[signature] < options_.hot_threshold) return;
    state.calls_by_signature.erase(signature);
    if (static_cast<int>(state.requested.size()) < options_.max_specializations) {
      state.requested.insert(signature);
    } else {
      // Past the limit: one generic version, compiled for this signature's
      // rank. Once it exists, signatures of higher rank stay interpreted.
      state.generic_requested = true;
      state.calls_by_signature.clear();
      generic = true;
      Log().info("jit: region {} reached its limit of {} specializations; compiling a shape-generic version", region,
                 options_.max_specializations);
    }
  }
  if (options_.blocking) {
    Compile(region, signature, generic);
  } else {
    queue_->Enqueue([this, region, signature, generic] { Compile(region, signature, generic); });
  }
}

void JitTier::Compile(int region_id, const ShapeSignature& signature, bool generic) const {
  const graph::Region& region = regions_[static_cast<size_t>(region_id)];
  RegionState& state = states_[region_id];
  const auto start = std::chrono::steady_clock::now();
  const Status hook = options_.before_compile ? options_.before_compile(region_id) : Status::Ok();
  // A StatusOr never holds an OK status: start from an error that the
  // switch below replaces for every kind it knows.
  StatusOr<std::unique_ptr<jit::CompiledRegion>> code =
      hook.ok() ? Internal("jit: no compiler for this region kind") : hook;
  if (hook.ok()) {
    switch (region.kind) {
      case graph::RegionKind::kElementwise:
        code = generic ? jit::CompileElementwiseRegionGeneric(*compiler_, graph_, region, MaxRank(signature))
                       : jit::CompileElementwiseRegion(*compiler_, graph_, region, signature.dims);
        break;
      case graph::RegionKind::kRowReduction:
        code = generic ? jit::CompileRowReductionRegionGeneric(*compiler_, graph_, region, signature.dims)
                       : jit::CompileRowReductionRegion(*compiler_, graph_, region, signature.dims);
        break;
    }
  }
  std::string what = signature.ToString();
  if (generic) {
    what = region.kind == graph::RegionKind::kRowReduction ? "any rows and row length (generic, planned on " + what + ")"
                                                            : "generic rank " + std::to_string(MaxRank(signature));
  }
  const auto end = std::chrono::steady_clock::now();
  const double ms = std::chrono::duration<double, std::milli>(end - start).count();
  if (options_.trace) {
    options_.trace->AddSlice("compile region " + std::to_string(region_id) + " " + what +
                                 (code.ok() ? "" : " (failed)"),
                             "compile", start, end, TraceRecorder::kCompileTrack);
  }
  if (!code.ok()) {
    // The region keeps running interpreted for this signature; a failed
    // compile never fails a request.
    Log().info("jit: region {} ({}) {} stays interpreted: {}", region_id, region.reason, what,
               code.status().ToString());
    std::lock_guard<std::mutex> lock(state.mu);
    ++state.failed_compiles;
    return;
  }
  auto spec = std::make_shared<Specialization>();
  spec->generic = generic;
  if (options_.keep_faster_tier) {
    if (!generic) spec->trial.Start();
    spec->trial_row_calls = generic && region.kind == graph::RegionKind::kRowReduction;
  }
  if (generic) {
    spec->domain_rank = MaxRank(signature);
  } else {
    spec->signature = signature;
    // Buffer sizes of this signature's outputs, as the generator planned them.
    spec->output_dims = (*code)->output_dims();
    if (spec->output_dims.size() != region.outputs.size()) {
      Log().warn("jit: region {}: the code describes {} outputs, the region has {}", region_id,
                 spec->output_dims.size(), region.outputs.size());
      std::lock_guard<std::mutex> lock(state.mu);
      ++state.failed_compiles;
      return;
    }
  }
  spec->code = std::shared_ptr<const jit::CompiledRegion>(std::move(code).value());
  const bool reused = spec->code->reused_code();
  if (reused) {
    Log().info("jit: region {} ({}) for {} reuses the code of {} (same IR), {:.1f} ms", region_id, region.reason,
               what, spec->code->name(), ms);
  } else {
    Log().info("jit: region {} ({}) compiled for {} in {:.1f} ms ({} bytes of code)", region_id, region.reason,
               what, ms, spec->code->code_bytes());
  }

  std::lock_guard<std::mutex> lock(state.mu);
  state.compile_ms += ms;
  // Shared code counts once, for the region that compiled it.
  if (reused) {
    ++state.reused_code;
  } else {
    state.code_bytes += static_cast<int64_t>(spec->code->code_bytes());
  }
  // Copy-on-write publish; writers are serialised by `mu`, readers never wait.
  auto next = std::make_shared<Table>(*state.table.load(std::memory_order_acquire));
  next->specs.push_back(std::move(spec));
  state.table.store(std::move(next), std::memory_order_release);
}

void JitTier::WaitForCompiles() const {
  if (queue_) queue_->WaitIdle();
}

std::vector<RegionStats> JitTier::Stats() const {
  std::vector<RegionStats> stats;
  for (size_t r = 0; r < regions_.size(); ++r) {
    RegionState& state = states_[r];
    RegionStats s;
    s.id = regions_[r].id;
    s.kind = graph::RegionKindName(regions_[r].kind);
    s.description = regions_[r].reason;
    s.interpreted_calls = state.interpreted_calls.load();
    s.compiled_calls = state.compiled_calls.load();
    s.interpreted_ms = static_cast<double>(state.interpreted_ns.load()) * 1e-6;
    s.compiled_ms = static_cast<double>(state.compiled_ns.load()) * 1e-6;
    s.deopts = state.deopts.load();
    s.specializations = static_cast<int>(state.table.load()->specs.size());
    s.tier = s.specializations > 0 ? "jit" : "interp";
    std::lock_guard<std::mutex> lock(state.mu);
    s.failed_compiles = state.failed_compiles;
    s.declined = static_cast<int>(state.declined.size());
    s.reused_code = state.reused_code;
    s.compile_ms = state.compile_ms;
    s.code_bytes = state.code_bytes;
    stats.push_back(std::move(s));
  }
  return stats;
}

}  // namespace kiln::runtime
