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
