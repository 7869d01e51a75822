#include "runtime/openmp_runner.h"

#include <omp.h>

#include <algorithm>

#include "runtime/thread_pool.h"

#if defined(__SANITIZE_THREAD__)
#define KILN_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KILN_THREAD_SANITIZER 1
#endif
#endif

namespace kiln::runtime {

OpenMpRunner::OpenMpRunner(int num_threads) : num_threads_(std::max(1, num_threads)) {}

void OpenMpRunner::For(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) const {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = std::min<int64_t>(num_threads_, (n + grain - 1) / grain);
  if (max_chunks <= 1 || omp_in_parallel()) {
    fn(0, n);
    return;
  }
  const int64_t chunk_size = (n + max_chunks - 1) / max_chunks;
  const int64_t num_chunks = (n + chunk_size - 1) / chunk_size;
  // The team may come out smaller than asked (OMP_THREAD_LIMIT, dynamic
  // adjustment): every member takes chunks round-robin, so all are done.
#pragma omp parallel num_threads(static_cast <int>(num_chunks))
  {
    const int64_t team = omp_get_num_threads();
    for (int64_t c = omp_get_thread_num(); c < num_chunks; c += team) {
      const int64_t begin = c * chunk_size;
      fn(begin, std::min(n, begin + chunk_size));
    }
  }
}

std::unique_ptr<kernels::ParallelRunner> MakeIntraOpRunner(int num_threads) {
#ifdef KILN_THREAD_SANITIZER
  return std::make_unique<ThreadPool>(num_threads);
#else
  return std::make_unique<OpenMpRunner>(num_threads);
#endif
}

}  // namespace kiln::runtime
