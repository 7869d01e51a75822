#include "runtime/thread_ticker.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kiln::runtime {
namespace {

// Runs on the ticked thread. Only timer expiries call the tick: the same
// signal sent by kill() or sigqueue() carries no ticker.
void OnTickSignal(int, siginfo_t* info, void*) {
  if (info == nullptr || info->si_code != SI_TIMER || info->si_value.sival_ptr == nullptr) return;
  const int saved_errno = errno;
  static_cast<const ThreadTicker*>(info->si_value.sival_ptr)->Tick();
  errno = saved_errno;
}

// Installs OnTickSignal for the tick signal unless the process handles it
// itself. Idempotent, so threads starting tickers at once may both install.
Status ClaimTickSignal() {
  const int signal = ThreadTicker::TickSignal();
  struct sigaction current {};
  if (sigaction(signal, nullptr, &current) != 0) return Internal("sigaction: ", std::strerror(errno));
  const bool ours = (current.sa_flags & SA_SIGINFO) != 0 && current.sa_sigaction == OnTickSignal;
  if (ours) return Status::Ok();
  if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL) {
    return Unsupported("signal ", signal, " (SIGRTMAX-3) has a handler of the process's own");
  }
  struct sigaction action {};
  action.sa_sigaction = OnTickSignal;
  // SA_RESTART: a tick that lands in a system call (a file the code cache
  // writes) does not fail it with EINTR.
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&action.sa_mask);
  if (sigaction(signal, &action, nullptr) != 0) return Internal("sigaction: ", std::strerror(errno));
  return Status::Ok();
}

}  // namespace

int ThreadTicker::TickSignal() { return SIGRTMAX - 3; }

bool ThreadTicker::Arm(int64_t ns) const {
  itimerspec spec{};  // it_interval zero: one shot
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return timer_settime(timer_, 0, &spec, nullptr) == 0;
}

void ThreadTicker::Tick() const {
  const int64_t next_ns = tick_(context_);
  if (next_ns > 0) Arm(next_ns);
}

StatusOr<std::unique_ptr<ThreadTicker>> ThreadTicker::Start(std::chrono::nanoseconds first_tick, TickFunction tick,
                                                            void* context) {
  if (first_tick.count() <= 0) return InvalidArgument("ThreadTicker: the first tick must be in the future");
  KILN_RETURN_IF_ERROR(ClaimTickSignal());
  std::unique_ptr<ThreadTicker> ticker(new ThreadTicker(tick, context));
  sigevent event{};
  event.sigev_notify = SIGEV_THREAD_ID;
  event.sigev_signo = TickSignal();
  event.sigev_value.sival_ptr = ticker.get();
  event._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
  if (timer_create(CLOCK_MONOTONIC, &event, &ticker->timer_) != 0) {
    return Internal("timer_create: ", std::strerror(errno));
  }
  // A thread that blocks the signal would never be ticked.
  sigset_t tick_set;
  sigemptyset(&tick_set);
  sigaddset(&tick_set, TickSignal());
  pthread_sigmask(SIG_UNBLOCK, &tick_set, nullptr);
  if (!ticker->Arm(first_tick.count())) {
    const int error = errno;
    timer_delete(ticker->timer_);
    return Internal("timer_settime: ", std::strerror(error));
  }
  return ticker;
}

ThreadTicker::~ThreadTicker() {
  // Blocked first, so no tick runs between deleting the timer and draining
  // what it already sent (a pending signal outlives its timer).
  sigset_t tick_set;
  sigemptyset(&tick_set);
  sigaddset(&tick_set, TickSignal());
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &tick_set, &previous);
  timer_delete(timer_);
  const timespec no_wait{};
  while (sigtimedwait(&tick_set, nullptr, &no_wait) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

}  // namespace kiln::runtime
