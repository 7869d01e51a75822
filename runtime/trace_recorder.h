// Records time slices for a Chrome trace (the JSON "Trace Event Format" that
// Perfetto and chrome://tracing read): one slice per node or region run,
// named by tier, compile jobs on a track of their own, and counters. Opt-in
// (SessionOptions::enable_tracing): recording takes a mutex per slice.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "graph/mutex.h"

namespace kiln::runtime {

class TraceRecorder {
 public:
  using Clock = std::chrono::steady_clock;

  // Compile jobs are drawn on this track, apart from the request threads.
  static constexpr int kCompileTrack = 1000;

  TraceRecorder() : origin_(Clock::now()) {}

  // A finished slice [start, end) on the calling thread's track (or on
  // `track` when >= 0). `category` is the tier ("interp", "jit") or
  // "compile"; Perfetto colours slices by name, so the tier is part of it.
  void AddSlice(const std::string& name, const std::string& category, Clock::time_point start, Clock::time_point end,
                int track = -1);

  // A counter sample: Perfetto draws `name` as a track of values over time
  // (Chrome's "C" events), one line per `series`. Used for break-even
  // accounting (a version's saving per call and payback calls).
  void AddCounter(const std::string& name, const std::string& series, double value, Clock::time_point at);

  // The whole trace as Chrome trace JSON.
  std::string ToChromeJson() const;

 private:
  struct Slice {
    std::string name;
    std::string category;
    int64_t start_us;
    int64_t duration_us;
    int track;
  };
  struct Counter {
    std::string name;
    std::string series;
    double value;
    int64_t at_us;
  };
  int TrackOfThisThread() KILN_REQUIRES(mu_);

  const Clock::time_point origin_;
  mutable Mutex mu_;
  std::vector<Slice> slices_ KILN_GUARDED_BY(mu_);
  std::vector<Counter> counters_ KILN_GUARDED_BY(mu_);
  std::vector<std::size_t> thread_hashes_ KILN_GUARDED_BY(mu_);  // index = track id
};

}  // namespace kiln::runtime
