// Tier 1: per region, a dispatch slot of compiled specializations, the
// profile that decides when a region is hot, and the background compiles
// that fill the slot. The interpreter hands every call of a region unit to
// Run(), which alone decides which tier serves it.
//
// Dispatch never locks: a slot is an atomically published, immutable table
// of (signature -> code). Publishing a new table copies the old one and adds
// to it; a replaced table (and the code it holds) stays until the tier is
// destroyed, so a caller can never outlive the code it runs. Profiling takes
// a per-region mutex only on interpreted calls, which are the slow path by
// definition.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "graph/body_partitioner.h"
#include "graph/bounded_map.h"
#include "graph/graph.h"
#include "graph/mutex.h"
#include "graph/region.h"
#include "kiln/session.h"
#include "kiln/status.h"
#include "runtime/compile_queue.h"
#include "runtime/compile_scheduler.h"
#include "runtime/hot_set_manifest.h"
#include "runtime/payback_projection.h"
#include "runtime/region_call.h"
#include "runtime/shape_signature.h"
#include "runtime/specialization.h"

namespace kiln::jit {
class JitCompiler;
}  // namespace kiln::jit

namespace kiln::runtime {

class LazyJitCompiler;
class TraceRecorder;

// What the tier uses besides SessionOptions.
struct JitTierHooks {
  // When set, each compile is recorded on the trace's compile track.
  TraceRecorder* trace = nullptr;
  // The clock that times region calls, in nanoseconds (steady_clock when
  // empty). Tests drive trials with chosen times through it.
  std::function<int64_t()> now_ns;
  // Whether every core is computing a request right now: what paces
  // background compiles (SessionOptions::jit_compile_cpu_share). Empty:
  // never, so compiles are not paced.
  std::function<bool()> cores_busy;
};

// Which implementation served a region call.
enum class ServedBy { kInterpreter, kCompiledCode };

class JitTier {
 public:
  // The tier for `regions` of `graph` and the regions of its sub-graphs,
  // `bodies` (graph::PartitionBodies, ids continuing after `regions`'), under
  // `options` (its jit_* fields and tier policy: TierPolicy::kJit compiles
  // on the calling thread at a region signature's first call, so the next
  // call runs compiled). Regions are served by id: every id must be its
  // region's position in `regions` followed by the bodies' regions. Fails
  // when the JIT cannot be built for this host; the session then runs
  // interpreted.
  static StatusOr<std::unique_ptr<JitTier>> Create(const graph::Graph& graph, std::vector<graph::Region> regions,
                                                   const SessionOptions& options, JitTierHooks hooks = {},
                                                   const std::vector<graph::BodyRegions>& bodies = {});
  ~JitTier();

  // Top-level regions, then the bodies' regions (Region::path says where).
  const std::vector<graph::Region>& regions() const { return regions_; }

  // Runs one call of region `region`: through compiled code when the tier
  // has code for the call's input shapes (and no trial wants an interpreted
  // sample), otherwise through call.RunInterpreted(). Counts and times the
  // call, and when an interpreted signature turns hot, compiles it (kJit)
  // or queues its compile. Errors are the call's own (a kernel's, an
  // allocation's); a compile failure never fails a call.
  StatusOr<ServedBy> Run(int region, RegionCall& call) const;

  // The compiled code for `signature` (its specialization, else the generic
  // version if there is one), or null (a guard miss).
  std::shared_ptr<const Specialization> Lookup(int region, const ShapeSignature& signature) const;

  // Waits until no compile is queued or running.
  void WaitForCompiles() const;
  std::vector<RegionStats> Stats() const;
  // The persistent code cache's counters (zeros when it is off).
  void AddCacheStats(SessionStats& stats) const;

 private:
  struct Table;
  struct RegionState;

