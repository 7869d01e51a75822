#include "runtime/thread_pool.h"

#include <algorithm>
#include <atomic>

namespace kiln::runtime {

// One parallel loop: chunks are claimed through `next_chunk`; the caller
// waits until `chunks_done` reaches `num_chunks`. Workers may still hold the
// job after that, but they can claim nothing more, so they never touch `fn`
// once the caller has returned.
struct ThreadPool::Job {
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t n = 0;
  int64_t chunk_size = 0;
  int64_t num_chunks = 0;
  std::atomic<int64_t> next_chunk{0};
  std::atomic<int64_t> chunks_done{0};
  // Guards no data (chunks_done is atomic): taking it around the last
  // chunk's notify and the caller's check is what keeps the wake-up from
  // being lost between the check and the wait.
  Mutex done_mu;
  CondVar done_cv;
};

ThreadPool::ThreadPool(int num_threads) : num_threads_(std::max(1, num_threads)) {
  workers_.reserve(static_cast<size_t>(num_threads_ - 1));
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  work_cv_.NotifyAll();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunChunks(Job& job) {
  for (;;) {
    int64_t c = job.next_chunk.fetch_add(1, std::memory_order_relaxed);
    if (c >= job.num_chunks) return;
    int64_t begin = c * job.chunk_size;
    int64_t end = std::min(job.n, begin + job.chunk_size);
    (*job.fn)(begin, end);
    if (job.chunks_done.fetch_add(1, std::memory_order_acq_rel) + 1 == job.num_chunks) {
      MutexLock lock(job.done_mu);
      job.done_cv.NotifyAll();
    }
  }
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      MutexLock lock(mu_);
      while (!stopping_ && queue_.empty()) work_cv_.Wait(mu_);
      if (stopping_ && queue_.empty()) return;
      job = queue_.front();
      // Once every chunk is claimed the job needs no more helpers.
      if (job->next_chunk.load(std::memory_order_relaxed) >= job->num_chunks) {
        queue_.pop_front();
        continue;
      }
    }
    RunChunks(*job);
    MutexLock lock(mu_);
    if (!queue_.empty() && queue_.front() == job) queue_.pop_front();
  }
}

void ThreadPool::For(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) const {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = std::min<int64_t>(num_threads_, (n + grain - 1) / grain);
  if (max_chunks <= 1) {
    fn(0, n);
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  job->chunk_size = (n + max_chunks - 1) / max_chunks;
  job->num_chunks = (n + job->chunk_size - 1) / job->chunk_size;
  {
    MutexLock lock(mu_);
    queue_.push_back(job);
  }
  work_cv_.NotifyAll();
  RunChunks(*job);
  Job& waited = *job;
  MutexLock lock(waited.done_mu);
  while (waited.chunks_done.load(std::memory_order_acquire) != waited.num_chunks) waited.done_cv.Wait(waited.done_mu);
}

}  // namespace kiln::runtime
