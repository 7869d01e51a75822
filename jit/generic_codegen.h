// Shape-generic code for elementwise regions: one function per region and
// domain rank whose dims and strides are runtime parameters, for regions
// whose shapes change too often to specialize (the runtime compiles one of
// these once a region has used up its specializations).
//
// It computes the same ops as the specialized code (the op emission is
// shared, jit/region_ops.h) and differs in addressing only: per row it
// advances an index odometer instead of dividing by constant extents, and
// it picks one of several versions of the inner loop with a branch outside
// that loop, from the innermost strides:
// - every loaded input with inner stride 1 (vector loads) or 0 (a splat
//   loaded once per row), one version per combination when at most
//   kMaxVersionedInputs inputs are loaded (only the all-contiguous one
//   otherwise);
// - any other stride: a gather version that handles every stride.
// When every input is either dense with the domain's shape or a single
// broadcast element, the whole requested row range is run as one long row,
// so short rows cost nothing extra.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "graph/graph.h"
#include "graph/region.h"
#include "jit/compiled_region.h"
#include "jit/jit_compiler.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::jit {

// The largest domain rank CompileElementwiseRegionGeneric accepts.
inline constexpr int kMaxGenericRank = 12;
// Up to this many loaded (non-baked) inputs, every stride-0/stride-1
// combination gets its own inner loop (2^n versions).
inline constexpr int kMaxVersionedInputs = 3;

// Compiles `region` of `graph` once for every input shape whose broadcast
// domain has rank `domain_rank` (the caller pads lower ranks with leading
// 1s, as FillGenericParams does). Run it through
// CompiledRegion::RunGeneric() with the params documented at
// CompiledRegion::GenericEntryFn. Single-element constant inputs
// (Value::constant) are baked in as immediates (is_input_baked).
//
// Every region output must depend on every region input that is not baked:
// then its shape is the domain's for any input dims (a baked constant only
// adds dims of size 1, which do not change a dense layout).
//
// Errors: kUnsupported naming the op or dtype the generator does not
// handle, or an output that does not depend on every input;
// kInvalidArgument for a domain_rank outside [0, kMaxGenericRank] or a
// malformed region; kInternal when LLVM fails. Nothing is left in the JIT
// on failure.
StatusOr<std::unique_ptr<CompiledRegion>> CompileElementwiseRegionGeneric(JitCompiler& compiler,
                                                                          const graph::Graph& graph,
                                                                          const graph::Region& region, int domain_rank);

// Builds the params of a generic entry for region inputs of `input_dims`
// (region.inputs order) and a domain of rank `domain_rank`: on success
// `params` holds R + n*R values (layout at CompiledRegion::GenericEntryFn)
// and `domain_dims` the broadcast domain (rank R, leading 1s added), which
// is also the shape of every output. Strides are those of dense row-major
// inputs. On failure (kInvalidArgument: an input of rank above
// domain_rank, a negative dim, dims that do not broadcast, a domain_rank
// outside [0, kMaxGenericRank], or too many elements) neither output is
// changed.
Status FillGenericParams(const std::vector<Dims>& input_dims, int domain_rank, std::vector<int64_t>& params,
                         Dims& domain_dims);

}  // namespace kiln::jit
