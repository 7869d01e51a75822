// Many threads and many sessions on one shared Model while regions tier up
// in the background: every result must match the interpreter's, sessions
// may come and go while others run, and the JIT stays within its
// specialization limit. Meant to run under --config=tsan as well.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "kiln/session.h"
#include "test/reliability/reliability_util.h"

namespace kiln::reliability {
namespace {

constexpr int64_t kBatches[] = {1, 2, 3, 5, 8, 13};
constexpr int kInputsPerBatch = 2;
constexpr int kMaxSpecializations = 2;  // 6 batch sizes: the generic version compiles too

struct Case {
  int64_t batch = 0;
  std::vector<float> x;
  std::vector<float> expected;  // from an interpreter-only session
};

std::vector<Case> MakeCases(const std::shared_ptr<const Model>& model) {
  SessionOptions interp_options;
  interp_options.tier = TierPolicy::kInterpreter;
  interp_options.intra_op_threads = 1;
  auto reference = Session::Create(model, interp_options);
  EXPECT_TRUE(reference.ok()) << reference.status().ToString();
  std::vector<Case> cases;
  unsigned seed = 1;
  for (int64_t batch : kBatches) {
    for (int i = 0; i < kInputsPerBatch; ++i) {
      Case c;
      c.batch = batch;
      c.x = RandomFloats(batch * 64, seed++, -3.f, 3.f);
      auto y = RunBatch(**reference, c.x, batch);
      EXPECT_TRUE(y.ok()) << y.status().ToString();
      c.expected = y.ok() ? *y : std::vector<float>{};
      cases.push_back(std::move(c));
    }
  }
  return cases;
}

SessionOptions TieringOptions(int intra_op_threads) {
  SessionOptions options;
  options.tier = TierPolicy::kAuto;      // non-blocking: compiles in the background
  options.jit_keep_faster_tier = false;  // compiled code runs whatever its speed
  options.intra_op_threads = intra_op_threads;
  options.jit_hot_threshold = 2;
  options.jit_max_specializations = kMaxSpecializations;
  options.jit_compile_threads = 1;
  // These tests count the elementwise regions' specializations; the
  // MatMul's GEMM region tiers up under threads in GemmRegionTiersUpUnderThreads.
  options.jit_compile_gemm = false;
  return options;
}

TEST(Concurrency, ThreadsAndSessionsOnOneModelWhileRegionsTierUp) {
  std::shared_ptr<const Model> model = SiluMatMulErfModel();
  ASSERT_NE(model, nullptr);
  const std::vector<Case> cases = MakeCases(model);

  // Three long-lived sessions on the same model, with different pool sizes.
  std::vector<std::unique_ptr<Session>> sessions;
  for (int threads : {1, 2, 2}) {
    auto s = Session::Create(model, TieringOptions(threads));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    sessions.push_back(std::move(s).value());
  }

  constexpr int kThreads = 8;
  constexpr int kRunsPerThread = 36;
  std::atomic<int> errors{0};
  std::atomic<int> wrong{0};
  std::atomic<bool> runners_done{false};
  std::atomic<int> churned{0};

  RunWithWatchdog("concurrent runs", [&] {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const Session& session = *sessions[static_cast<size_t>(t % 3)];
        for (int rep = 0; rep < kRunsPerThread; ++rep) {
          // Threads walk the cases at different offsets, so at any moment
          // several shapes are in flight on each session.
          const Case& c = cases[static_cast<size_t>((t * 5 + rep) % static_cast<int>(cases.size()))];
          auto y = RunBatch(session, c.x, c.batch);
          if (!y.ok()) {
            ++errors;
            ADD_FAILURE() << "batch " << c.batch << ": " << y.status().ToString();
          } else if (!AllCloseScaled(*y, c.expected, kRelTol)) {
            ++wrong;
          }
        }
      });
    }
    // Sessions created and destroyed on the same model while the others
    // run; each is destroyed right after its runs, usually with compiles
    // still queued or running.
    std::thread churn([&] {
      SessionOptions options = TieringOptions(1);
      options.jit_hot_threshold = 1;
      options.jit_max_specializations = 1;
      int i = 0;
      while (!runners_done.load() || i < 3) {
        auto s = Session::Create(model, options);
        if (!s.ok()) {
          ++errors;
          ADD_FAILURE() << s.status().ToString();
          return;
        }
        for (int k = 0; k < 3; ++k) {
          const Case& c = cases[static_cast<size_t>((i + k * 4) % static_cast<int>(cases.size()))];
          auto y = RunBatch(**s, c.x, c.batch);
          if (!y.ok()) {
            ++errors;
          } else if (!AllCloseScaled(*y, c.expected, kRelTol)) {
            ++wrong;
          }
        }
        ++i;
        ++churned;
      }
    });
    for (auto& th : threads) th.join();
    runners_done.store(true);
    churn.join();
  });
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GE(churned.load(), 3);

  // Every shape has been hot by now: once the queued compiles are done,
  // every case runs compiled (two specializations, the generic version for
  // the rest), still matching the reference.
  RunWithWatchdog("final compiled pass", [&] {
    for (auto& session : sessions) {
      session->WaitForCompiles();
      // Versions published since their shapes last ran are verified on
      // their first call, which the interpreter serves: one pass first.
      for (const Case& c : cases) ASSERT_TRUE(RunBatch(*session, c.x, c.batch).ok());
      std::map<int, int64_t> compiled_before;
      for (const RegionStats& r : session->stats().regions) compiled_before[r.id] = r.compiled_calls;
      for (const Case& c : cases) {
        auto y = RunBatch(*session, c.x, c.batch);
        ASSERT_TRUE(y.ok()) << y.status().ToString();
        EXPECT_TRUE(AllCloseScaled(*y, c.expected, kRelTol)) << "batch " << c.batch;
      }
      const SessionStats stats = session->stats();
      ASSERT_EQ(stats.regions.size(), 2u);
      for (const RegionStats& r : stats.regions) {
        EXPECT_EQ(r.failed_compiles, 0) << "region " << r.id;
        EXPECT_EQ(r.specializations, kMaxSpecializations + 1) << "region " << r.id;
        EXPECT_EQ(r.tier, "jit");
        EXPECT_EQ(r.compiled_calls - compiled_before[r.id], static_cast<int64_t>(cases.size()))
            << "region " << r.id << " did not run compiled for every case";
      }
    }
  });
  sessions.clear();
}

