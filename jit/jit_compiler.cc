#include "jit/jit_compiler.h"

#include "jit/codegen_target.h"
#include "jit/thread_cpu_clock.h"

#include <llvm/Config/llvm-config.h>
#include <llvm/ExecutionEngine/Orc/CompileUtils.h>
#include <llvm/ExecutionEngine/Orc/Core.h>
#include <llvm/ExecutionEngine/Orc/ExecutorProcessControl.h>
#include <llvm/ExecutionEngine/Orc/IRTransformLayer.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ObjectLinkingLayer.h>
#include <llvm/ExecutionEngine/Orc/ObjectTransformLayer.h>
#include <llvm/ExecutionEngine/Orc/TaskDispatch.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/OptBisect.h>
#include <llvm/IR/PassInstrumentation.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Object/ObjectFile.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/FileSystem.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/Path.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/SubtargetFeature.h>
#include <llvm/Transforms/Utils/Cloning.h>

#include <cstdlib>
#include <map>
#include <vector>

#include "graph/log.h"
#include "graph/mutex.h"
#include "kiln/version.h"

namespace kiln::jit {

namespace {

// Code generation runs on LLVM's legacy pass manager, which has no
// instrumentation callbacks; but most of its passes ask their context's
// pass gate whether to run (the hook behind -opt-bisect-limit). This gate
// says yes to every pass, after a yield point.
class YieldingPassGate final : public llvm::OptPassGate {
 public:
  explicit YieldingPassGate(std::function<void()> yield_point) : yield_point_(std::move(yield_point)) {}
  bool shouldRunPass(const llvm::StringRef, llvm::StringRef) override {
    yield_point_();
    return true;
  }
  bool isEnabled() const override { return true; }

 private:
  std::function<void()> yield_point_;
};

// TargetMachines for the host, kept from one compile to the next. A new
// TargetMachine builds its subtarget (the X86 lowering tables) again for
// the first function it sees, which costs more than the IR transforms of a
// small module; the optimiser and the code generator each needed one per
// compile. A TargetMachine is not safe to use from two threads at once
// (its subtarget cache has no lock), so each use borrows one for its
// duration; the pool holds at most as many as compiles ever ran at once.
class TargetMachinePool {
 public:
  explicit TargetMachinePool(llvm::orc::JITTargetMachineBuilder builder)
      : options_(builder.getOptions()), builder_(std::move(builder)) {}

  // A TargetMachine that no other thread is using: an idle one, or a new one.
  llvm::Expected<std::unique_ptr<llvm::TargetMachine>> Take() {
    MutexLock lock(mutex_);
    if (!idle_.empty()) {
      std::unique_ptr<llvm::TargetMachine> tm = std::move(idle_.back());
      idle_.pop_back();
      return tm;
    }
    return builder_.createTargetMachine();
  }
  void Return(std::unique_ptr<llvm::TargetMachine> tm) {
    MutexLock lock(mutex_);
    idle_.push_back(std::move(tm));
  }
  const llvm::TargetOptions& options() const { return options_; }

 private:
  const llvm::TargetOptions options_;
  Mutex mutex_;
  llvm::orc::JITTargetMachineBuilder builder_ KILN_GUARDED_BY(mutex_);  // createTargetMachine is not const
  std::vector<std::unique_ptr<llvm::TargetMachine>> idle_ KILN_GUARDED_BY(mutex_);
};

// Code generation for LLJIT's compile layer on a TargetMachine borrowed
// from the pool; otherwise what ORC's own compilers do (SimpleCompiler, the
// object buffer named "<module>-jitted-objectbuffer").
class PooledIRCompiler final : public llvm::orc::IRCompileLayer::IRCompiler {
 public:
  explicit PooledIRCompiler(std::shared_ptr<TargetMachinePool> pool)
      : IRCompiler(llvm::orc::irManglingOptionsFromTargetOptions(pool->options())), pool_(std::move(pool)) {}

  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> operator()(llvm::Module& module) override {
    llvm::Expected<std::unique_ptr<llvm::TargetMachine>> tm = pool_->Take();
    if (!tm) return tm.takeError();
    llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> object = llvm::orc::SimpleCompiler(**tm)(module);
    pool_->Return(std::move(*tm));
    return object;
  }

