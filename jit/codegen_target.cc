#include "jit/codegen_target.h"

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetOptions.h>
#include <llvm/TargetParser/Host.h>

#include <cmath>
#include <mutex>

#include "jit/bit_exact_math.h"
#include "jit/vector_math.h"

namespace kiln::jit::internal {

llvm::Expected<std::unique_ptr<llvm::TargetMachine>> MakeTargetMachine(const std::string& triple,
                                                                       const std::string& cpu,
                                                                       const std::string& features) {
  std::string error;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (target == nullptr) return llvm::make_error<llvm::StringError>(error, llvm::inconvertibleErrorCode());
  std::unique_ptr<llvm::TargetMachine> tm(target->createTargetMachine(triple, cpu, features, llvm::TargetOptions(),
                                                                      llvm::Reloc::PIC_, llvm::CodeModel::Small,
                                                                      llvm::CodeGenOptLevel::Default));
  if (tm == nullptr) {
    return llvm::make_error<llvm::StringError>("cannot create a TargetMachine for " + cpu,
                                               llvm::inconvertibleErrorCode());
  }
  return tm;
}

GemmIsa IsaOf(const llvm::TargetMachine& tm) {
  const llvm::MCSubtargetInfo& sti = *tm.getMCSubtargetInfo();
  GemmIsa isa;
  if (sti.checkFeatures("+avx512f")) {
    isa = {"avx512", 16, 32};
  } else if (sti.checkFeatures("+avx")) {
    isa = {sti.checkFeatures("+avx2") ? "avx2" : "avx", 8, 16};
  } else {
    isa = {"sse", 4, 16};
  }
  return isa;
}

GemmIsa HostIsa(const JitCompiler& compiler) {
  return {compiler.isa_name(), compiler.isa_register_lanes(), compiler.isa_registers()};
}

void SetVectorFunctionAttributes(llvm::Function* fn, const std::string& cpu, const std::string& features, int lanes) {
  fn->addFnAttr(llvm::Attribute::NoUnwind);
  fn->addFnAttr("target-cpu", cpu);
  if (!features.empty()) fn->addFnAttr("target-features", features);
  const std::string width = std::to_string(lanes * 32);
  fn->addFnAttr("min-legal-vector-width", width);
  fn->addFnAttr("prefer-vector-width", width);
  // Divisions marked arcp (EmitSigmoid's) may use the hardware reciprocal
  // estimate plus one Newton step instead of a divide.
  fn->addFnAttr("reciprocal-estimates", "vec-divf:1,divf:1");
}

bool IsTranscendental(GemmActivation activation) {
  switch (activation) {
    case GemmActivation::kSigmoid:
    case GemmActivation::kTanh:
    case GemmActivation::kElu:
    case GemmActivation::kGeluErf:
    case GemmActivation::kGeluTanh:
    case GemmActivation::kSilu: return true;
    default: return false;
  }
}

llvm::Value* EmitActivation(llvm::IRBuilderBase& b, llvm::Value* x, const GemmEpilogue& e) {
  llvm::Type* type = x->getType();
  auto c = [&](double v) { return llvm::ConstantFP::get(type, v); };
  // Selects on "x < 0" and on the clamp bounds keep NaN inputs NaN.
  auto clamp = [&](llvm::Value* v, double lo, double hi) {
    v = b.CreateSelect(b.CreateFCmpOLT(v, c(lo)), c(lo), v);
    return b.CreateSelect(b.CreateFCmpOGT(v, c(hi)), c(hi), v);
  };
  llvm::Value* negative = b.CreateFCmpOLT(x, c(0.0));
  switch (e.activation) {
    case GemmActivation::kNone: return x;
    case GemmActivation::kRelu: return b.CreateSelect(negative, c(0.0), x);
    case GemmActivation::kLeakyRelu: return b.CreateSelect(negative, b.CreateFMul(x, c(e.alpha)), x);
    case GemmActivation::kClip: return clamp(x, e.alpha, e.beta);
    case GemmActivation::kSigmoid: return EmitSigmoid(b, x);
    case GemmActivation::kTanh: return EmitTanh(b, x);
    case GemmActivation::kHardSwish:
      return b.CreateFMul(x, clamp(b.CreateFAdd(b.CreateFMul(x, c(1.0f / 6.0f)), c(0.5)), 0.0, 1.0));
    case GemmActivation::kHardSigmoid: return clamp(b.CreateFAdd(b.CreateFMul(x, c(e.alpha)), c(e.beta)), 0.0, 1.0);
    case GemmActivation::kElu: return b.CreateSelect(negative, b.CreateFMul(EmitExpm1(b, x), c(e.alpha)), x);
    case GemmActivation::kGeluErf: {
      llvm::Value* erf = EmitErf(b, b.CreateFMul(x, c(M_SQRT1_2)));
      return b.CreateFMul(b.CreateFMul(x, c(0.5)), b.CreateFAdd(erf, c(1.0)));
    }
    case GemmActivation::kGeluTanh: {
      llvm::Value* x3 = b.CreateFMul(b.CreateFMul(x, x), x);
      llvm::Value* inner = b.CreateFMul(b.CreateFAdd(x, b.CreateFMul(x3, c(0.044715))), c(std::sqrt(2.0 / M_PI)));
      return b.CreateFMul(b.CreateFMul(x, c(0.5)), b.CreateFAdd(EmitTanh(b, inner), c(1.0)));
    }
    case GemmActivation::kSilu: return b.CreateFMul(x, EmitSigmoid(b, x));
  }
  return x;
}

llvm::Value* EmitBitExactActivation(llvm::IRBuilderBase& b, llvm::Value* x, const GemmEpilogue& e) {
  llvm::Type* type = x->getType();
  auto c = [&](float v) { return llvm::ConstantFP::get(type, static_cast<double>(v)); };
  // The kernels' clamp to [0, 1]: v > 0 ? v : 0, then v < 1 ? v : 1.
  auto clamp01 = [&](llvm::Value* v) {
    v = b.CreateSelect(b.CreateFCmpOGT(v, c(0.0f)), v, c(0.0f));
    return b.CreateSelect(b.CreateFCmpOLT(v, c(1.0f)), v, c(1.0f));
  };
  switch (e.activation) {
    case GemmActivation::kNone: return x;
    case GemmActivation::kRelu: return b.CreateSelect(b.CreateFCmpOGT(x, c(0.0f)), x, c(0.0f));
    case GemmActivation::kLeakyRelu: return b.CreateSelect(b.CreateFCmpOGE(x, c(0.0f)), x, b.CreateFMul(c(e.alpha), x));
    case GemmActivation::kClip: {
      llvm::Value* v = b.CreateSelect(b.CreateFCmpOLT(x, c(e.alpha)), c(e.alpha), x);
      return b.CreateSelect(b.CreateFCmpOGT(v, c(e.beta)), c(e.beta), v);
    }
    case GemmActivation::kSigmoid: return EmitBitExactSigmoid(b, x);
    case GemmActivation::kTanh: return EmitBitExactTanh(b, x);
    case GemmActivation::kHardSwish:
      return b.CreateFMul(x, clamp01(b.CreateFAdd(b.CreateFMul(x, c(1.0f / 6.0f)), c(0.5f))));
    case GemmActivation::kHardSigmoid: return clamp01(b.CreateFAdd(b.CreateFMul(c(e.alpha), x), c(e.beta)));
    case GemmActivation::kGeluErf: {
      llvm::Value* erf = EmitBitExactErf(b, b.CreateFMul(x, c(0.70710678118654752f)));
      return b.CreateFMul(b.CreateFMul(c(0.5f), x), b.CreateFAdd(c(1.0f), erf));
    }
    case GemmActivation::kGeluTanh: {
      llvm::Value* x3 = b.CreateFMul(b.CreateFMul(b.CreateFMul(c(0.044715f), x), x), x);
      llvm::Value* inner = b.CreateFMul(c(static_cast<float>(0.79788456080286535588)), b.CreateFAdd(x, x3));
      return b.CreateFMul(b.CreateFMul(c(0.5f), x), b.CreateFAdd(c(1.0f), EmitBitExactTanh(b, inner)));
    }
    case GemmActivation::kSilu: return b.CreateFMul(x, EmitBitExactSigmoid(b, x));
    case GemmActivation::kElu: break;
  }
  return x;
}

StatusOr<std::string> EmitAssemblyFor(const std::string& cpu, const std::string& features,
                                      const std::function<Status(llvm::Module&, const GemmIsa&)>& emit) {
  static std::once_flag init_once;
  std::call_once(init_once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
  const std::string triple = llvm::sys::getProcessTriple();
  llvm::Expected<std::unique_ptr<llvm::TargetMachine>> tm = MakeTargetMachine(triple, cpu, features);
  if (!tm) return InvalidArgument("jit: ", llvm::toString(tm.takeError()));
  if (!(*tm)->getMCSubtargetInfo()->isCPUStringValid(cpu)) return InvalidArgument("jit: unknown CPU '", cpu, "'");

  llvm::LLVMContext context;
  llvm::Module module("kiln_assembly", context);
  module.setDataLayout((*tm)->createDataLayout());
  module.setTargetTriple(triple);
  KILN_RETURN_IF_ERROR(emit(module, IsaOf(**tm)));
  std::string problems;
  llvm::raw_string_ostream problems_os(problems);
  if (llvm::verifyModule(module, &problems_os)) return Internal("jit: generated IR is invalid: ", problems);
  if (llvm::Error err = RunCleanupPipeline(module, **tm)) return Internal("jit: ", llvm::toString(std::move(err)));

  llvm::SmallString<0> text;
  llvm::raw_svector_ostream os(text);
  llvm::legacy::PassManager pm;
  if ((*tm)->addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::AssemblyFile)) {
    return Internal("jit: the target cannot emit assembly for ", cpu);
  }
  pm.run(module);
  return std::string(text.str());
}

}  // namespace kiln::jit::internal
