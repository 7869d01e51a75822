// Before compiling a hot signature, how many calls the compile would take
// to pay for itself (SessionOptions::jit_payback_horizon_calls). Nothing is
// compiled yet, so both sides are projected from what this session has
// measured so far, and from conservative defaults until it has:
//
//   saving per call  = the signature's measured interpreted ms per call
//                      x (1 - 1 / speedup), where speedup is the mean
//                      interpreted/compiled ratio (trial medians) of this
//                      session's finished trials of regions of the same kind,
//                      or kDefaultSpeedup for the kind before any trial;
//   compile ms       = this session's compile ms per region node for the
//                      kind (fresh compiles, cache links and IR reuses alike:
//                      they are what the next compile will likely cost) x the
//                      region's node count, or kDefaultCompileMsPerNode;
//   payback calls    = compile ms / saving per call.
//
// The defaults are modest guesses, not measurements: under a horizon, a
// session's first compiles of a kind must pay back even if the code is only
// a little faster. Measurements then replace them. A slower trial (speedup
// <= 1) counts too, so a kind that never wins here stops being compiled
// under a horizon.
#pragma once

#include <array>
#include <cstdint>

#include "graph/mutex.h"
#include "graph/region.h"

namespace kiln::runtime {

class PaybackProjection {
 public:
  // Before any trial of a kind: a modest guess of how much faster compiled
  // code is than the interpreter's kernels (GEMM least, since the
  // interpreter's packed GEMM is already fused and tuned).
  static double DefaultSpeedup(graph::RegionKind kind);
  // Before any compile of a kind: a guess of a few ms per node, the order
  // of the compile times kiln logs for small regions.
  static constexpr double kDefaultCompileMsPerNode = 5.0;

  struct Projection {
    double speedup = 1;
    bool speedup_measured = false;  // from this session's trials, not the default
    double saving_ms_per_call = 0;
    double compile_ms = 0;
    bool compile_measured = false;
    // ceil(compile_ms / saving_ms_per_call); -1: never pays back.
    int64_t payback_calls = -1;
  };

  // A finished trial: each tier's median ms per call.
  void RecordTrial(graph::RegionKind kind, double interpreted_ms, double compiled_ms);
  // A compile (or link, or reuse) of a region of `nodes` nodes.
  void RecordCompile(graph::RegionKind kind, int nodes, double compile_ms);

  Projection Project(graph::RegionKind kind, int nodes, double interpreted_ms_per_call) const;

 private:
  struct KindHistory {
    int trials = 0;
    double speedup_sum = 0;
    int64_t compiled_nodes = 0;
    double compile_ms = 0;
  };
  // One entry per graph::RegionKind value; kLstm is the last.
  static constexpr int kKinds = static_cast<int>(graph::RegionKind::kLstm) + 1;

  mutable Mutex mu_;
  std::array<KindHistory, kKinds> history_ KILN_GUARDED_BY(mu_){};
};

}  // namespace kiln::runtime