 private:
  std::shared_ptr<TargetMachinePool> pool_;
};

}  // namespace

struct JitCompiler::State {
  // The optimiser's and the code generator's TargetMachines.
  std::shared_ptr<TargetMachinePool> target_machines;
  std::string dump_dir;
  std::function<void(llvm::Module&)> rewrite_ir;
  // JitOptions::yield_point, and the pass gate that calls it during code
  // generation (stateless, so every compile's context may share it). Null
  // without a yield point.
  std::function<void()> yield_point;
  std::unique_ptr<YieldingPassGate> codegen_gate;

  Mutex object_sizes_mutex;
  // Keyed by object buffer name.
  std::map<std::string, size_t> object_sizes KILN_GUARDED_BY(object_sizes_mutex);
  // With a persistent cache: each emitted object, for Compile() to hand to
  // it. Keyed by object buffer name.
  bool capture_objects = false;
  std::map<std::string, std::string> objects KILN_GUARDED_BY(object_sizes_mutex);
  // The compiling thread's CPU clock (ThreadCpuNs) when each module's
  // optimisation ended, keyed by module name, and when its object was
  // emitted, keyed by object buffer name: Compile() splits its time into
  // phases with them (all of a compile runs on the thread calling it).
  std::map<std::string, int64_t> optimised_at KILN_GUARDED_BY(object_sizes_mutex);
  std::map<std::string, int64_t> emitted_at KILN_GUARDED_BY(object_sizes_mutex);

  explicit State(llvm::orc::JITTargetMachineBuilder builder)
      : target_machines(std::make_shared<TargetMachinePool>(std::move(builder))) {}
};

namespace {

llvm::Error MakeError(const std::string& message) {
  return llvm::make_error<llvm::StringError>(message, llvm::inconvertibleErrorCode());
}

// Dumps failing is not a compile failure: log and carry on.
void DumpModule(const std::string& dir, llvm::Module& module, llvm::TargetMachine& tm) {
  if (std::error_code ec = llvm::sys::fs::create_directories(dir)) {
    Log().warn("jit: cannot create dump directory {}: {}", dir, ec.message());
    return;
  }
  llvm::SmallString<256> base(dir);
  llvm::sys::path::append(base, module.getModuleIdentifier());
  {
    std::error_code ec;
    llvm::raw_fd_ostream os((base + ".ll").str(), ec);
    if (ec) {
      Log().warn("jit: cannot write {}.ll: {}", base.str().str(), ec.message());
    } else {
      module.print(os, nullptr);
    }
  }
  // Code generation rewrites the IR it runs on, so emit the assembly from a
  // copy and leave the module for the real compile.
  std::unique_ptr<llvm::Module> copy = llvm::CloneModule(module);
  std::error_code ec;
  llvm::raw_fd_ostream os((base + ".s").str(), ec);
  if (ec) {
    Log().warn("jit: cannot write {}.s: {}", base.str().str(), ec.message());
    return;
  }
  llvm::legacy::PassManager pm;
  if (tm.addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::AssemblyFile)) {
    Log().warn("jit: the target cannot emit assembly for {}", module.getModuleIdentifier());
    return;
  }
  pm.run(*copy);
}

// Verifies `module`, then runs a short clean-up pipeline tuned for the host
// TargetMachine. The generators emit explicit vector code in loops that are
// already in their final shape, so O3's loop and SLP vectorizers and
// unrollers find nothing to do: they would take most of the compile time
// and give no faster code. What the emitted IR does need:
// common subexpressions (splatted constants, shared address arithmetic),
// instruction combining, a simplified CFG, and loop-invariant splats and
// pointers hoisted out of the vector loop. InstCombine runs without its
// fixpoint check: a parsed "instcombine" verifies that one iteration
// reached a fixpoint and aborts the process (report_fatal_error) when it
// did not, which some conformance regions trigger; an unfinished
// combine only leaves code slightly less simplified. mem2reg first: the
// depthwise generator keeps its accumulators in allocas across the
// branches that skip padding taps and lets it build the phis.
constexpr const char* kCleanupPipeline =
    "function(mem2reg,early-cse,instcombine<no-verify-fixpoint>,simplifycfg,loop-mssa(licm))";

llvm::Error Optimize(TargetMachinePool& target_machines, const std::string& dump_dir,
                     const std::function<void()>& yield_point, llvm::Module& module) {
  std::string problems;
  llvm::raw_string_ostream problems_os(problems);
  if (llvm::verifyModule(module, &problems_os)) {
    return MakeError("jit: generated IR for " + module.getModuleIdentifier() + " is invalid: " + problems);
  }
  llvm::Expected<std::unique_ptr<llvm::TargetMachine>> tm = target_machines.Take();
  if (!tm) return tm.takeError();
  llvm::Error err = internal::RunCleanupPipeline(module, **tm, yield_point);
  if (!err && !dump_dir.empty()) DumpModule(dump_dir, module, **tm);
  target_machines.Return(std::move(*tm));
  return err;
}

}  // namespace

