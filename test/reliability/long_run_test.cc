// A long run with dynamic shapes: 10,000 requests cycling a symbolic batch
// dim through 24 sizes, so each region reaches its specialization limit and
// then compiles the shape-generic version. Resident memory and JIT code
// must stop growing once every shape has been seen, and no region ever
// holds more than limit + 1 compiled versions. Under --config=asan this
// also checks for leaks (LeakSanitizer runs at exit).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <vector>

#include "kiln/session.h"
#include "test/reliability/reliability_util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KILN_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define KILN_SANITIZED 1
#endif
#endif

namespace kiln::reliability {
namespace {

constexpr int kRuns = 10000;
constexpr int kCheckpoint = 2000;  // every shape is hot long before this
constexpr int kShapes = 24;
constexpr int kMaxSpecializations = 4;
constexpr int64_t kWidth = 16;

// Resident set size in bytes, from /proc/self/statm (second field, pages).
int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0, resident_pages = 0;
  statm >> size_pages >> resident_pages;
  return resident_pages * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

struct Totals {
  int64_t code_bytes = 0;
  int64_t compiled_calls = 0;
  int64_t interpreted_calls = 0;
};

Totals Sum(const SessionStats& stats) {
  Totals t;
  for (const RegionStats& r : stats.regions) {
    t.code_bytes += r.code_bytes;
    t.compiled_calls += r.compiled_calls;
    t.interpreted_calls += r.interpreted_calls;
  }
  return t;
}

TEST(LongRun, MemoryAndJitCodeStayBoundedWithDynamicShapes) {
  auto model = SiluMatMulErfModel(kWidth);
  ASSERT_NE(model, nullptr);

  // Inputs and reference outputs for each batch size 1..kShapes.
  std::vector<std::vector<float>> inputs, expected;
  {
    SessionOptions interp;
    interp.tier = TierPolicy::kInterpreter;
    interp.intra_op_threads = 1;
    auto reference = Session::Create(model, interp);
    ASSERT_TRUE(reference.ok()) << reference.status().ToString();
    for (int s = 0; s < kShapes; ++s) {
      const int64_t batch = s + 1;
      inputs.push_back(RandomFloats(batch * kWidth, static_cast<unsigned>(batch), -3.f, 3.f));
      auto y = RunBatch(**reference, inputs.back(), batch);
      ASSERT_TRUE(y.ok()) << y.status().ToString();
      expected.push_back(*y);
    }
  }

  SessionOptions options;
  options.tier = TierPolicy::kAuto;
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  options.intra_op_threads = 1;
  options.jit_hot_threshold = 2;
  options.jit_max_specializations = kMaxSpecializations;
  options.jit_compile_threads = 1;
  // The bounds below are written for the elementwise regions around the
  // MatMul; a GEMM region adds a packed weight per specialization.
  options.jit_compile_gemm = false;
  // Each version's verification call comes whenever its first call does,
  // before or after the checkpoint; the counts below are of compiled code
  // serving (shadow_verification_test checks verification).
  options.jit_verify_calls = 0;
  auto created = Session::Create(model, options);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  const Session& session = **created;

  int64_t rss_checkpoint = 0;
  Totals at_checkpoint;
  int wrong = 0;
  RunWithWatchdog("long run", [&] {
    for (int run = 1; run <= kRuns; ++run) {
      const int s = (run * 7) % kShapes;  // 7 is coprime to 24: every size, shuffled
      auto y = RunBatch(session, inputs[static_cast<size_t>(s)], s + 1);
      ASSERT_TRUE(y.ok()) << "run " << run << ": " << y.status().ToString();
      if (!AllCloseScaled(*y, expected[static_cast<size_t>(s)], kRelTol)) ++wrong;
      if (run % 500 == 0) {
        for (const RegionStats& r : session.stats().regions) {
          ASSERT_LE(r.specializations, kMaxSpecializations + 1) << "region " << r.id << " at run " << run;
          ASSERT_LE(r.specializations + r.failed_compiles, kMaxSpecializations + 1) << "region " << r.id;
        }
      }
      if (run == kCheckpoint) {
        session.WaitForCompiles();
        at_checkpoint = Sum(session.stats());
        rss_checkpoint = ResidentBytes();
      }
    }
    session.WaitForCompiles();
  });
  EXPECT_EQ(wrong, 0);

  const SessionStats stats = session.stats();
  const Totals at_end = Sum(stats);
  const int64_t rss_end = ResidentBytes();
  ASSERT_EQ(stats.regions.size(), 2u);
  for (const RegionStats& r : stats.regions) {
    // Exactly the limit, then the generic version; nothing failed.
    EXPECT_EQ(r.specializations, kMaxSpecializations + 1) << "region " << r.id;
    EXPECT_EQ(r.failed_compiles, 0);
    EXPECT_EQ(r.tier, "jit");
  }
  // After the checkpoint every shape runs compiled and nothing compiles.
  EXPECT_EQ(at_end.code_bytes, at_checkpoint.code_bytes);
  EXPECT_EQ(at_end.interpreted_calls, at_checkpoint.interpreted_calls);
  EXPECT_EQ(at_end.compiled_calls - at_checkpoint.compiled_calls, int64_t{2} * (kRuns - kCheckpoint));
  EXPECT_EQ(stats.runs, kRuns);

  const double mib = 1024.0 * 1024.0;
  std::printf(
      "long run: RSS %.1f MiB at run %d, %.1f MiB at run %d (growth %+.2f MiB); JIT code %lld bytes "
      "(%d versions per region); peak planned %lld bytes\n",
      rss_checkpoint / mib, kCheckpoint, rss_end / mib, kRuns, (rss_end - rss_checkpoint) / mib,
      static_cast<long long>(at_end.code_bytes), kMaxSpecializations + 1,
      static_cast<long long>(stats.peak_planned_bytes));
  ::testing::Test::RecordProperty("rss_checkpoint_bytes", std::to_string(rss_checkpoint));
  ::testing::Test::RecordProperty("rss_end_bytes", std::to_string(rss_end));
  ::testing::Test::RecordProperty("jit_code_bytes", std::to_string(at_end.code_bytes));
#ifndef KILN_SANITIZED
  // 8,000 steady-state runs allocate and free the same sizes over and over;
  // a leak of even one small buffer per run would add well over this.
  EXPECT_LT(rss_end - rss_checkpoint, int64_t{8} << 20) << "resident memory keeps growing";
#endif
  // Under sanitizers the allocator quarantines freed memory, so RSS says
  // nothing about leaks there; LeakSanitizer checks them at exit instead.
}

}  // namespace
}  // namespace kiln::reliability
