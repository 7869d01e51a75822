// Code generation for elementwise regions (graph::RegionKind::kElementwise):
// one LLVM function per shape specialization that walks the region's domain
// once, loads every input with its own broadcast strides, computes the whole
// chain of ops in vector registers and stores every output. No intermediate
// buffers exist.
#pragma once

#include <memory>
#include <vector>

#include "graph/graph.h"
#include "graph/region.h"
#include "jit/compiled_region.h"
#include "jit/jit_compiler.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::jit {

// Compiles `region` of `graph` for the concrete dims of its inputs
// (`input_dims[i]` for region.inputs[i]). Every shape and stride becomes a
// compile-time constant; single-element constant inputs (Value::constant)
// are baked in as immediates.
//
// The domain is the numpy-style broadcast of all input dims; every region
// output must have exactly the domain's shape.
//
// Errors: kUnsupported naming the op (or dtype) the generator does not
// handle — the caller then keeps the region interpreted; kInvalidArgument
// when the dims do not match the region or do not broadcast; kInternal when
// LLVM fails. Nothing is left in the JIT on failure.
StatusOr<std::unique_ptr<CompiledRegion>> CompileElementwiseRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                                   const graph::Region& region,
                                                                   const std::vector<Dims>& input_dims);

}  // namespace kiln::jit
