#include "jit/region_ops.h"

#include <llvm/Bitcode/BitcodeWriter.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>

#include <llvm/IR/Constants.h>
#include <llvm/IR/DerivedTypes.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/raw_ostream.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "graph/fusible_ops.h"
#include "graph/log.h"
#include "jit/persistent_code_cache.h"
#include "jit/thread_cpu_clock.h"
#include "jit/vector_math.h"

namespace kiln::jit::internal {
using graph::Node;
using graph::ValueId;

OpEmitter::OpEmitter(const graph::Graph& graph, const graph::Region& region, llvm::IRBuilderBase& b, int lanes,
                     bool bit_exact)
    : graph_(graph), region_(region), b_(b), lanes_(lanes), bit_exact_(bit_exact) {}

llvm::Type* OpEmitter::VecTy(Kind kind) const {
  llvm::Type* elem = kind == Kind::kFloat ? b_.getFloatTy() : b_.getInt1Ty();
  return llvm::FixedVectorType::get(elem, static_cast<unsigned>(lanes_));
}

llvm::Type* OpEmitter::MemElemTy(Kind kind) const { return kind == Kind::kFloat ? b_.getFloatTy() : b_.getInt8Ty(); }

llvm::Value* OpEmitter::FConst(double v) const { return llvm::ConstantFP::get(VecTy(Kind::kFloat), v); }

llvm::Value* OpEmitter::Clamp01(llvm::Value* x) {
  x = b_.CreateSelect(b_.CreateFCmpOLT(x, FConst(0.0)), FConst(0.0), x);
  return b_.CreateSelect(b_.CreateFCmpOGT(x, FConst(1.0)), FConst(1.0), x);
}

Operand OpEmitter::Immediate(const InputSpec& spec) const {
  Operand op;
  op.kind = spec.kind;
  op.immediate = spec.immediate;
  op.v = spec.kind == Kind::kFloat ? FConst(spec.immediate)
                                   : llvm::ConstantInt::get(VecTy(Kind::kBool), spec.immediate != 0 ? 1 : 0);
  return op;
}

llvm::Value* OpEmitter::LoadVector(Kind kind, llvm::Value* ptr, llvm::Value* mask) {
  llvm::Type* vec = llvm::FixedVectorType::get(MemElemTy(kind), static_cast<unsigned>(lanes_));
  const llvm::Align align(kind == Kind::kFloat ? 4 : 1);
  llvm::Value* v = mask == nullptr ? static_cast<llvm::Value*>(b_.CreateAlignedLoad(vec, ptr, align))
                                   : b_.CreateMaskedLoad(vec, ptr, align, mask, llvm::Constant::getNullValue(vec));
  if (kind == Kind::kBool) v = b_.CreateICmpNE(v, llvm::Constant::getNullValue(vec));
  return v;
}

llvm::Value* OpEmitter::LoadSplat(Kind kind, llvm::Value* ptr) {
  llvm::Value* scalar = b_.CreateAlignedLoad(MemElemTy(kind), ptr, llvm::Align(1));
  if (kind == Kind::kBool) scalar = b_.CreateICmpNE(scalar, b_.getInt8(0));
  return b_.CreateVectorSplat(static_cast<unsigned>(lanes_), scalar);
}

llvm::Value* OpEmitter::Gather(Kind kind, llvm::Value* ptr, llvm::Value* indices, llvm::Value* mask) {
  llvm::Type* elem = MemElemTy(kind);
  llvm::Type* vec = llvm::FixedVectorType::get(elem, static_cast<unsigned>(lanes_));
  llvm::Value* ptrs = b_.CreateGEP(elem, ptr, indices);
  if (mask == nullptr) mask = llvm::ConstantInt::getTrue(VecTy(Kind::kBool));
  llvm::Value* v = b_.CreateMaskedGather(vec, ptrs, llvm::Align(kind == Kind::kFloat ? 4 : 1), mask,
                                         llvm::Constant::getNullValue(vec));
  if (kind == Kind::kBool) v = b_.CreateICmpNE(v, llvm::Constant::getNullValue(vec));
  return v;
}

void OpEmitter::StoreVector(Kind kind, llvm::Value* v, llvm::Value* ptr, llvm::Value* mask) {
  if (kind == Kind::kBool) v = b_.CreateZExt(v, llvm::FixedVectorType::get(b_.getInt8Ty(), lanes_));
  const llvm::Align align(kind == Kind::kFloat ? 4 : 1);
  if (mask == nullptr) {
    b_.CreateAlignedStore(v, ptr, align);
  } else {
    b_.CreateMaskedStore(v, ptr, align, mask);
  }
}

StatusOr<std::vector<Operand>> OpEmitter::EmitOps(const std::vector<Operand>& inputs) {
  std::vector<std::optional<Operand>> values(graph_.num_values());
  for (size_t i = 0; i < region_.inputs.size() && i < inputs.size(); ++i) {
    values[static_cast<size_t>(region_.inputs[i])] = inputs[i];
  }
  for (graph::NodeId id : region_.nodes) {
    const Node& node = graph_.node(id);
    std::vector<std::optional<Operand>> in;
    for (ValueId v : node.inputs) {
      if (v == graph::kNoValue) {
        in.push_back(std::nullopt);
        continue;
      }
      if (!values[static_cast<size_t>(v)]) {
        return InvalidArgument("jit: ", node.Describe(), " reads '", graph_.value(v).name,
                               "', which is neither a region input nor computed earlier in the region");
      }
      in.push_back(values[static_cast<size_t>(v)]);
    }
    StatusOr<Operand> out = EmitNode(node, in);
    if (!out.ok()) return out.status();
    const ValueId out_id = node.outputs[0];
    KILN_ASSIGN_OR_RETURN(Kind declared, KindOf(graph_.value(out_id).dtype));
    if (declared != out->kind) {
      return Unsupported("jit: ", node.Describe(), ": output dtype ", DTypeName(graph_.value(out_id).dtype),
                         " does not match what the op computes");
    }
    Operand result = *out;
    result.immediate.reset();
    values[static_cast<size_t>(out_id)] = result;
  }
  std::vector<Operand> outputs;
  for (ValueId o : region_.outputs) {
    const std::optional<Operand>& op = values[static_cast<size_t>(o)];
    if (!op) return InvalidArgument("jit: region output '", graph_.value(o).name, "' is not computed");
    outputs.push_back(*op);
  }
  return outputs;
}

StatusOr<Operand> OpEmitter::EmitNode(const Node& node, const std::vector<std::optional<Operand>>& in) {
  if (!node.domain.empty()) return Unsupported("jit: ", node.Describe(), ": domain '", node.domain, "'");
  const graph::FusibleOpInfo* info = graph::FindFusibleOp(node.op_type);
  if (info == nullptr) return Unsupported("jit: no fused code for ", node.Describe());
  if (node.outputs.size() != 1 || node.outputs[0] == graph::kNoValue) {
    return Unsupported("jit: ", node.Describe(), ": expected exactly one output");
  }
  // Arity and kind checks from the op's table entry.
  const size_t max_inputs = info->max_inputs == graph::kVariadic ? in.size() : static_cast<size_t>(info->max_inputs);
  if (in.size() < static_cast<size_t>(info->min_inputs) || in.size() > max_inputs) {
    return InvalidModel("jit: ", node.Describe(), " has ", in.size(), " inputs");
  }
  for (size_t i = 0; i < static_cast<size_t>(info->min_inputs); ++i) {
    if (!in[i]) return InvalidModel("jit: ", node.Describe(), ": input ", i, " is missing");
  }
  if (!info->accepts_bool) {
    for (const auto& o : in) {
      if (o && o->kind != Kind::kFloat) return Unsupported("jit: ", info->name, ": bool inputs");
    }
  }
  if (bit_exact_ && !DefaultFormIsBitExact(info->op)) return EmitBitExact(node, info->op, in);
  auto f = [](llvm::Value* v) { return Operand{v, Kind::kFloat, std::nullopt}; };
  auto mask = [](llvm::Value* v) { return Operand{v, Kind::kBool, std::nullopt}; };
  llvm::Value* x = in[0]->v;
  // The second operand of binary ops (checked present above).
  auto y = [&] { return in[1]->v; };

  switch (info->op) {
    case graph::FusibleOp::kNeg: return f(b_.CreateFNeg(x));
    case graph::FusibleOp::kAbs: return f(Intr(llvm::Intrinsic::fabs, x));
    case graph::FusibleOp::kSqrt: return f(Intr(llvm::Intrinsic::sqrt, x));
    case graph::FusibleOp::kReciprocal: return f(b_.CreateFDiv(FConst(1.0), x));
    case graph::FusibleOp::kExp: return f(EmitExp(b_, x));
    case graph::FusibleOp::kLog: return f(EmitLog(b_, x));
    case graph::FusibleOp::kFloor: return f(Intr(llvm::Intrinsic::floor, x));
    case graph::FusibleOp::kCeil: return f(Intr(llvm::Intrinsic::ceil, x));
    case graph::FusibleOp::kSigmoid: return f(EmitSigmoid(b_, x));
    case graph::FusibleOp::kTanh: return f(EmitTanh(b_, x));
    case graph::FusibleOp::kErf: return f(EmitErf(b_, x));
    // Selects on "x < 0" keep NaN inputs NaN.
    case graph::FusibleOp::kRelu: return f(b_.CreateSelect(b_.CreateFCmpOLT(x, FConst(0.0)), FConst(0.0), x));
    case graph::FusibleOp::kLeakyRelu: {
      KILN_ASSIGN_OR_RETURN(float alpha, node.GetFloat("alpha", 0.01f));
      return f(b_.CreateSelect(b_.CreateFCmpOLT(x, FConst(0.0)), b_.CreateFMul(x, FConst(alpha)), x));
    }
    case graph::FusibleOp::kElu: {
      KILN_ASSIGN_OR_RETURN(float alpha, node.GetFloat("alpha", 1.0f));
      llvm::Value* neg = b_.CreateFMul(EmitExpm1(b_, x), FConst(alpha));
      return f(b_.CreateSelect(b_.CreateFCmpOLT(x, FConst(0.0)), neg, x));
    }
    case graph::FusibleOp::kHardSigmoid: {
      KILN_ASSIGN_OR_RETURN(float alpha, node.GetFloat("alpha", 0.2f));
      KILN_ASSIGN_OR_RETURN(float beta, node.GetFloat("beta", 0.5f));
      return f(Clamp01(b_.CreateFAdd(b_.CreateFMul(x, FConst(alpha)), FConst(beta))));
    }
    case graph::FusibleOp::kHardSwish: {
      // x * HardSigmoid(x) with alpha = 1/6, beta = 0.5.
      llvm::Value* hs = Clamp01(b_.CreateFAdd(b_.CreateFMul(x, FConst(1.0f / 6.0f)), FConst(0.5)));
      return f(b_.CreateFMul(x, hs));
    }
    case graph::FusibleOp::kSoftplus: {
      // log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x.
      llvm::Value* pos = b_.CreateSelect(b_.CreateFCmpOGT(x, FConst(0.0)), x, FConst(0.0));
      llvm::Value* t = EmitExp(b_, b_.CreateFNeg(Intr(llvm::Intrinsic::fabs, x)));
      return f(b_.CreateFAdd(pos, EmitLog1p(b_, t)));
    }
    case graph::FusibleOp::kGelu: {
      KILN_ASSIGN_OR_RETURN(std::string approximate, node.GetString("approximate", "none"));
      llvm::Value* half_x = b_.CreateFMul(x, FConst(0.5));
      if (approximate == "none") {
        llvm::Value* e = EmitErf(b_, b_.CreateFMul(x, FConst(M_SQRT1_2)));
        return f(b_.CreateFMul(half_x, b_.CreateFAdd(e, FConst(1.0))));
      }
      if (approximate == "tanh") {
        llvm::Value* x3 = b_.CreateFMul(b_.CreateFMul(x, x), x);
        llvm::Value* inner =
            b_.CreateFMul(b_.CreateFAdd(x, b_.CreateFMul(x3, FConst(0.044715))), FConst(std::sqrt(2.0 / M_PI)));
        return f(b_.CreateFMul(half_x, b_.CreateFAdd(EmitTanh(b_, inner), FConst(1.0))));
      }
      return Unsupported("jit: Gelu: approximate='", approximate, "'");
    }
    case graph::FusibleOp::kAdd: return f(b_.CreateFAdd(x, y()));
    case graph::FusibleOp::kSub: return f(b_.CreateFSub(x, y()));
    case graph::FusibleOp::kMul: return f(b_.CreateFMul(x, y()));
    case graph::FusibleOp::kDiv: return f(b_.CreateFDiv(x, y()));
    case graph::FusibleOp::kPow: {
      if (in[1]->immediate) {
        // Common constant exponents without exp/log.
        const double e = *in[1]->immediate;
        if (e == 1.0) return f(x);
        if (e == 2.0) return f(b_.CreateFMul(x, x));
        if (e == 3.0) return f(b_.CreateFMul(b_.CreateFMul(x, x), x));
        if (e == 4.0) {
          llvm::Value* x2 = b_.CreateFMul(x, x);
          return f(b_.CreateFMul(x2, x2));
        }
        if (e == 0.0) return f(FConst(1.0));
        if (e == -1.0) return f(b_.CreateFDiv(FConst(1.0), x));
        if (e == 0.5) {
          // pow(-inf, 0.5) is +inf where sqrt gives NaN; pow(-0, 0.5) is +0.
          llvm::Value* s = Intr(llvm::Intrinsic::sqrt, x);
          s = b_.CreateSelect(b_.CreateFCmpOEQ(x, FConst(-std::numeric_limits<double>::infinity())),
                              FConst(std::numeric_limits<double>::infinity()), s);
          return f(b_.CreateSelect(b_.CreateFCmpOEQ(x, FConst(0.0)), FConst(0.0), s));
        }
      }
      return f(EmitPow(b_, x, y()));
    }
    case graph::FusibleOp::kMin:
    case graph::FusibleOp::kMax: {
      for (const auto& o : in) {
        if (!o) return InvalidModel("jit: ", node.Describe(), ": an input is missing");
      }
      // NaN in any operand gives NaN, like numpy's minimum / maximum.
      const bool min = info->op == graph::FusibleOp::kMin;
      llvm::Value* acc = x;
      for (size_t i = 1; i < in.size(); ++i) {
        llvm::Value* v = in[i]->v;
        llvm::Value* pick_acc = min ? b_.CreateFCmpOLT(acc, v) : b_.CreateFCmpOGT(acc, v);
        llvm::Value* r = b_.CreateSelect(pick_acc, acc, v);
        acc = b_.CreateSelect(b_.CreateFCmpUNO(acc, acc), acc, r);
      }
      return f(acc);
    }
    case graph::FusibleOp::kClip: {
      // Absent bounds are the float range's ends, as ONNX defines them (so
      // infinities clamp to them, as in the interpreter's kernel).
      llvm::Value* lo = FConst(std::numeric_limits<float>::lowest());
      llvm::Value* hi = FConst(std::numeric_limits<float>::max());
      if (node.opset < 11) {
        KILN_ASSIGN_OR_RETURN(float min_attr, node.GetFloat("min", std::numeric_limits<float>::lowest()));
        KILN_ASSIGN_OR_RETURN(float max_attr, node.GetFloat("max", std::numeric_limits<float>::max()));
        lo = FConst(min_attr);
        hi = FConst(max_attr);
      } else {
        if (in.size() > 1 && in[1]) lo = in[1]->v;
        if (in.size() > 2 && in[2]) hi = in[2]->v;
      }
      x = b_.CreateSelect(b_.CreateFCmpOLT(x, lo), lo, x);
      x = b_.CreateSelect(b_.CreateFCmpOGT(x, hi), hi, x);
      return f(x);
    }
    case graph::FusibleOp::kWhere: {
      if (in[0]->kind != Kind::kBool) return Unsupported("jit: Where: condition must be bool");
      if (in[1]->kind != in[2]->kind) return Unsupported("jit: Where: branches of different dtypes");
      return Operand{b_.CreateSelect(x, in[1]->v, in[2]->v), in[1]->kind, std::nullopt};
    }
    case graph::FusibleOp::kEqual:
    case graph::FusibleOp::kLess:
    case graph::FusibleOp::kGreater: {
      if (in[0]->kind != in[1]->kind) return Unsupported("jit: ", info->name, ": operands of different dtypes");
      if (in[0]->kind == Kind::kBool) {
        if (info->op != graph::FusibleOp::kEqual) return Unsupported("jit: ", info->name, ": bool inputs");
        return mask(b_.CreateICmpEQ(x, y()));
      }
      if (info->op == graph::FusibleOp::kEqual) return mask(b_.CreateFCmpOEQ(x, y()));
      if (info->op == graph::FusibleOp::kLess) return mask(b_.CreateFCmpOLT(x, y()));
      return mask(b_.CreateFCmpOGT(x, y()));
    }
    case graph::FusibleOp::kIdentity: return *in[0];
  }
  return Internal("jit: ", node.Describe(), ": fusible op without an emitter");
}

llvm::Function* DeclareEntry(llvm::Module& module, const std::string& name, bool generic, const std::string& cpu,
                             const std::string& features) {
  llvm::LLVMContext& ctx = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(ctx, 0);
  llvm::Type* i64 = llvm::Type::getInt64Ty(ctx);
  std::vector<llvm::Type*> params = {ptr, ptr, i64, i64};
  if (generic) params.push_back(ptr);
  auto* fn_type = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), params, false);
  llvm::Function* fn = llvm::Function::Create(fn_type, llvm::Function::ExternalLinkage, name, module);
  fn->addFnAttr(llvm::Attribute::NoUnwind);
  fn->addFnAttr("target-cpu", cpu);
  fn->addFnAttr("target-features", features);
  // Divisions marked arcp (EmitSigmoid's) may use the hardware reciprocal
  // estimate plus one Newton step instead of a divide.
  fn->addFnAttr("reciprocal-estimates", "vec-divf:1,divf:1");
  const char* const arg_names[] = {"inputs", "outputs", "row_begin", "row_end", "params"};
  for (unsigned a = 0; a < fn->arg_size(); ++a) fn->getArg(a)->setName(arg_names[a]);
  for (unsigned a : {0u, 1u, 4u}) {
    if (a >= fn->arg_size()) continue;
    fn->addParamAttr(a, llvm::Attribute::NoCapture);
    fn->addParamAttr(a, llvm::Attribute::ReadOnly);
  }
  return fn;
}

