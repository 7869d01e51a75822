#include "jit/compiled_region.h"

namespace kiln::jit {

CompiledRegion::CompiledRegion(std::shared_ptr<const JitCode> code, Info info)
    : code_(std::move(code)), info_(std::move(info)) {
  const auto address = static_cast<uintptr_t>(code_->entry_address());
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

CompiledRegion::~CompiledRegion() = default;

}  // namespace kiln::jit
