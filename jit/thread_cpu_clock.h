// CPU time of the calling thread, for the JIT's compile-phase timings: a
// compile runs entirely on the thread calling it (see jit_compiler.h), and
// on a shared machine its wall time says more about the other processes
// than about the compile.
#pragma once

#include <time.h>

#include <cstdint>

namespace kiln::jit {

// Nanoseconds of CPU the calling thread has used; 0 when the clock is
// unavailable.
inline int64_t ThreadCpuNs() {
  timespec ts{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace kiln::jit
