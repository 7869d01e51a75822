#include "runtime/payback_projection.h"

#include "runtime/break_even_ledger.h"

namespace kiln::runtime {

double PaybackProjection::DefaultSpeedup(graph::RegionKind kind) {
  switch (kind) {
    case graph::RegionKind::kElementwise: return 1.5;
    case graph::RegionKind::kRowReduction: return 1.3;
    case graph::RegionKind::kGemm: return 1.1;
    case graph::RegionKind::kDepthwiseConv: return 1.3;
    case graph::RegionKind::kAttention: return 1.5;
    case graph::RegionKind::kLstm: return 1.1;
  }
  return 1.1;
}

void PaybackProjection::RecordTrial(graph::RegionKind kind, double interpreted_ms, double compiled_ms) {
  // A zero compiled time (a clock too coarse for the call) says nothing
  // about the ratio.
  if (!(compiled_ms > 0) || !(interpreted_ms > 0)) return;
  MutexLock lock(mu_);
  KindHistory& h = history_[static_cast<size_t>(kind)];
  ++h.trials;
  h.speedup_sum += interpreted_ms / compiled_ms;
}

void PaybackProjection::RecordCompile(graph::RegionKind kind, int nodes, double compile_ms) {
  if (nodes <= 0) return;
  MutexLock lock(mu_);
  KindHistory& h = history_[static_cast<size_t>(kind)];
  h.compiled_nodes += nodes;
  h.compile_ms += compile_ms;
}

PaybackProjection::Projection PaybackProjection::Project(graph::RegionKind kind, int nodes,
                                                         double interpreted_ms_per_call) const {
  Projection p;
  {
    MutexLock lock(mu_);
    const KindHistory& h = history_[static_cast<size_t>(kind)];
    p.speedup_measured = h.trials > 0;
    p.speedup = p.speedup_measured ? h.speedup_sum / h.trials : DefaultSpeedup(kind);
    p.compile_measured = h.compiled_nodes > 0;
    const double ms_per_node =
        p.compile_measured ? h.compile_ms / static_cast<double>(h.compiled_nodes) : kDefaultCompileMsPerNode;
    p.compile_ms = ms_per_node * nodes;
  }
  p.saving_ms_per_call = p.speedup > 1 ? interpreted_ms_per_call * (1 - 1 / p.speedup) : 0;
  p.payback_calls = PaybackCalls(p.compile_ms, p.saving_ms_per_call);
  return p;
}

}  // namespace kiln::runtime
