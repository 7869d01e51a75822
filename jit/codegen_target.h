// What the compute-kernel generators (GEMM, depthwise convolution) share:
// a TargetMachine for the host or a named CPU, the vector unit it offers,
// the function attributes that make LLVM use its full width, the epilogue
// activations, and assembly output for tests that read the generated code
// for a CPU this host is not. Internal to jit/.
#pragma once

#include <llvm/IR/Function.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>
#include <llvm/Target/TargetMachine.h>

#include <functional>
#include <memory>
#include <string>

#include "jit/gemm_codegen.h"
#include "jit/gemm_packing.h"
#include "jit/jit_compiler.h"
#include "kiln/status.h"

namespace kiln::jit::internal {

llvm::Expected<std::unique_ptr<llvm::TargetMachine>> MakeTargetMachine(const std::string& triple,
                                                                       const std::string& cpu,
                                                                       const std::string& features);

// The vector unit as the target machine describes it (the CPU's default
// features adjusted by the explicit ones).
GemmIsa IsaOf(const llvm::TargetMachine& tm);

// The JIT's vector unit (what IsaOf says of its TargetMachine, found once
// when the JitCompiler was built).
GemmIsa HostIsa(const JitCompiler& compiler);

// Target CPU and features, no unwinding, and a preferred vector width of
// `lanes` floats: CPUs tuned to prefer 256-bit vectors (skylake-avx512)
// would otherwise split every 512-bit operation in two.
void SetVectorFunctionAttributes(llvm::Function* fn, const std::string& cpu, const std::string& features, int lanes);

// Activations that are a few dozen instructions per vector (exp, erf, tanh
// based), as opposed to selects and multiplies.
bool IsTranscendental(GemmActivation activation);

// `e`'s activation applied to the float vector `x` (ONNX's formulas; NaN
// stays NaN).
llvm::Value* EmitActivation(llvm::IRBuilderBase& b, llvm::Value* x, const GemmEpilogue& e);
// The same with the interpreter's formulas (kernels/epilogue.cc and the
// elementwise kernels), bit for bit; Elu, whose kernel calls libm's expm1,
// is not among them (bit-exact GEMMs with it are refused before).
llvm::Value* EmitBitExactActivation(llvm::IRBuilderBase& b, llvm::Value* x, const GemmEpilogue& e);

// The short optimisation pipeline every generated module gets before code
// generation (jit_compiler.cc says which passes and why). `before_each_pass`,
// when set, is called before every pass (JitOptions::yield_point).
llvm::Error RunCleanupPipeline(llvm::Module& module, llvm::TargetMachine& tm,
                               const std::function<void()>& before_each_pass = {});

// The assembly of the module `emit` fills (after RunCleanupPipeline) for `cpu` (LLVM's name, e.g.
// "skylake-avx512", "znver4", "haswell") with its default features when
// `features` is empty, else with `features` ("+avx2,-avx512f" style).
// `emit` gets the module (data layout and triple set) and the target's
// vector unit. kInvalidArgument for an unknown CPU.
StatusOr<std::string> EmitAssemblyFor(const std::string& cpu, const std::string& features,
                                      const std::function<Status(llvm::Module&, const GemmIsa&)>& emit);

}  // namespace kiln::jit::internal
