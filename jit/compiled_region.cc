#include "jit/compiled_region.h"

#include <llvm/ExecutionEngine/Orc/Core.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>

#include "graph/log.h"

namespace kiln::jit {

CompiledRegion::CompiledRegion(JitCode code, Info info) : code_(std::move(code)), info_(std::move(info)) {
  const auto address = static_cast<uintptr_t>(code_.entry_address);
  if (info_.generic) {
    generic_entry_ = reinterpret_cast<GenericEntryFn>(address);
  } else {
    entry_ = reinterpret_cast<EntryFn>(address);
  }
}

// Calls into JIT code skip clang's -fsanitize=function check (part of
// -fsanitize=undefined): it reads a type signature in the 8 bytes before
// the callee, which the JIT does not emit, and when the entry starts a page
// those bytes may not be mapped at all.
#if defined(__clang__)
#define KILN_NO_SANITIZE_FUNCTION __attribute__((no_sanitize("function")))
#else
#define KILN_NO_SANITIZE_FUNCTION
#endif

KILN_NO_SANITIZE_FUNCTION void CompiledRegion::Run(const void* const* inputs, void* const* outputs,
                                                   int64_t row_begin, int64_t row_end) const {
  entry_(inputs, outputs, row_begin, row_end);
}

KILN_NO_SANITIZE_FUNCTION void CompiledRegion::RunGeneric(const void* const* inputs, void* const* outputs,
                                                          int64_t row_begin, int64_t row_end,
                                                          const int64_t* params) const {
  generic_entry_(inputs, outputs, row_begin, row_end, params);
}

CompiledRegion::~CompiledRegion() {
  if (!code_.tracker) return;
  if (llvm::Error err = code_.tracker->remove()) {
    Log().error("jit: removing compiled region {} failed: {}", info_.name, llvm::toString(std::move(err)));
  } else {
    Log().debug("jit: removed compiled region {}", info_.name);
  }
  // Release the tracker before the session it belongs to.
  code_.tracker.reset();
  code_.jit.reset();
}

}  // namespace kiln::jit
