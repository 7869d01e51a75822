// kiln's JIT: one ORC LLJIT for the host CPU (its own CPU name and
// features, so AVX-512 is used where it exists), a short clean-up pipeline
// on the IR transform layer (the generators emit vector code already, see
// Optimize in jit_compiler.cc), a cache of compiled code by module bitcode,
// and optional dumps of each compiled module's optimised IR and assembly.
//
// Thread safety: Compile() may be called from several threads at once. Each
// caller builds its module in its own LLVMContext (wrapped in a
// ThreadSafeContext); LLJIT is created with concurrent compilation support
// (each compile borrows TargetMachines from a pool, so no two compiles share
// one at a time) and an in-place task dispatcher, so all of a
// compile's work (optimisation, code generation, linking, and the release
// of ORC's references to the module's ResourceTracker) runs on the thread
// calling Compile() and is over when it returns: ORC starts no threads.
//
// Lifetime: each CompiledRegion keeps the underlying LLJIT alive, so the
// JitCompiler may be destroyed before the regions it produced.
#pragma once

#include <llvm/ADT/IntrusiveRefCntPtr.h>
#include <llvm/Support/Error.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "jit/code_cache.h"
#include "jit/persistent_code_cache.h"
#include "kiln/status.h"

namespace llvm {
class DataLayout;
class Module;
namespace orc {
class LLJIT;
class ResourceTracker;
class ThreadSafeModule;
}  // namespace orc
}  // namespace llvm

// Functions that call into JIT code skip clang's -fsanitize=function check
// (part of -fsanitize=undefined): it reads a type signature in the 8 bytes
// before the callee, which the JIT does not emit, and when the entry starts
// a page those bytes may not be mapped at all.
#if defined(__clang__)
#define KILN_NO_SANITIZE_FUNCTION __attribute__((no_sanitize("function")))
#else
#define KILN_NO_SANITIZE_FUNCTION
#endif

namespace kiln::jit {

struct JitOptions {
  // When non-empty, every compiled module's optimised IR (<module>.ll) and
  // assembly (<module>.s) are written here. When empty, the environment
  // variable KILN_DUMP_IR names the directory (if set).
  std::string dump_dir;
  // Test hook: when set, called with each module on the thread that
  // compiles it, before optimisation, and may rewrite it (see
  // PerturbFloatAdds). Leave empty.
  std::function<void(llvm::Module&)> rewrite_ir;
  // When non-empty, compiled objects are also kept in this folder and
  // found there by later compilers, in this or other processes (see
  // PersistentCodeCache). Ignored with rewrite_ir.
  std::string cache_dir;
  int64_t cache_max_bytes = int64_t{256} << 20;
  // Generated code computes exactly as the interpreter's kernels do, bit for
  // bit (SessionOptions::jit_bitwise_equivalent); regions it cannot
  // reproduce exactly are refused with kUnsupported.
  bool bit_exact = false;
  // When set, called on the compiling thread between small units of a
  // compile's work: before each optimisation pass and before each code
  // generation pass that LLVM lets a pass gate skip (most of them). It may
  // block: the runtime paces background compiles with it (see
  // runtime/compile_scheduler.h). Empty: compiles run without pauses.
  std::function<void()> yield_point;
};

// Machine code added to the JIT: where its entry function is. Removing it
// from the JIT is tied to this object's lifetime, so code shared by several
// CompiledRegions (see CodeCache) goes when the last of them lets it go.
class JitCode {
 public:
  JitCode(std::shared_ptr<llvm::orc::LLJIT> jit, llvm::IntrusiveRefCntPtr<llvm::orc::ResourceTracker> tracker,
          std::string symbol, uint64_t entry_address, size_t code_bytes);
  ~JitCode();
  JitCode(const JitCode&) = delete;
  JitCode& operator=(const JitCode&) = delete;

  // The entry function's symbol (also the module's name).
  const std::string& symbol() const { return symbol_; }
  uint64_t entry_address() const { return entry_address_; }
  // Bytes of the executable sections of the emitted object file.
  size_t code_bytes() const { return code_bytes_; }

