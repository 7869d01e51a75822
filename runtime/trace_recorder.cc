#include "runtime/trace_recorder.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>
#include <thread>

#include "graph/log.h"

namespace kiln::runtime {
namespace {

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

int TraceRecorder::TrackOfThisThread() {
  // Called with mu_ held. Small dense track ids read better in Perfetto
  // than thread-id hashes.
  const std::size_t hash = std::hash<std::thread::id>()(std::this_thread::get_id());
  auto it = std::find(thread_hashes_.begin(), thread_hashes_.end(), hash);
  if (it != thread_hashes_.end()) return static_cast<int>(it - thread_hashes_.begin());
  thread_hashes_.push_back(hash);
  return static_cast<int>(thread_hashes_.size() - 1);
}

void TraceRecorder::AddSlice(const std::string& name, const std::string& category, Clock::time_point start,
                             Clock::time_point end, int track) {
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  MutexLock lock(mu_);
  Slice slice{name, category, duration_cast<microseconds>(start - origin_).count(),
              std::max<int64_t>(0, duration_cast<microseconds>(end - start).count()),
              track >= 0 ? track : TrackOfThisThread()};
  if (slice.track == kCompileTrack) {
    compile_slices_.push_back(std::move(slice));
  } else if (request_slices_.size() < max_request_slices_) {
    request_slices_.push_back(std::move(slice));
  } else {
    if (dropped_request_ == 0) {
      Log().warn("trace: {} request slices recorded; from now on the oldest are dropped to keep the newest",
                 max_request_slices_);
    }
    request_slices_[next_request_] = std::move(slice);
    next_request_ = (next_request_ + 1) % max_request_slices_;
    ++dropped_request_;
  }
}

int64_t TraceRecorder::dropped_request_slices() const {
  MutexLock lock(mu_);
  return dropped_request_;
}

void TraceRecorder::AddCounter(const std::string& name, const std::string& series, double value, Clock::time_point at) {
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  MutexLock lock(mu_);
  counters_.push_back({name, series, value, duration_cast<microseconds>(at - origin_).count()});
}

std::string TraceRecorder::ToChromeJson() const {
  MutexLock lock(mu_);
  std::ostringstream os;
  os << "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
  os << R"(  {"name": "thread_name", "ph": "M", "pid": 1, "tid": )" << kCompileTrack
     << R"(, "args": {"name": "JIT compiles"}})";
  for (size_t t = 0; t < thread_hashes_.size(); ++t) {
    os << ",\n"
       << R"(  {"name": "thread_name", "ph": "M", "pid": 1, "tid": )" << t << R"(, "args": {"name": "request thread )"
       << t << "\"}}";
  }
  if (dropped_request_ > 0) {
    os << ",\n"
       << R"(  {"name": "dropped_request_slices", "ph": "M", "pid": 1, "args": {"count": )" << dropped_request_
       << ", \"kept\": " << request_slices_.size() << "}}";
  }
  const auto write = [&os](const Slice& s) {
    os << ",\n  {\"name\": \"" << JsonEscape(s.name) << "\", \"cat\": \"" << JsonEscape(s.category)
       << "\", \"ph\": \"X\", \"pid\": 1, \"tid\": " << s.track << ", \"ts\": " << s.start_us
       << ", \"dur\": " << s.duration_us << "}";
  };
  // Oldest first: from the ring's next slot round to the one before it.
  for (size_t i = 0; i < request_slices_.size(); ++i) {
    write(request_slices_[(next_request_ + i) % request_slices_.size()]);
  }
  for (const Slice& s : compile_slices_) write(s);
  for (const Counter& c : counters_) {
    // JSON has no infinity or NaN; a counter that is not a number is left out.
    if (!std::isfinite(c.value)) continue;
    os << ",\n  {\"name\": \"" << JsonEscape(c.name) << "\", \"ph\": \"C\", \"pid\": 1, \"ts\": " << c.at_us
       << ", \"args\": {\"" << JsonEscape(c.series) << "\": " << c.value << "}}";
  }
  os << "\n]}\n";
  return os.str();
}

}  // namespace kiln::runtime
