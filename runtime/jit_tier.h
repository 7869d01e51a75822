// Tier 1: per region, a dispatch slot of compiled specialisations, the
// profile that decides when a region is hot, and the background compiles
// that fill the slot.
//
// Dispatch never locks: a slot is an atomically published, immutable table
// of (signature -> code). Publishing a new table copies the old one and adds
// to it; readers hold a shared_ptr to the table they found, so code stays
// alive until no caller can be running it. Profiling takes a per-region
// mutex only on interpreted calls, which are the slow path by definition.
#pragma once

#include <atomic>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "graph/region.h"
#include "kiln/session.h"
#include "kiln/status.h"
#include "runtime/compile_queue.h"
#include "runtime/shape_signature.h"

namespace kiln::jit {
class CompiledRegion;
class JitCompiler;
}  // namespace kiln::jit

namespace kiln::runtime {

class TraceRecorder;

struct JitTierOptions {
  // Interpreted calls with one signature before that signature is compiled.
  int hot_threshold = 2;
  // Compiled signatures per region. The first signature past the limit
  // compiles one shape-generic version that then serves every other one,
  // so dynamic shapes stop recompiling. A row-reduction region's generic
  // version serves the signatures that lay it out like the one it was
  // planned on (jit::CompileRowReductionRegionGeneric); others stay
  // interpreted.
  int max_specializations = 4;
  int compile_threads = 1;
  // Put each new specialisation on trial: the first calls of its signature
  // alternate between the compiled code and the interpreter until each has
  // TierTrial::kSamples, and code slower than the interpreter is
  // dropped (the signature then stays interpreted). Fused code is not
  // always faster: the interpreter's kernels are fused too (LayerNorm,
  // Gelu, GEMM epilogues), and a region's compiled loop can lose to them.
  // Generic row code is put on trial per signature (its RowCall); generic
  // elementwise code is not.
  bool keep_faster_tier = false;
  // Compile on the calling thread as soon as a signature is hot, so the
  // next call runs compiled (benchmarks, tests, `--tier jit`).
  bool blocking = false;
  std::string dump_dir;
  // Test hook: called before each compile; an error fails that compile as
  // an LLVM error would.
  std::function<Status(int region_id)> before_compile;
  // When set, each compile is recorded on the trace's compile track.
  TraceRecorder* trace = nullptr;
};

// A race between compiled code and the interpreter on one signature
// (JitTierOptions::keep_faster_tier): calls alternate between the two until
// each has kSamples timings, then the best of each decides once. Best, not
// median: noise on a shared machine only ever adds time. Thread-safe.
class TierTrial {
 public:
  static constexpr int kSamples = 4;
  enum class Verdict { kPending, kKeep, kDrop };

  // Puts the trial in force; before the code is published.
  void Start() { active_ = true; }
  // Whether this call should run interpreted, as the trial's comparison
  // sample: every other call while the trial runs, the first one compiled.
  bool TakeInterpretedTurn() const;
  // Adds a call's time. Returns kKeep or kDrop exactly once, to the call
  // that completes both sample sets; kPending to every other. Compiled code
  // within 3% of the interpreter is kept: that is noise.
  Verdict AddSample(bool compiled, int64_t nanoseconds) const;
  double compiled_best_ms() const { return static_cast<double>(compiled_best_ns_.load()) * 1e-6; }
  double interpreted_best_ms() const { return static_cast<double>(interpreted_best_ns_.load()) * 1e-6; }

 private:
  bool active_ = false;
  mutable std::atomic<int> turns_{0};
  mutable std::atomic<int> compiled_samples_{0};
  mutable std::atomic<int> interpreted_samples_{0};
  mutable std::atomic<int64_t> compiled_best_ns_{std::numeric_limits<int64_t>::max()};
  mutable std::atomic<int64_t> interpreted_best_ns_{std::numeric_limits<int64_t>::max()};
  mutable std::atomic<bool> decided_{false};
};

// One compiled version of a region and what a call needs besides the code:
// either specialised to one signature (dims are constants in the code), or
// shape-generic (dims are passed at run time): elementwise code for any
// signature whose inputs have at most `domain_rank` dims, row-reduction
// code for any signature with its layout.
struct Specialization {
  bool generic = false;
  ShapeSignature signature;        // specialised only
  std::vector<Dims> output_dims;   // specialised only: per region output
  int domain_rank = 0;             // generic elementwise code only
  std::shared_ptr<const jit::CompiledRegion> code;

