// Many request threads on one session, on a 2-core machine: does the
// ThreadBudget keep throughput up and the thread count down? For a few zoo
// cases (zoo.h) and 1, 2, 4 and 8 request threads:
//
//   BM_ConcurrentRequests/model:CASE/requests:R/threads:budget
//       one session, intra_op_threads = cores, its default ThreadBudget
//       (one per core): an idle session gives a request the whole team,
//       under load each request runs on one thread
//   BM_ConcurrentRequests/model:CASE/requests:R/threads:one_per_request
//       intra_op_threads = 1 and a budget as large as the request count:
//       every request computes on its own thread, uncapped
//   BM_ConcurrentRequests/model:CASE/requests:R/threads:unbudgeted
//       intra_op_threads = cores and no effective cap: every request gets
//       a whole OpenMP team, as before budgets existed
//
// After a warm-up (JIT compiles finished) the R threads send requests back
// to back for a fixed time. Counters: qps, p50_ms, p99_ms,
// os_threads (the most threads the process had while serving, from
// /proc/self/status), compute_threads (the budget's most threads computing
// at once). The benchmark's time is the serving wall time.
#pragma once

#include <string>

namespace kiln::bench {

void RegisterConcurrentRequests(const std::string& zoo_dir);

}  // namespace kiln::bench