  JitTier(const graph::Graph& graph, std::vector<graph::Region> regions, const SessionOptions& options,
          JitTierHooks hooks);
  int64_t NowNs() const;
  // The graph region `region`'s nodes and values belong to.
  const graph::Graph& GraphOf(int region) const { return *graph_of_[static_cast<size_t>(region)]; }
  // Runs the call in the interpreter and counts it; compiles or queues the
  // signature when that makes it hot.
  Status RunInterpreted(int region, RegionCall& call, const ShapeSignature& signature) const;
  // Compiles `signature`, or the generic version when `generic` is set.
  // `interpreted_ns_per_call`: what the signature's calls took interpreted,
  // when a profile measured it (else 0).
  void Compile(int region, const ShapeSignature& signature, bool generic, int64_t interpreted_ns_per_call = 0) const;
  // Queues the compiles an earlier process recorded in hot_set_ (those that
  // fit this session's regions and limits), without waiting for the
  // regions to turn hot.
  void QueueHotSet() const;
  // Whether compiling `signature` of `region` would pay back within
  // SessionOptions::jit_payback_horizon_calls calls, projected from its
  // interpreted ms per call so far; logs the reason when it would not.
  bool PaysBackWithinHorizon(int region, const ShapeSignature& signature, double interpreted_ms_per_call) const;
  // Adds one timed call to the trial of `row_call` (if set) or `spec`; on
  // a drop, unpublishes `spec` or declines `row_call`'s signature.
  void AddTrialSample(int region, const Specialization& spec, const Specialization::RowCall* row_call, bool compiled,
                      int64_t nanoseconds) const;
  // Runs the call in the interpreter, as chosen (code exists but may not
  // serve yet): counted as an interpreted call, not profiled, not a deopt.
  Status RunInterpretedByChoice(int region, RegionCall& call) const;
  // A verification call (ShadowVerification::Turn::kVerify of
  // `verification`, which belongs to `row_call` if set, else to `spec`):
  // the interpreter serves the call, then `spec` runs on the same inputs
  // into buffers of its own and the two are compared. Reports the outcome
  // to `verification`; on a mismatch unpublishes `spec`, logs and counts it.
  Status RunVerification(int region, const Specialization& spec, const Specialization::RowCall* row_call,
                         const ShadowVerification& verification, RegionCall& call, CompiledCallScratch& scratch) const;
  // Compares what `spec` computes for the call with the interpreter's
  // outputs, which `call` holds already (the compile-triggering call of
  // TierPolicy::kJit, or RunVerification's).
  void Verify(int region, const Specialization& spec, const Specialization::RowCall* row_call,
              const ShadowVerification& verification, RegionCall& call, CompiledCallScratch& scratch) const;

  std::vector<graph::Region> regions_;
  std::vector<const graph::Graph*> graph_of_;  // parallel to regions_
  const SessionOptions options_;
  const JitTierHooks hooks_;
  // From options_, normalised: calls of one signature before it is
  // compiled, compiled signatures per region, and whether compiles run on
  // the calling thread.
  const int hot_threshold_;
  const int max_specializations_;
  const bool blocking_;
  // What this session's trials and compiles have measured, for the
  // break-even gate (SessionOptions::jit_payback_horizon_calls).
  mutable PaybackProjection projection_;
  // Built by the first compile, on its thread (lazy_jit_compiler.h).
  std::unique_ptr<LazyJitCompiler> compiler_;
  std::unique_ptr<RegionState[]> states_;
  // Paces background compiles; null when they are not paced. The compiler
  // calls it between passes, so it outlives every compile (the queue is
  // destroyed first, and ~JitTier stops it so no compile waits on it).
  std::unique_ptr<CompileScheduler> scheduler_;
  // Compiles in progress: compiled calls credit the scheduler with what
  // they saved only while some compile can use it.
  mutable std::atomic<int> compiles_running_{0};
  // The versions compiled for this model by any process, beside the
  // persistent code cache; null without one (or with compiles on the
  // calling thread).
  std::unique_ptr<HotSetManifest> hot_set_;
  // Declared last: destroyed first, so a running compile finishes while the
  // compiler and states it uses still exist (queued ones are dropped).
  std::unique_ptr<CompileQueue> queue_;
};

}  // namespace kiln::runtime