  // What a call of generic row code needs for one signature.
  struct RowCall {
    ShapeSignature signature;
    bool served = false;  // false: the shapes lay the region out differently; interpret
    std::vector<int64_t> params;
    std::vector<Dims> output_dims;
    // Generic code is timed against the interpreter per signature (row
    // lengths differ in what wins); `declined` is set when it loses.
    TierTrial trial;
    mutable std::atomic<bool> declined{false};
  };
  // Specialised code: its signature's trial. Generic row code: whether each
  // signature's RowCall starts one.
  TierTrial trial;
  bool trial_row_calls = false;

  // Generic row code only: the call for `signature`, planned
  // (jit::PrepareGenericRowReductionCall) on the signature's first call and
  // remembered, so later calls do not plan the region again. Errors other
  // than a different layout are returned and not remembered.
  StatusOr<std::shared_ptr<const RowCall>> PlanRowCall(const graph::Graph& graph, const graph::Region& region,
                                                       const ShapeSignature& signature) const;

 private:
  mutable std::mutex row_calls_mutex_;
  mutable std::map<ShapeSignature, std::shared_ptr<const RowCall>> row_calls_;
};

class JitTier {
 public:
  // Fails when the JIT cannot be built for this host; the session then runs
  // interpreted.
  static StatusOr<std::unique_ptr<JitTier>> Create(const graph::Graph& graph, std::vector<graph::Region> regions,
                                                   const JitTierOptions& options);
  ~JitTier();

  const std::vector<graph::Region>& regions() const { return regions_; }

  // The compiled code for `signature` (its specialisation, else the generic
  // version if there is one), or null (a guard miss).
  std::shared_ptr<const Specialization> Lookup(int region, const ShapeSignature& signature) const;
  // Counts a call of `spec`'s code (with `row_call` for generic row code,
  // else null) that took `nanoseconds`.
  void RecordCompiledCall(int region, const Specialization& spec, const Specialization::RowCall* row_call,
                          int64_t nanoseconds) const;
  // Counts an interpreted call made as a trial's comparison sample
  // (TierTrial::TakeInterpretedTurn); not a deopt.
  void RecordTrialInterpretedCall(int region, const Specialization& spec, const Specialization::RowCall* row_call,
                                  int64_t nanoseconds) const;
  // Counts an interpreted call that took `nanoseconds`; when the signature
  // becomes hot, compiles it (blocking policy) or queues its compile.
  void RecordInterpretedCall(int region, const ShapeSignature& signature, int64_t nanoseconds) const;

  // Waits until no compile is queued or running.
  void WaitForCompiles() const;
  std::vector<RegionStats> Stats() const;

 private:
  struct Table;
  struct RegionState;

  JitTier(const graph::Graph& graph, std::vector<graph::Region> regions, const JitTierOptions& options);
  // Compiles `signature`, or the generic version when `generic` is set.
  void Compile(int region, const ShapeSignature& signature, bool generic) const;
  // Adds one timed call to the trial of `row_call` (if set) or `spec`; on
  // a drop, unpublishes `spec` or declines `row_call`'s signature.
  void AddTrialSample(int region, const Specialization& spec, const Specialization::RowCall* row_call,
                      bool compiled, int64_t nanoseconds) const;

  const graph::Graph& graph_;
  std::vector<graph::Region> regions_;
  JitTierOptions options_;
  std::unique_ptr<jit::JitCompiler> compiler_;
  std::unique_ptr<RegionState[]> states_;
  // Declared last: destroyed first, so a running compile finishes while the
  // compiler and states it uses still exist (queued ones are dropped).
  std::unique_ptr<CompileQueue> queue_;
};

}  // namespace kiln::runtime