namespace internal {

llvm::Error RunCleanupPipeline(llvm::Module& module, llvm::TargetMachine& tm,
                               const std::function<void()>& before_each_pass) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassInstrumentationCallbacks instrumentation;
  if (before_each_pass) {
    instrumentation.registerBeforeNonSkippedPassCallback(
        [&before_each_pass](llvm::StringRef, llvm::Any) { before_each_pass(); });
  }
  llvm::PassBuilder pb(&tm, llvm::PipelineTuningOptions(), std::nullopt, &instrumentation);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm;
  if (llvm::Error err = pb.parsePassPipeline(mpm, kCleanupPipeline)) return err;
  mpm.run(module, mam);
  return llvm::Error::success();
}

}  // namespace internal

namespace {

// Bytes of the object's executable sections: the machine code proper,
// without symbol tables, relocations and unwind info.
size_t TextBytes(const llvm::MemoryBuffer& object) {
  llvm::Expected<std::unique_ptr<llvm::object::ObjectFile>> file =
      llvm::object::ObjectFile::createObjectFile(object.getMemBufferRef());
  if (!file) {
    Log().debug("jit: cannot parse emitted object: {}", llvm::toString(file.takeError()));
    return 0;
  }
  size_t bytes = 0;
  for (const llvm::object::SectionRef& section : (*file)->sections()) {
    if (section.isText()) bytes += section.getSize();
  }
  return bytes;
}

// Lanes of the IR vectors the code generators emit: two registers' worth.
// LLVM splits each operation into two independent halves, and the out-of-
// order core overlaps their long dependency chains (a 12-step polynomial,
// a division); with one register per step the loops are latency-bound.
int F32LanesFor(const llvm::StringMap<bool>& features) {
  auto has = [&](const char* name) {
    auto it = features.find(name);
    return it != features.end() && it->second;
  };
  constexpr int kRegistersPerVector = 2;
  // Floats per register: zmm (512 bits), ymm (256), xmm (128).
  constexpr int kZmmF32 = 16, kYmmF32 = 8, kXmmF32 = 4;
  if (has("avx512f")) return kZmmF32 * kRegistersPerVector;
  if (has("avx")) return kYmmF32 * kRegistersPerVector;
  return kXmmF32 * kRegistersPerVector;
}

}  // namespace

JitCompiler::~JitCompiler() = default;

