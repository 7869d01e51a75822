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

// Turns every floating-point add of `module` into a subtract, so that the
// code computes x - y where the region means x + y. Every one, not the
// first: the first may sit in a loop that a given shape never enters (the
// full-vector loop of a row shorter than one vector), and then the code
// would still be right. Returns how many it changed: 0 when the module has
// no fadd (GEMM kernels accumulate with fused multiply-adds, for one).
int PerturbFloatAdds(llvm::Module& module);

}  // namespace kiln::jit
