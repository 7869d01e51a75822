// TraceRecorder keeps the newest request slices within its cap and every
// compile slice and counter, and says how many it dropped.
#include "runtime/trace_recorder.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace kiln::runtime {
namespace {

using Clock = TraceRecorder::Clock;

// Whether `json` holds a slice named `name`.
bool HasSlice(const std::string& json, const std::string& name) {
  return json.find("\"name\": \"" + name + "\", \"cat\"") != std::string::npos;
}

TEST(TraceRecorderTest, KeepsTheNewestRequestSlicesAndEveryCompileSlice) {
  TraceRecorder trace(/*max_request_slices=*/3);
  const Clock::time_point t0 = Clock::now();
  trace.AddSlice("compile 0", "compile", t0, t0 + std::chrono::milliseconds(5), TraceRecorder::kCompileTrack);
  for (int i = 0; i < 5; ++i) {
    const Clock::time_point start = t0 + std::chrono::microseconds(100 * i);
    trace.AddSlice("run " + std::to_string(i), "interp", start, start + std::chrono::microseconds(50));
  }
  trace.AddSlice("compile 1", "compile", t0, t0 + std::chrono::milliseconds(5), TraceRecorder::kCompileTrack);
  trace.AddCounter("region 0", "payback_calls", 12, t0);
  EXPECT_EQ(trace.dropped_request_slices(), 2);

  const std::string json = trace.ToChromeJson();
  EXPECT_FALSE(HasSlice(json, "run 0"));
  EXPECT_FALSE(HasSlice(json, "run 1"));
  ASSERT_TRUE(HasSlice(json, "run 2"));
  ASSERT_TRUE(HasSlice(json, "run 3"));
  ASSERT_TRUE(HasSlice(json, "run 4"));
  // Oldest first, whatever slot of the ring each landed in.
  EXPECT_LT(json.find("\"run 2\""), json.find("\"run 3\""));
  EXPECT_LT(json.find("\"run 3\""), json.find("\"run 4\""));
  EXPECT_TRUE(HasSlice(json, "compile 0"));
  EXPECT_TRUE(HasSlice(json, "compile 1"));
  EXPECT_NE(json.find("\"payback_calls\": 12"), std::string::npos);
  EXPECT_NE(json.find("\"dropped_request_slices\""), std::string::npos);
  EXPECT_NE(json.find("\"count\": 2"), std::string::npos);
}

TEST(TraceRecorderTest, BelowTheCapNothingIsDroppedOrMentioned) {
  TraceRecorder trace(/*max_request_slices=*/8);
  const Clock::time_point t0 = Clock::now();
  for (int i = 0; i < 8; ++i) trace.AddSlice("run " + std::to_string(i), "jit", t0, t0);
  EXPECT_EQ(trace.dropped_request_slices(), 0);
  const std::string json = trace.ToChromeJson();
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(HasSlice(json, "run " + std::to_string(i))) << i;
  EXPECT_EQ(json.find("dropped_request_slices"), std::string::npos);
}

}  // namespace
}  // namespace kiln::runtime