llvm::Expected<std::unique_ptr<JitCompiler>> JitCompiler::Create(const JitOptions& options) {
  static std::once_flag init_once;
  static bool native_ready = false;
  std::call_once(init_once, [] {
    // Each returns true on failure.
    native_ready = !llvm::InitializeNativeTarget() && !llvm::InitializeNativeTargetAsmPrinter() &&
                   !llvm::InitializeNativeTargetAsmParser();
  });
  if (!native_ready) return MakeError("jit: LLVM has no native target for this host");

  llvm::Expected<llvm::orc::JITTargetMachineBuilder> jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb) return jtmb.takeError();
  // Name the host CPU and every feature it has explicitly, so that code
  // generation uses AVX-512 (or whatever the host offers) instead of a
  // generic x86-64 baseline.
  const llvm::StringMap<bool> host_features = llvm::sys::getHostCPUFeatures();
  llvm::SubtargetFeatures features;
  // StringMap iteration order is unspecified; sort for a deterministic string.
  std::map<std::string, bool> sorted_features;
  for (const auto& entry : host_features) sorted_features[entry.getKey().str()] = entry.getValue();
  for (const auto& [name, enabled] : sorted_features) features.AddFeature(name, enabled);
  jtmb->setCPU(llvm::sys::getHostCPUName().str());
  jtmb->getFeatures() = features;
  // Default, not Aggressive: the same code for these small loops, and a
  // little less time in instruction selection and scheduling.
  jtmb->setCodeGenOptLevel(llvm::CodeGenOptLevel::Default);
  // LLJIT links through JITLink on x86-64 ELF (checked below), which puts a
  // module's code and constants in one allocation, so the small code model
  // is safe: loops then read constants RIP-relative instead of
  // materialising a 64-bit address per constant (the large model, which a
  // bare JIT TargetMachine defaults to, does that inside the vector loops,
  // where a long elementwise chain holds dozens of constants). Setting it
  // here also makes the KILN_DUMP_IR assembly the code that actually runs.
  jtmb->setCodeModel(llvm::CodeModel::Small);
  jtmb->setRelocationModel(llvm::Reloc::PIC_);

  std::unique_ptr<JitCompiler> compiler(new JitCompiler());
  compiler->triple_ = jtmb->getTargetTriple().str();
  compiler->cpu_ = jtmb->getCPU();
  compiler->features_ = features.getString();
  compiler->f32_lanes_ = F32LanesFor(host_features);
  {
    llvm::Expected<std::unique_ptr<llvm::TargetMachine>> tm =
        internal::MakeTargetMachine(compiler->triple_, compiler->cpu_, compiler->features_);
    if (!tm) return tm.takeError();
    const internal::GemmIsa isa = internal::IsaOf(**tm);
    compiler->isa_name_ = isa.name;
    compiler->isa_lanes_ = isa.lanes;
    compiler->isa_registers_ = isa.registers;
  }
  compiler->dump_dir_ = options.dump_dir;
  compiler->bit_exact_ = options.bit_exact;
  if (compiler->dump_dir_.empty()) {
    if (const char* env = std::getenv("KILN_DUMP_IR"); env != nullptr) compiler->dump_dir_ = env;
  }
  auto state = std::make_shared<State>(*jtmb);
  state->dump_dir = compiler->dump_dir_;
  state->rewrite_ir = options.rewrite_ir;
  if (options.yield_point) {
    state->yield_point = options.yield_point;
    state->codegen_gate = std::make_unique<YieldingPassGate>(options.yield_point);
  }
  compiler->state_ = state;
  // Code from a rewritten module is wrong on purpose: it must never reach
  // a cache that other sessions and processes trust.
  if (!options.cache_dir.empty() && !options.rewrite_ir) {
    const std::string fingerprint = "cpu=" + compiler->cpu_ + ";features=" + compiler->features_ +
                                    ";kiln=" + Version() + ";llvm=" + LLVM_VERSION_STRING;
    auto cache = PersistentCodeCache::Open(options.cache_dir, fingerprint, options.cache_max_bytes);
    if (cache.ok()) {
      compiler->persistent_cache_ = std::move(cache).value();
      state->capture_objects = true;
    } else {
      // Compiling still works; only reuse across processes is lost.
      Log().warn("jit: {}; compiling without a persistent cache", cache.status().ToString());
    }
  }

  // Concurrent compilation support makes LLJIT use a compiler that builds a
  // TargetMachine per module, so Compile() may run on several threads. Left
  // to itself, LLJIT would then also pick a DynamicThreadPoolTaskDispatcher,
  // which runs every materialization on a detached thread of its own: the
  // lookup in Compile() returns as soon as the symbol is emitted, while that
  // thread still holds the MaterializationResponsibility (and with it a
  // reference to the module's ResourceTracker) and tears it down a moment
  // later. That is safe (the reference count is atomic), but it means ORC
  // work outlives Compile(), at normal priority rather than the compile
  // thread's, and ThreadSanitizer, which cannot see the atomics inside the
  // uninstrumented libLLVM, reports the tracker's final free there as a race
  // with JitCode releasing it. kiln already runs compiles on threads it
  // owns, so materialization runs in place, on the caller's thread, and is
  // finished when Compile() returns.
  llvm::Expected<std::unique_ptr<llvm::orc::SelfExecutorProcessControl>> epc =
      llvm::orc::SelfExecutorProcessControl::Create(nullptr, std::make_unique<llvm::orc::InPlaceTaskDispatcher>());
  if (!epc) return epc.takeError();
  llvm::Expected<std::unique_ptr<llvm::orc::LLJIT>> jit =
      llvm::orc::LLJITBuilder()
          .setJITTargetMachineBuilder(*jtmb)
          .setExecutorProcessControl(std::move(*epc))
          .setSupportConcurrentCompilation(true)
          .setCompileFunctionCreator([pool = state->target_machines](llvm::orc::JITTargetMachineBuilder)
                                         -> llvm::Expected<std::unique_ptr<llvm::orc::IRCompileLayer::IRCompiler>> {
            return std::make_unique<PooledIRCompiler>(pool);
          })
          .create();
  if (!jit) return jit.takeError();
  if (!llvm::isa<llvm::orc::ObjectLinkingLayer>((*jit)->getObjLinkingLayer())) {
    // RuntimeDyld may place code and constants far apart: not safe for the
    // small code model chosen above.
    return MakeError("jit: LLJIT did not choose JITLink for " + jtmb->getTargetTriple().str());
  }
  compiler->jit_ = std::shared_ptr<llvm::orc::LLJIT>(std::move(*jit));

  compiler->jit_->getExecutionSession().setErrorReporter(
      [](llvm::Error err) { Log().error("jit: {}", llvm::toString(std::move(err))); });

  // The transforms hold the shared state, not the JitCompiler: the LLJIT
  // (and so these functions) may outlive it.
  compiler->jit_->getIRTransformLayer().setTransform(
      [state](llvm::orc::ThreadSafeModule tsm,
              llvm::orc::MaterializationResponsibility&) -> llvm::Expected<llvm::orc::ThreadSafeModule> {
        llvm::Error err = tsm.withModuleDo([&](llvm::Module& module) {
          if (state->rewrite_ir) state->rewrite_ir(module);
          llvm::Error optimized = Optimize(*state->target_machines, state->dump_dir, state->yield_point, module);
          // The module's context is its own (one per compile), so the gate
          // affects this module's code generation only.
          if (!optimized && state->codegen_gate) module.getContext().setOptPassGate(*state->codegen_gate);
          MutexLock lock(state->object_sizes_mutex);
          state->optimised_at[module.getModuleIdentifier()] = ThreadCpuNs();
          return optimized;
        });
        if (err) return err;
        return tsm;
      });
  compiler->jit_->getObjTransformLayer().setTransform(
      [state](std::unique_ptr<llvm::MemoryBuffer> object) -> llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> {
        const int64_t emitted_ns = ThreadCpuNs();
        const size_t bytes = TextBytes(*object);
        MutexLock lock(state->object_sizes_mutex);
        state->emitted_at[object->getBufferIdentifier().str()] = emitted_ns;
        state->object_sizes[object->getBufferIdentifier().str()] = bytes;
        if (state->capture_objects) state->objects[object->getBufferIdentifier().str()] = object->getBuffer().str();
        return object;
      });

  Log().debug("jit: LLJIT for {} cpu={} f32 lanes={} dump_dir='{}'", compiler->triple_, compiler->cpu_,
              compiler->f32_lanes_, compiler->dump_dir_);
  return compiler;
}