// Runs `reps` calls on each of `num_threads` threads, the rep-th call of
// thread t on cases[pick(t, rep)], then waits for the session's compiles.
// Returns how many calls failed or differed from the reference.
int RunCasesOnThreads(const char* what, const Session& session, const std::vector<Case>& cases, int num_threads,
                      int reps, const std::function<int(int t, int rep)>& pick) {
  std::atomic<int> bad{0};
  RunWithWatchdog(what, [&] {
    std::vector<std::thread> threads;
    for (int t = 0; t < num_threads; ++t) {
      threads.emplace_back([&, t] {
        for (int rep = 0; rep < reps; ++rep) {
          const Case& c = cases[static_cast<size_t>(pick(t, rep))];
          auto y = RunBatch(session, c.x, c.batch);
          if (!y.ok() || !AllCloseScaled(*y, c.expected, kRelTol)) ++bad;
        }
      });
    }
    for (auto& th : threads) th.join();
    session.WaitForCompiles();
  });
  return bad.load();
}

// One session, one shape per thread, all hot at once: the compile queue
// gets a burst of requests for the same regions while every thread keeps
// reading the dispatch tables it publishes into.
TEST(Concurrency, BurstOfCompilesWhileDispatchTablesAreRead) {
  std::shared_ptr<const Model> model = SiluMatMulErfModel();
  ASSERT_NE(model, nullptr);
  const std::vector<Case> cases = MakeCases(model);
  SessionOptions options = TieringOptions(1);
  options.jit_hot_threshold = 1;
  options.jit_max_specializations = 8;
  options.jit_compile_threads = 2;
  auto session = Session::Create(model, options);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  // One thread per batch size.
  const int num_threads = static_cast<int>(cases.size()) / kInputsPerBatch;
  EXPECT_EQ(RunCasesOnThreads("burst", **session, cases, num_threads, 20,
                              [](int t, int rep) { return t * kInputsPerBatch + rep % kInputsPerBatch; }),
            0);
  for (const RegionStats& r : (*session)->stats().regions) {
    // One specialization per batch size, each compiled exactly once.
    EXPECT_EQ(r.specializations, static_cast<int>(std::size(kBatches))) << "region " << r.id;
    EXPECT_EQ(r.failed_compiles, 0);
  }
}

// The default policy: every new specialization is on trial against the
// interpreter, so while 8 threads run, calls of one signature alternate
// between tiers and a losing specialization is unpublished under them.
TEST(Concurrency, TrialsDecideWhileThreadsRun) {
  std::shared_ptr<const Model> model = SiluMatMulErfModel();
  ASSERT_NE(model, nullptr);
  const std::vector<Case> cases = MakeCases(model);
  SessionOptions options = TieringOptions(1);
  options.jit_keep_faster_tier = true;
  options.jit_hot_threshold = 1;
  options.jit_max_specializations = 8;
  auto session = Session::Create(model, options);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  const int num_cases = static_cast<int>(cases.size());
  EXPECT_EQ(RunCasesOnThreads("trials", **session, cases, 8, 40,
                              [num_cases](int t, int rep) { return (t + rep) % num_cases; }),
            0);
  for (const RegionStats& r : (*session)->stats().regions) {
    // Each batch size compiled once; its code kept or dropped, not both.
    EXPECT_EQ(r.specializations + r.declined, static_cast<int>(std::size(kBatches))) << "region " << r.id;
    EXPECT_EQ(r.failed_compiles, 0);
  }
}

// GEMM regions under threads: with the default options (trials on), eight
// threads run every batch size while the MatMul's shape-generic GEMM
// compiles in the background, is tried against the interpreter and is
// published or dropped under them.
TEST(Concurrency, GemmRegionTiersUpUnderThreads) {
  std::shared_ptr<const Model> model = SiluMatMulErfModel();
  ASSERT_NE(model, nullptr);
  const std::vector<Case> cases = MakeCases(model);
  SessionOptions options = TieringOptions(2);
  options.jit_compile_gemm = true;
  options.jit_keep_faster_tier = true;
  options.jit_hot_threshold = 1;
  auto session = Session::Create(model, options);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  const int num_cases = static_cast<int>(cases.size());
  EXPECT_EQ(
      RunCasesOnThreads("gemm", **session, cases, 8, 30, [num_cases](int t, int rep) { return (t + rep) % num_cases; }),
      0);
  int gemm_regions = 0;
  for (const RegionStats& r : (*session)->stats().regions) {
    if (r.kind != "gemm") continue;
    ++gemm_regions;
    EXPECT_EQ(r.failed_compiles, 0);
    // One generic version for every batch size: compiled once.
    EXPECT_EQ(r.specializations + r.declined, 1);
  }
  EXPECT_EQ(gemm_regions, 1);
}

}  // namespace
}  // namespace kiln::reliability
