// Dynamic shapes, request after request: does the JIT keep paying off when
// every request may have a new shape? For each zoo model with one symbolic
// dim (e.g. the transformer's sequence length), and for models kiln_bench
// builds (LayerNorm + GELU over a dynamic number of rows), at 1 thread:
//
//   BM_ShapeStream/model:MODEL/tier:interp|jit
//
// sends a fixed cycle of kStreamSizes sizes of that dim (three times more
// than the default specialization limit of 4), so the JIT tier compiles four
// specializations, then one shape-generic version per region that serves
// the rest. One untimed cycle warms up (and, for the JIT, compiles, with the
// blocking policy); the benchmark's time is one whole cycle (one request
// per size), items_per_second counts requests. Before timing, every size's
// JIT outputs are checked against the interpreter's. Counters:
//   sizes               distinct sizes in the cycle
//   regions             the JIT session's regions (0: both tiers interpret)
//   compiled_fraction   region calls that ran compiled code
//   specializations     compiled versions over all regions (generic ones included)
//   deopts              region calls interpreted while code for other shapes existed
#pragma once

#include <string>

namespace kiln::bench {

// The zoo's models with a dynamic dim.
void RegisterShapeStream(const std::string& zoo_dir);
// A model given as bytes (its only input has one dim that is not fixed).
void RegisterShapeStream(const std::string& name, std::string model_bytes);

}  // namespace kiln::bench
