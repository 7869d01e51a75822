// Deliberately wrong code, for tests of what guards against wrong code:
// shadow verification (SessionOptions::jit_verify_calls) must keep a
// miscompiled region from ever serving a request. Installed through
// JitOptions::rewrite_ir (SessionOptions::jit_test_perturb_ir); never used
// otherwise.
#pragma once

namespace llvm {
class Module;
}  // namespace llvm

namespace kiln::jit {

// Turns the first floating-point add of `module` (in function and
// instruction order) into a subtract, so that the code computes x - y where
// the region means x + y. Returns false when the module has no fadd (GEMM
// kernels accumulate with fused multiply-adds, for one): nothing changed.
bool PerturbFirstFloatAdd(llvm::Module& module);

}  // namespace kiln::jit
