// One compiled version of a region, as the JIT tier publishes it, and how a
// region call runs through it: the argument marshalling for the compiled
// code's ABI (jit/compiled_region.h) lives here and nowhere else.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "graph/bounded_map.h"
#include "graph/graph.h"
#include "graph/mutex.h"
#include "graph/region.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "runtime/break_even_ledger.h"
#include "runtime/region_call.h"
#include "runtime/shadow_verification.h"
#include "runtime/shape_signature.h"
#include "runtime/tier_trial.h"

namespace kiln::jit {
class CompiledRegion;
}  // namespace kiln::jit

namespace kiln::runtime {

// What the tier keeps per execution frame between calls, so a warm call
// allocates nothing.
struct CompiledCallScratch final : RegionScratch {
  ShapeSignature signature;
  std::vector<const void*> input_ptrs;
  std::vector<void*> output_ptrs;
  std::vector<int64_t> params;  // shape-generic elementwise code's dims and strides
  Dims domain;
  Dims gemm_output_dims;
  std::vector<float> lstm_work;  // LSTM code's projections and states
};

// Either specialized to one signature (dims are constants in the code), or
// shape-generic (dims are passed at run time): elementwise code for any
// signature whose inputs have at most `domain_rank` dims, row-reduction
// code for any signature with its layout.
struct Specialization {
  bool generic = false;
  ShapeSignature signature;       // specialized only
  std::vector<Dims> output_dims;  // specialized only: per region output
  int domain_rank = 0;            // generic elementwise code only
  std::shared_ptr<const jit::CompiledRegion> code;

  // The kinds whose generic code is planned, verified and put on trial per
  // signature (PlanRowCall, RowCall): row reductions, whose row lengths
  // differ in what wins, and attention, whose sequence lengths do.
  static bool PlannedPerSignature(graph::RegionKind kind) {
    return kind == graph::RegionKind::kRowReduction || kind == graph::RegionKind::kAttention;
  }

  // What a call of generic row (or attention) code needs for one signature.
  struct RowCall {
    ShapeSignature signature;
    bool served = false;  // false: the shapes lay the region out differently; interpret
    std::vector<int64_t> params;
    std::vector<Dims> output_dims;
    // Generic code is timed against the interpreter per signature (row
    // lengths differ in what wins); `declined` is set when it loses.
    TierTrial trial;
    mutable std::atomic<bool> declined{false};
    // Each signature's plan is new code as far as correctness goes, so it
    // is verified before it serves.
    ShadowVerification verification;
  };
  // Specialized code: its signature's trial. Generic row code: whether each
  // signature's RowCall starts one.
  TierTrial trial;
  bool trial_row_calls = false;
  // Verification before this code serves (SessionOptions::jit_verify_calls):
  // its own, except for generic row code, whose RowCalls each start one of
  // `row_call_verify_calls` calls.
  ShadowVerification verification;
  int row_call_verify_calls = 0;
  // Specialized code: what a call of its signature took interpreted, from
  // the profile that made it hot or, for code compiled without one (the hot
  // set, WarmUp), from its trial; 0 until known. Each compiled call credits
  // the compile scheduler with what it saved against this.
  mutable std::atomic<int64_t> interpreted_ns_per_call{0};
  // This version's break-even account, shared with the region's stats so it
  // outlives the code. Never null once published.
  std::shared_ptr<const BreakEvenLedger> ledger;

  // Generic row or attention code only: the call for `signature`, planned
  // (jit::PrepareGenericRowReductionCall, jit::PrepareAttentionCall) on the signature's first call and
  // remembered, so later calls do not plan the region again. Errors other
  // than a different layout are returned and not remembered.
  StatusOr<std::shared_ptr<const RowCall>> PlanRowCall(const graph::Graph& graph, const graph::Region& region,
                                                       const ShapeSignature& signature) const;

  // Whether this code computes a call on `signature` (its guard): the
  // signature itself for specialized code; for generic code, any signature
  // of at most its rank (elementwise), any (row reductions: PlanRowCall
  // decides per signature), any with the same K (GEMM), or any with the
  // same head dim whose operands fit (attention).
  bool Serves(const graph::Region& region, const ShapeSignature& signature) const;

  // Runs `call` through this code: allocates the region's outputs and
  // splits the work over the call's threads. `row_call` is the plan for
  // these shapes when the code is generic row code (PlanRowCall; it must
  // serve them), else null. Returns the floating-point operations done
  // (GEMM code; 0 for others).
  StatusOr<double> Run(const graph::Region& region, const RowCall* row_call, RegionCall& call,
                       CompiledCallScratch& scratch) const;

 private:
  // A stream of new shapes must not grow the remembered plans without
  // bound: past this many, they start over (a shape still in use is planned
  // again once).
  static constexpr size_t kMaxRowCalls = 256;

  StatusOr<double> RunGemm(RegionCall& call, CompiledCallScratch& scratch) const;
  StatusOr<double> RunAttention(RegionCall& call, CompiledCallScratch& scratch) const;
  StatusOr<double> RunLstm(const graph::Region& region, RegionCall& call, CompiledCallScratch& scratch) const;

  mutable Mutex row_calls_mutex_;
  mutable BoundedMap<ShapeSignature, std::shared_ptr<const RowCall>> row_calls_ KILN_GUARDED_BY(row_calls_mutex_){
      kMaxRowCalls};
};

}  // namespace kiln::runtime