StatusOr<std::unique_ptr<JitCompiler>> JitCompiler::CreateOrStatus(const JitOptions& options) {
  llvm::Expected<std::unique_ptr<JitCompiler>> compiler = Create(options);
  if (!compiler) return Internal("jit: ", llvm::toString(compiler.takeError()));
  return std::move(*compiler);
}

const llvm::DataLayout& JitCompiler::data_layout() const { return jit_->getDataLayout(); }

bool JitCompiler::IsDefined(const std::string& symbol) {
  llvm::Expected<llvm::orc::ExecutorAddr> address = jit_->lookup(symbol);
  if (!address) {
    llvm::consumeError(address.takeError());  // "not found" is the answer, not a failure
    return false;
  }
  return true;
}

llvm::Expected<std::shared_ptr<const JitCode>> JitCompiler::Compile(llvm::orc::ThreadSafeModule module,
                                                                    const std::string& entry_name,
                                                                    std::string* object_out) {
  const int64_t start_ns = ThreadCpuNs();
  const std::string module_name = module.withModuleDo([](llvm::Module& m) { return m.getModuleIdentifier(); });
  llvm::orc::JITDylib& dylib = jit_->getMainJITDylib();
  llvm::orc::ResourceTrackerSP tracker = dylib.createResourceTracker();

  llvm::Error err = jit_->addIRModule(tracker, std::move(module));
  llvm::Expected<llvm::orc::ExecutorAddr> address =
      err ? llvm::Expected<llvm::orc::ExecutorAddr>(std::move(err)) : jit_->lookup(dylib, entry_name);

  const int64_t end_ns = ThreadCpuNs();
  // The object notes are taken on every path so the maps cannot grow.
  size_t code_bytes = 0;
  int64_t optimised_ns = 0, emitted_ns = 0;
  {
    MutexLock lock(state_->object_sizes_mutex);
    // Object buffers are named "<module>-jitted-objectbuffer" by ORC's IR
    // compilers; match the module name up to that suffix.
    auto matches = [&](const std::string& key) { return key == module_name || key.rfind(module_name + "-", 0) == 0; };
    if (auto it = state_->optimised_at.find(module_name); it != state_->optimised_at.end()) {
      optimised_ns = it->second;
      state_->optimised_at.erase(it);
    }
    for (auto it = state_->emitted_at.begin(); it != state_->emitted_at.end(); ++it) {
      if (matches(it->first)) {
        emitted_ns = it->second;
        state_->emitted_at.erase(it);
        break;
      }
    }
    for (auto it = state_->object_sizes.begin(); it != state_->object_sizes.end(); ++it) {
      if (matches(it->first)) {
        code_bytes = it->second;
        state_->object_sizes.erase(it);
        break;
      }
    }
    for (auto it = state_->objects.begin(); it != state_->objects.end(); ++it) {
      if (matches(it->first)) {
        if (object_out != nullptr) *object_out = std::move(it->second);
        state_->objects.erase(it);
        break;
      }
    }
  }

  if (!address) {
    // Leave nothing behind: drop whatever part of the module was added.
    return llvm::joinErrors(address.takeError(), tracker->remove());
  }
  if (optimised_ns >= start_ns && emitted_ns >= optimised_ns && end_ns >= emitted_ns) {
    constexpr double kNsPerMs = 1e6;
    Log().debug(
        "jit: {} took {:.2f} ms of thread CPU: verify and optimise {:.2f} ms, code generation {:.2f} ms, link "
        "{:.2f} ms",
        module_name, static_cast<double>(end_ns - start_ns) / kNsPerMs,
        static_cast<double>(optimised_ns - start_ns) / kNsPerMs,
        static_cast<double>(emitted_ns - optimised_ns) / kNsPerMs, static_cast<double>(end_ns - emitted_ns) / kNsPerMs);
  }
  return std::make_shared<const JitCode>(jit_, std::move(tracker), entry_name, address->getValue(), code_bytes);
}