 private:
  std::shared_ptr<llvm::orc::LLJIT> jit_;                         // keeps the execution session alive
  llvm::IntrusiveRefCntPtr<llvm::orc::ResourceTracker> tracker_;  // removes exactly this module
  std::string symbol_;
  uint64_t entry_address_ = 0;
  size_t code_bytes_ = 0;
};

class JitCompiler {
 public:
  // Builds the JIT for the host. Fails (never aborts) when the native target
  // is unavailable or the host cannot be described.
  static llvm::Expected<std::unique_ptr<JitCompiler>> Create(const JitOptions& options = {});
  // The same, with the error as a kiln Status (kInternal) for callers
  // outside jit/.
  static StatusOr<std::unique_ptr<JitCompiler>> CreateOrStatus(const JitOptions& options = {});

  ~JitCompiler();
  JitCompiler(const JitCompiler&) = delete;
  JitCompiler& operator=(const JitCompiler&) = delete;

  // Optimises `module` (verified first), compiles it to machine code and
  // returns the code whose entry is `entry_name`. The module is added under
  // a fresh ResourceTracker that the JitCode removes when destroyed; on
  // failure nothing stays in the JIT. Does not consult the CodeCache.
  // With `object_out`, also returns the object file it linked (when the
  // compiler has a persistent cache; otherwise objects are not kept).
  llvm::Expected<std::shared_ptr<const JitCode>> Compile(llvm::orc::ThreadSafeModule module,
                                                         const std::string& entry_name,
                                                         std::string* object_out = nullptr);
  // Links an object file compiled before (PersistentCodeCache) and returns
  // the code whose entry is `entry_name`; no optimisation, no code
  // generation. On failure nothing stays in the JIT.
  llvm::Expected<std::shared_ptr<const JitCode>> Link(const std::string& object, const std::string& entry_name);

  // True when `symbol` is currently defined in the JIT (diagnostics and
  // tests: a removed CompiledRegion's entry is no longer defined).
  bool IsDefined(const std::string& symbol);

  // What modules must use: the JIT's data layout and target triple.
  const llvm::DataLayout& data_layout() const;
  const std::string& target_triple() const { return triple_; }
  const std::string& cpu_name() const { return cpu_; }
  const std::string& cpu_features() const { return features_; }
  // Lanes of the float32 vectors generated code computes on: two of the
  // host's widest registers (32 with AVX-512, 16 with AVX, otherwise 8), so
  // each loop step carries two independent dependency chains.
  int f32_vector_lanes() const { return f32_lanes_; }
  // The vector unit as the JIT's TargetMachine describes it, found once
  // here rather than by a TargetMachine per compile (internal::HostIsa
  // gives it to the code generators): its name ("avx512", "avx2", "avx",
  // "sse"), the float32 lanes of one register, and the vector registers.
  const std::string& isa_name() const { return isa_name_; }
  int isa_register_lanes() const { return isa_lanes_; }
  int isa_registers() const { return isa_registers_; }
  // Empty when dumping is off.
  const std::string& dump_dir() const { return dump_dir_; }
  // JitOptions::bit_exact.
  bool bit_exact() const { return bit_exact_; }

  // A process-unique suffix for module and symbol names.
  uint64_t NextSerial() { return serial_.fetch_add(1); }

  // Code compiled by this JIT, by module bitcode (internal::EmitAndCompile
  // looks here before compiling).
  CodeCache& code_cache() { return code_cache_; }
  // Code on disk across processes, or null when off.
  PersistentCodeCache* persistent_cache() { return persistent_cache_.get(); }

 private:
  // What the layer transforms need; shared with them so it lives as long as
  // the LLJIT that calls them.
  struct State;

  JitCompiler() = default;

  std::shared_ptr<State> state_;
  std::shared_ptr<llvm::orc::LLJIT> jit_;
  std::string triple_;
  std::string cpu_;
  std::string features_;
  int f32_lanes_ = 4;
  std::string isa_name_;
  int isa_lanes_ = 4;
  int isa_registers_ = 16;
  std::string dump_dir_;
  bool bit_exact_ = false;
  std::atomic<uint64_t> serial_{0};
  CodeCache code_cache_;
  std::unique_ptr<PersistentCodeCache> persistent_cache_;
};

}  // namespace kiln::jit
