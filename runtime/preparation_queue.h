// The thread that runs a session's kernel preparation (OpKernel::
// TakePreparation: packed weights, oneDNN primitives) after Interpreter::
// Create. Unlike compiles, preparation is bounded work that steady-state
// speed depends on, so the thread keeps normal priority: at a lowered one, a
// busy machine would leave runs on the slower unprepared paths for long.
#pragma once

#include <functional>
#include <thread>
#include <vector>

#include "graph/mutex.h"

namespace kiln::runtime {

class PreparationQueue {
 public:
  // Starts one thread that runs `jobs` in order, with its OpenMP thread
  // count set to `run_threads`, the threads the session's runs will have:
  // oneDNN primitives built there are built for that many (kernels/
  // dnnl_context.h, DnnlCreationThreads).
  PreparationQueue(std::vector<std::function<void()>> jobs, int run_threads);
  // Drops the jobs that have not started and waits for the running one.
  ~PreparationQueue();
  PreparationQueue(const PreparationQueue&) = delete;
  PreparationQueue& operator=(const PreparationQueue&) = delete;

  // Blocks until every job has run (or been dropped by destruction).
  void WaitIdle();

 private:
  void Work();

  Mutex mu_;
  CondVar done_cv_;
  std::vector<std::function<void()>> jobs_;  // only the worker reads them once started
  int run_threads_;
  bool stopping_ KILN_GUARDED_BY(mu_) = false;
  bool done_ KILN_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

}  // namespace kiln::runtime
