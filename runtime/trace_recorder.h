// Records time slices for a Chrome trace (the JSON "Trace Event Format" that
// Perfetto and chrome://tracing read): one slice per node or region run,
// named by tier, compile jobs on a track of their own, and counters. Opt-in
// (SessionOptions::enable_tracing): recording takes a mutex per slice.
//
// A serving process may trace for hours, so request slices are kept in a
// ring of bounded size: the newest are kept, the oldest dropped (and
// counted). Compile slices and counters, a few per compile, are all kept,
// so the story of the tier-up survives however long the trace runs.
#pragma once

#include <algorithm>
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

  // Request slices kept: at about 100 bytes each, ~100 MB.
  static constexpr size_t kDefaultMaxRequestSlices = size_t{1} << 20;

  explicit TraceRecorder(size_t max_request_slices = kDefaultMaxRequestSlices)
      : origin_(Clock::now()), max_request_slices_(std::max<size_t>(1, max_request_slices)) {}

  // A finished slice [start, end) on the calling thread's track (or on
  // `track` when >= 0). `category` is the tier ("interp", "jit") or
  // "compile"; Perfetto colours slices by name, so the tier is part of it.
  void AddSlice(const std::string& name, const std::string& category, Clock::time_point start, Clock::time_point end,
                int track = -1);

  // A counter sample: Perfetto draws `name` as a track of values over time
  // (Chrome's "C" events), one line per `series`. Used for break-even
  // accounting (a version's saving per call and payback calls).
  void AddCounter(const std::string& name, const std::string& series, double value, Clock::time_point at);

  // The trace as Chrome trace JSON: the request slices kept, every compile
  // slice and counter, and (when the ring dropped some) a metadata event
  // "dropped_request_slices" with their count.
  std::string ToChromeJson() const;

  // Request slices dropped to keep the ring's size.
  int64_t dropped_request_slices() const;

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
  const size_t max_request_slices_;
  mutable Mutex mu_;
  // A ring once full: next_request_ is the oldest slice, overwritten next.
  std::vector<Slice> request_slices_ KILN_GUARDED_BY(mu_);
  size_t next_request_ KILN_GUARDED_BY(mu_) = 0;
  int64_t dropped_request_ KILN_GUARDED_BY(mu_) = 0;
  std::vector<Slice> compile_slices_ KILN_GUARDED_BY(mu_);
  std::vector<Counter> counters_ KILN_GUARDED_BY(mu_);
  std::vector<std::size_t> thread_hashes_ KILN_GUARDED_BY(mu_);  // index = track id
};

}  // namespace kiln::runtime
