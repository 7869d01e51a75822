// Code generation for GEMM regions (graph::RegionKind::kGemm): the region's
// matrix product (graph/gemm_pattern.h) compiled by CompileGemm, with its
// bias, residual and activation applied to each tile in registers.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "graph/gemm_pattern.h"
#include "graph/graph.h"
#include "graph/region.h"
#include "jit/compiled_region.h"
#include "jit/jit_compiler.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::jit {

// Compiles `region` for region inputs of `input_dims`: M (the product of
// A's leading dims) a constant, or with `generic` a run-time parameter, so
// one version serves every M. The weight is packed during the call.
// Errors: kUnsupported when the region's node is not a GEMM the generator
// handles (the region stays interpreted); kInvalidArgument when the dims
// do not match the node; kInternal when LLVM fails.
StatusOr<std::unique_ptr<CompiledRegion>> CompileGemmRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                            const graph::Region& region,
                                                            const std::vector<Dims>& input_dims, bool generic);

// The epilogue activation for an activation name as graph/fuse_epilogues.h
// writes it ("" for none); kUnsupported for one the epilogue lacks.
StatusOr<GemmActivation> GemmActivationOf(const std::string& activation);

// Sets `epilogue`'s activation and its parameters from a fused node's.
Status SetEpilogueActivation(const graph::EpilogueActivation& activation, GemmEpilogue& epilogue);

// The index of `v` among `region`'s inputs, or -1.
int RegionInputIndex(const graph::Region& region, graph::ValueId v);

// Whether GEMM `code` computes a call with region inputs of `input_dims`
// correctly: A's last dim is K, a specialization's M is the call's, and a
// residual has the output's dims. Allocates nothing: it is the guard.
bool GemmServes(const CompiledRegion& code, const std::vector<Dims>& input_dims);

// For a call GemmServes accepts: the output's dims (A's leading dims, then
// N) and M, the product of A's leading dims.
void GemmCallShape(const CompiledRegion& code, const std::vector<Dims>& input_dims, Dims& output_dims, int64_t& m);

}  // namespace kiln::jit
