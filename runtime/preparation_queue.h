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
  // Starts one thread that runs `jobs` in order.
  explicit PreparationQueue(std::vector<std::function<void()>> jobs);
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
  bool stopping_ KILN_GUARDED_BY(mu_) = false;
  bool done_ KILN_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

}  // namespace kiln::runtime