EntryPrologue EmitEntryPrologue(llvm::Module& module, llvm::IRBuilderBase& b, const std::string& name, bool generic,
                                const std::string& cpu, const std::string& features, const std::vector<bool>& baked,
                                size_t num_outputs, const std::function<llvm::Value*(llvm::Value* params)>& rows) {
  EntryPrologue p;
  p.fn = DeclareEntry(module, name, generic, cpu, features);
  llvm::LLVMContext& ctx = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(ctx, 0);
  llvm::Type* i64 = llvm::Type::getInt64Ty(ctx);
  p.entry = llvm::BasicBlock::Create(ctx, "entry", p.fn);
  b.SetInsertPoint(p.entry);
  if (generic) p.params = p.fn->getArg(4);
  llvm::Value* num_rows = rows(p.params);
  p.row_begin = b.CreateBinaryIntrinsic(llvm::Intrinsic::smax, p.fn->getArg(2), llvm::ConstantInt::get(i64, 0));
  p.row_end = b.CreateBinaryIntrinsic(llvm::Intrinsic::smin, p.fn->getArg(3), num_rows);
  p.inputs.assign(baked.size(), nullptr);
  for (size_t i = 0; i < baked.size(); ++i) {
    if (baked[i]) continue;
    llvm::Value* slot = b.CreateConstInBoundsGEP1_64(ptr, p.fn->getArg(0), i);
    p.inputs[i] = b.CreateAlignedLoad(ptr, slot, llvm::Align(8), "in" + std::to_string(i));
  }
  for (size_t k = 0; k < num_outputs; ++k) {
    llvm::Value* slot = b.CreateConstInBoundsGEP1_64(ptr, p.fn->getArg(1), k);
    p.outputs.push_back(b.CreateAlignedLoad(ptr, slot, llvm::Align(8), "out" + std::to_string(k)));
  }
  return p;
}

