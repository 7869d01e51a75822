// kiln's intra-op parallel loops on OpenMP, the threading runtime Debian's
// oneDNN is built with.
//
// Why not kiln's own ThreadPool: oneDNN's OpenMP workers spin for a while
// after each primitive (libgomp's GOMP_SPINCOUNT, read once at process
// start, beyond a library's control). A ThreadPool worker woken for the
// next elementwise kernel then competes with a spinning OpenMP thread for
// the same core; when it loses, the caller waits a scheduler time slice for
// its chunk. Measured on 2 cores with the demo transformer at 2 threads:
// p90 latency 20 ms against a median of 0.3 ms. Running kiln's loops on the
// same OpenMP team leaves one set of threads per session thread count, and
// the thread that spins is the one that picks up the next loop.
//
// ThreadSanitizer does not see libgomp's synchronisation (libgomp is not
// instrumented), so tsan builds use ThreadPool instead: see
// MakeIntraOpRunner.
#pragma once

#include <memory>

#include "kernels/kernel.h"

namespace kiln::runtime {

class OpenMpRunner final : public kernels::ParallelRunner {
 public:
  explicit OpenMpRunner(int num_threads);

  // Splits [0, n) into at most num_threads() chunks of at least `grain`
  // and runs them on an OpenMP team; the calling thread is one of its
  // members. Called from inside another parallel region, the inner loop
  // runs on the calling thread alone (OpenMP's default for nesting).
  void For(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) const override;
  int num_threads() const override { return num_threads_; }

 private:
  int num_threads_;
};

// The intra-op runner a session uses: OpenMpRunner, or ThreadPool in
// ThreadSanitizer builds (see above).
std::unique_ptr<kernels::ParallelRunner> MakeIntraOpRunner(int num_threads);

}  // namespace kiln::runtime