llvm::Expected<std::shared_ptr<const JitCode>> JitCompiler::Link(const std::string& object,
                                                                 const std::string& entry_name) {
  llvm::orc::JITDylib& dylib = jit_->getMainJITDylib();
  llvm::orc::ResourceTrackerSP tracker = dylib.createResourceTracker();
  std::unique_ptr<llvm::MemoryBuffer> buffer =
      llvm::MemoryBuffer::getMemBufferCopy(object, entry_name + "-cached-objectbuffer");
  const size_t code_bytes = TextBytes(*buffer);
  llvm::Error err = jit_->addObjectFile(tracker, std::move(buffer));
  llvm::Expected<llvm::orc::ExecutorAddr> address =
      err ? llvm::Expected<llvm::orc::ExecutorAddr>(std::move(err)) : jit_->lookup(dylib, entry_name);
  {
    // The object transform layer saw it too; drop its notes.
    MutexLock lock(state_->object_sizes_mutex);
    state_->object_sizes.erase(entry_name + "-cached-objectbuffer");
    state_->objects.erase(entry_name + "-cached-objectbuffer");
    state_->emitted_at.erase(entry_name + "-cached-objectbuffer");
  }
  if (!address) return llvm::joinErrors(address.takeError(), tracker->remove());
  return std::make_shared<const JitCode>(jit_, std::move(tracker), entry_name, address->getValue(), code_bytes);
}

JitCode::JitCode(std::shared_ptr<llvm::orc::LLJIT> jit, llvm::IntrusiveRefCntPtr<llvm::orc::ResourceTracker> tracker,
                 std::string symbol, uint64_t entry_address, size_t code_bytes)
    : jit_(std::move(jit)),
      tracker_(std::move(tracker)),
      symbol_(std::move(symbol)),
      entry_address_(entry_address),
      code_bytes_(code_bytes) {}

JitCode::~JitCode() {
  if (!tracker_) return;
  if (llvm::Error err = tracker_->remove()) {
    Log().error("jit: removing the code of {} failed: {}", symbol_, llvm::toString(std::move(err)));
  } else {
    Log().debug("jit: removed the code of {}", symbol_);
  }
  // Release the tracker before the session it belongs to.
  tracker_.reset();
  jit_.reset();
}

}  // namespace kiln::jit