std::string ModuleCacheKey(llvm::Module& module, const std::string& name) {
  llvm::Function* entry = module.getFunction(name);
  const std::string identifier = module.getModuleIdentifier();
  const std::string source_file = module.getSourceFileName();
  if (entry != nullptr) entry->setName("entry");
  module.setModuleIdentifier("region");
  module.setSourceFileName("region");
  std::string key;
  {
    llvm::raw_string_ostream os(key);
    llvm::WriteBitcodeToFile(module, os);
  }
  if (entry != nullptr) entry->setName(name);
  module.setModuleIdentifier(identifier);
  module.setSourceFileName(source_file);
  return key;
}

StatusOr<RegionCode> EmitAndCompile(JitCompiler& compiler, const std::string& name,
                                    const std::function<Status(llvm::Module&)>& emit) {
  const int64_t start_ns = ThreadCpuNs();
  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = std::make_unique<llvm::Module>(name, *context);
  module->setDataLayout(compiler.data_layout());
  module->setTargetTriple(compiler.target_triple());
  KILN_RETURN_IF_ERROR(emit(*module));
  if (module->getFunction(name) == nullptr) {
    return Internal("jit: the generator emitted no entry function ", name);
  }
  const int64_t emitted_ns = ThreadCpuNs();
  std::string key = ModuleCacheKey(*module, name);
  std::shared_ptr<const JitCode> cached = compiler.code_cache().Find(key);
  constexpr double kNsPerMs = 1e6;
  Log().debug("jit: {}: IR emitted in {:.2f} ms, cache key ({} bytes) in {:.2f} ms of thread CPU; {}", name,
              static_cast<double>(emitted_ns - start_ns) / kNsPerMs, key.size(),
              static_cast<double>(ThreadCpuNs() - emitted_ns) / kNsPerMs,
              cached ? "reusing " + cached->symbol() : std::string("not compiled yet"));
  if (cached) return RegionCode{std::move(cached), true};
  PersistentCodeCache* disk = compiler.persistent_cache();
  if (disk == nullptr) {
    // Nothing is in the JIT before this point; Compile cleans up after itself.
    llvm::Expected<std::shared_ptr<const JitCode>> code =
        compiler.Compile(llvm::orc::ThreadSafeModule(std::move(module), std::move(context)), name);
    if (!code) return Internal("jit: compiling ", name, ": ", llvm::toString(code.takeError()));
    // Two threads may have compiled the same module at once: both keep
    // working code, later lookups find the first.
    std::shared_ptr<const JitCode> kept = compiler.code_cache().Insert(key, std::move(*code));
    const bool reused = kept->symbol() != name;
    return RegionCode{std::move(kept), reused};
  }

  // With a persistent cache the entry is named after its key, not this
  // process's serial number, so an object compiled by another process never
  // defines a name this one hands out.
  const std::string stored_name = "kiln_code_" + ContentHash(key);
  if (std::optional<PersistentCodeCache::Entry> entry = disk->Find(key)) {
    llvm::Expected<std::shared_ptr<const JitCode>> linked = compiler.Link(entry->object, entry->symbol);
    if (linked) {
      Log().info("jit: linked {} from the code cache ({} bytes of object), no compile", entry->symbol,
                 entry->object.size());
      std::shared_ptr<const JitCode> kept = compiler.code_cache().Insert(key, std::move(*linked));
      return RegionCode{std::move(kept), false, true};
    }
    // e.g. the same code being linked by another thread right now.
    Log().debug("jit: linking cached {} failed, compiling: {}", entry->symbol, llvm::toString(linked.takeError()));
  }
  module->getFunction(name)->setName(stored_name);
  module->setModuleIdentifier(stored_name);
  std::string object;
  llvm::Expected<std::shared_ptr<const JitCode>> code =
      compiler.Compile(llvm::orc::ThreadSafeModule(std::move(module), std::move(context)), stored_name, &object);
  if (!code) {
    // Most likely another thread holds the same code under the same name
    // right now (two compile threads, one region shape): use its code.
    if (std::shared_ptr<const JitCode> cached = compiler.code_cache().Find(key)) {
      llvm::consumeError(code.takeError());
      return RegionCode{std::move(cached), true};
    }
    return Internal("jit: compiling ", name, ": ", llvm::toString(code.takeError()));
  }
  if (!object.empty()) disk->Store(key, {stored_name, object});
  const JitCode* compiled = code->get();
  std::shared_ptr<const JitCode> kept = compiler.code_cache().Insert(key, std::move(*code));
  return RegionCode{kept, kept.get() != compiled};
}

}  // namespace kiln::jit::internal
