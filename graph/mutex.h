// A mutex that clang's thread-safety analysis (-Wthread-safety) can reason
// about, and the annotations that name what each mutex guards. libstdc++'s
// std::mutex carries no capability attributes, so state guarded by it could
// not be checked; kiln::Mutex wraps it and is used for all of kiln's locks.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define KILN_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define KILN_THREAD_ANNOTATION(x)
#endif

#define KILN_CAPABILITY(x) KILN_THREAD_ANNOTATION(capability(x))
#define KILN_SCOPED_CAPABILITY KILN_THREAD_ANNOTATION(scoped_lockable)
#define KILN_GUARDED_BY(x) KILN_THREAD_ANNOTATION(guarded_by(x))
#define KILN_PT_GUARDED_BY(x) KILN_THREAD_ANNOTATION(pt_guarded_by(x))
#define KILN_REQUIRES(...) KILN_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define KILN_ACQUIRE(...) KILN_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define KILN_RELEASE(...) KILN_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define KILN_EXCLUDES(...) KILN_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define KILN_NO_THREAD_SAFETY_ANALYSIS KILN_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace kiln {

class KILN_CAPABILITY("mutex") Mutex {
 public:
  void Lock() KILN_ACQUIRE() { mu_.lock(); }
  void Unlock() KILN_RELEASE() { mu_.unlock(); }
  // For std::condition_variable_any and std::unique_lock.
  void lock() KILN_ACQUIRE() { mu_.lock(); }
  void unlock() KILN_RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class KILN_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) KILN_ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() KILN_RELEASE() { mu_.Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

// A condition variable waited on with a held kiln::Mutex. There is no
// predicate overload on purpose: the analysis checks a lambda on its own,
// without knowing the lock is held, so callers write the loop themselves,
//   while (!ready_) cv_.Wait(mu_);
// and every read of guarded state in the condition is checked.
class CondVar {
 public:
  // Releases `mu`, sleeps until notified (or spuriously woken), holds `mu`
  // again on return.
  void Wait(Mutex& mu) KILN_REQUIRES(mu) { cv_.wait(mu); }
  // Wait until notified or `deadline`; false when the deadline passed.
  bool WaitUntil(Mutex& mu, std::chrono::steady_clock::time_point deadline) KILN_REQUIRES(mu) {
    return cv_.wait_until(mu, deadline) == std::cv_status::no_timeout;
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable_any cv_;
};

}  // namespace kiln
