// CompileLstm against a scalar LSTM in double precision (ONNX's equations,
// default activations), over batches that leave row remainders, hidden
// sizes that leave a partial panel, both directions, with and without
// initial states and bias; and the generated code for named CPUs.
#include "jit/lstm_codegen.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test/jit/jit_test_util.h"

namespace kiln::jit {
namespace {

using testing::SharedCompiler;

struct Case {
  int64_t seq, batch, input, hidden;
  int dirs;
  bool reverse;
  bool bias, initial;
};

std::vector<float> Random(size_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// ONNX LSTM, iofc gate order, in double.
void Reference(const Case& c, const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& r,
               const std::vector<float>& b, const std::vector<float>& h0, const std::vector<float>& c0,
               std::vector<double>& y, std::vector<double>& y_h, std::vector<double>& y_c) {
  const int64_t H = c.hidden, B = c.batch, I = c.input, G = 4 * H;
  y.assign(static_cast<size_t>(c.seq * c.dirs * B * H), 0);
  y_h.assign(static_cast<size_t>(c.dirs * B * H), 0);
  y_c.assign(static_cast<size_t>(c.dirs * B * H), 0);
  for (int d = 0; d < c.dirs; ++d) {
    const bool rev = c.dirs == 2 ? d == 1 : c.reverse;
    std::vector<double> h(static_cast<size_t>(B * H), 0), cs(static_cast<size_t>(B * H), 0);
    if (!h0.empty()) {
      for (int64_t i = 0; i < B * H; ++i) h[i] = h0[d * B * H + i], cs[i] = c0[d * B * H + i];
    }
    for (int64_t s = 0; s < c.seq; ++s) {
      const int64_t t = rev ? c.seq - 1 - s : s;
      std::vector<double> nh(h.size());
      for (int64_t bb = 0; bb < B; ++bb) {
        for (int64_t j = 0; j < H; ++j) {
          double gate[4];
          for (int g = 0; g < 4; ++g) {
            double acc = 0;
            const int64_t row = g * H + j;
            for (int64_t k = 0; k < I; ++k) acc += double(x[(t * B + bb) * I + k]) * w[(d * G + row) * I + k];
            for (int64_t k = 0; k < H; ++k) acc += h[bb * H + k] * r[(d * G + row) * H + k];
            if (!b.empty()) acc += double(b[d * 2 * G + row]) + b[d * 2 * G + G + row];
            gate[g] = acc;
          }
          const double i = Sigmoid(gate[0]), o = Sigmoid(gate[1]), f = Sigmoid(gate[2]), gg = std::tanh(gate[3]);
          const double cn = f * cs[bb * H + j] + i * gg;
          cs[bb * H + j] = cn;
          nh[bb * H + j] = o * std::tanh(cn);
          y[((t * c.dirs + d) * B + bb) * H + j] = nh[bb * H + j];
        }
      }
      h = nh;
    }
    for (int64_t i = 0; i < B * H; ++i) y_h[d * B * H + i] = h[i], y_c[d * B * H + i] = cs[i];
  }
}

// How Check runs the compiled LSTM: Run on the calling thread, or each
// direction's recurrence shared by two workers (RecurrenceWorker) on two
// threads, or both workers one after the other on one.
enum class Mode { kRun, kTwoThreads, kWorkersInTurn };

void Check(const Case& c, bool want_y = true, bool want_y_h = true, bool want_y_c = true, LstmTuning tuning = {},
           Mode mode = Mode::kRun) {
  SCOPED_TRACE(::testing::Message() << "seq " << c.seq << " batch " << c.batch << " input " << c.input << " hidden "
                                    << c.hidden << " dirs " << c.dirs << " reverse " << c.reverse << " bias " << c.bias
                                    << " initial " << c.initial << " mr " << tuning.mr);
  const int64_t H = c.hidden, G = 4 * H, state = c.dirs * c.batch * H;
  const std::vector<float> x = Random(static_cast<size_t>(c.seq * c.batch * c.input), 1.0f, 1);
  const std::vector<float> w = Random(static_cast<size_t>(c.dirs * G * c.input), 0.3f, 2);
  const std::vector<float> r = Random(static_cast<size_t>(c.dirs * G * H), 0.3f, 3);
  const std::vector<float> b = c.bias ? Random(static_cast<size_t>(c.dirs * 2 * G), 0.5f, 4) : std::vector<float>{};
  const std::vector<float> h0 = c.initial ? Random(static_cast<size_t>(state), 0.8f, 5) : std::vector<float>{};
  const std::vector<float> c0 = c.initial ? Random(static_cast<size_t>(state), 0.8f, 6) : std::vector<float>{};
  std::vector<double> ry, rh, rc;
  Reference(c, x, w, r, b, h0, c0, ry, rh, rc);

  LstmProblem p{c.seq, c.batch, c.input, c.hidden, c.dirs, c.reverse};
  StatusOr<std::unique_ptr<CompiledLstm>> lstm =
      CompileLstm(SharedCompiler(), p, w.data(), r.data(), c.bias ? b.data() : nullptr, tuning);
  ASSERT_TRUE(lstm.ok()) << lstm.status().ToString();
  // Guard bands around every output catch writes out of bounds.
  constexpr size_t kGuard = 64;
  constexpr float kSentinel = 1234.5f;
  auto guarded = [&](size_t n) { return std::vector<float>(n + 2 * kGuard, kSentinel); };
  std::vector<float> y = guarded(ry.size()), y_h = guarded(rh.size()), y_c = guarded(rc.size());
  std::vector<float> work((*lstm)->work_floats(), std::nanf(""));
  CompiledLstm::Buffers buf;
  buf.x = x.data();
  buf.initial_h = c.initial ? h0.data() : nullptr;
  buf.initial_c = c.initial ? c0.data() : nullptr;
  buf.y = want_y ? y.data() + kGuard : nullptr;
  buf.y_h = want_y_h ? y_h.data() + kGuard : nullptr;
  buf.y_c = want_y_c ? y_c.data() + kGuard : nullptr;
  buf.work = work.data();
  // Twice: the second run must not depend on what the first left in work.
  for (int run = 0; run < 2; ++run) {
    if (mode == Mode::kRun) {
      (*lstm)->Run(buf);
      continue;
    }
    for (int d = 0; d < c.dirs; ++d) {
      (*lstm)->RunProjection(buf, d, 0, (*lstm)->projection_tiles());
      (*lstm)->BeginRecurrence(buf, d);
      CompiledLstm::SharedRecurrence shared;
      if (mode == Mode::kTwoThreads) {
        std::thread other([&] { (*lstm)->RecurrenceWorker(buf, d, shared, 1); });
        (*lstm)->RecurrenceWorker(buf, d, shared, 0);
        other.join();
      } else {
        for (int worker : {1, 0}) (*lstm)->RecurrenceWorker(buf, d, shared, worker);
      }
      (*lstm)->EndRecurrence(buf, d);
    }
  }
  auto expect = [&](const std::vector<float>& got, const std::vector<double>& want, bool wanted, const char* what) {
    for (size_t i = 0; i < kGuard; ++i) {
      ASSERT_EQ(got[i], kSentinel) << what << " guard before";
      ASSERT_EQ(got[kGuard + want.size() + i], kSentinel) << what << " guard after";
    }
    for (size_t i = 0; i < want.size(); ++i) {
      if (!wanted) {
        ASSERT_EQ(got[kGuard + i], kSentinel) << what << " written though not wanted";
      } else {
        ASSERT_NEAR(got[kGuard + i], want[i], 2e-5) << what << " element " << i;
      }
    }
  };
  expect(y, ry, want_y, "Y");
  expect(y_h, rh, want_y_h, "Y_h");
  expect(y_c, rc, want_y_c, "Y_c");
}

TEST(LstmCodegenTest, ForwardMatchesReference) {
  for (int64_t batch : {1, 3, 4, 7}) Check({5, batch, 12, 32, 1, false, true, false});
}

TEST(LstmCodegenTest, HiddenSizesWithPartialPanels) {
  for (int64_t hidden : {1, 20, 50}) Check({4, 3, 9, hidden, 1, false, true, true});
}

TEST(LstmCodegenTest, ReverseAndBidirectional) {
  Check({6, 4, 8, 20, 1, true, true, true});
  Check({6, 3, 8, 20, 2, false, true, true});
  Check({3, 7, 5, 17, 2, false, false, false});
}

TEST(LstmCodegenTest, InitialStatesAndNoBias) {
  Check({4, 2, 6, 24, 1, false, false, true});
  Check({4, 2, 6, 24, 1, false, true, false});
}

TEST(LstmCodegenTest, EachOutputOptional) {
  const Case c{5, 3, 7, 20, 2, false, true, true};
  Check(c, true, false, false);
  Check(c, false, true, false);
  Check(c, false, false, true);
}

TEST(LstmCodegenTest, EveryRowTileSize) {
  const std::vector<float> w(4 * 20 * 20, 0.0f);
  for (int mr : {1, 2, 3, 5}) {
    // Tiles of more rows than this host's vector registers hold are refused.
    const StatusOr<std::unique_ptr<CompiledLstm>> probe =
        CompileLstm(SharedCompiler(), LstmProblem{1, 1, 20, 20}, w.data(), w.data(), nullptr, LstmTuning{mr});
    if (!probe.ok() && probe.status().code() == StatusCode::kInvalidArgument) continue;
    Check({3, 7, 6, 20, 1, false, true, true}, true, true, true, LstmTuning{mr});
  }
}

TEST(LstmCodegenTest, RecurrenceSharedByTwoWorkers) {
  for (Mode mode : {Mode::kTwoThreads, Mode::kWorkersInTurn}) {
    SCOPED_TRACE(mode == Mode::kTwoThreads ? "two threads" : "workers in turn");
    Check({9, 4, 12, 64, 1, false, true, true}, true, true, true, {}, mode);
    Check({7, 3, 8, 50, 1, true, true, false}, false, true, true, {}, mode);
    Check({6, 7, 5, 40, 2, false, false, true}, true, true, true, {}, mode);
  }
}

TEST(LstmCodegenTest, RejectsBadProblems) {
  const std::vector<float> w(64, 0.0f);
  EXPECT_EQ(CompileLstm(SharedCompiler(), LstmProblem{0, 1, 1, 1}, w.data(), w.data(), nullptr).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CompileLstm(SharedCompiler(), LstmProblem{1, 1, 1, 1, 3}, w.data(), w.data(), nullptr).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CompileLstm(SharedCompiler(), LstmProblem{1, 1, 1, 1}, nullptr, w.data(), nullptr).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EmitLstmAssembly(LstmProblem{2, 4, 8, 32}, "no-such-cpu", "").status().code(),
            StatusCode::kInvalidArgument);
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(LstmCodegenTest, Avx512CodeUsesZmmFmas) {
  for (const char* cpu : {"skylake-avx512", "znver4"}) {
    StatusOr<std::string> text = EmitLstmAssembly(LstmProblem{2, 4, 8, 256}, cpu, "");
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    EXPECT_GT(Count(*text, "vfmadd231ps\t%zmm") + Count(*text, "vfmadd231ps\t(%") + Count(*text, "vfmadd213ps\t%zmm"),
              0)
        << cpu;
    EXPECT_GT(Count(*text, "zmm"), 16) << cpu;
    EXPECT_EQ(Count(*text, "ymm"), 0) << cpu << ": 512-bit code split into halves";
  }
}

TEST(LstmCodegenTest, HaswellCodeUsesYmm) {
  StatusOr<std::string> text = EmitLstmAssembly(LstmProblem{2, 4, 8, 20}, "haswell", "");
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_GT(Count(*text, "vfmadd"), 0);
  EXPECT_GT(Count(*text, "ymm"), 0);
  EXPECT_EQ(Count(*text, "zmm"), 0);
}

TEST(LstmCodegenTest, RefusesIsaWithoutAvx2) {
  EXPECT_EQ(EmitLstmAssembly(LstmProblem{2, 4, 8, 20}, "x86-64", "").status().code(), StatusCode::kUnsupported);
}

// Not a test: times the zoo model's layers (run with
// --gtest_also_run_disabled_tests; KILN_LSTM_INPUT and KILN_LSTM_BATCH change
// the shape). Speed is measured, never asserted.
TEST(LstmCodegenTest, DISABLED_Timing) {
  auto env = [](const char* name, int64_t fallback) {
    const char* v = std::getenv(name);
    return v != nullptr ? int64_t{std::atoi(v)} : fallback;
  };
  const int64_t S = 100, H = 256, B = env("KILN_LSTM_BATCH", 4), I = env("KILN_LSTM_INPUT", 128);
  const LstmProblem p{S, B, I, H, 1, false};
  const std::vector<float> w = Random(static_cast<size_t>(4 * H * I), 0.1f, 1);
  const std::vector<float> r = Random(static_cast<size_t>(4 * H * H), 0.1f, 2);
  const std::vector<float> b = Random(static_cast<size_t>(8 * H), 0.1f, 3);
  const std::vector<float> x = Random(static_cast<size_t>(S * B * I), 1.0f, 4);
  StatusOr<std::unique_ptr<CompiledLstm>> lstm = CompileLstm(SharedCompiler(), p, w.data(), r.data(), b.data());
  ASSERT_TRUE(lstm.ok()) << lstm.status().ToString();
  std::vector<float> y(static_cast<size_t>(S * B * H)), work((*lstm)->work_floats());
  CompiledLstm::Buffers buf;
  buf.x = x.data();
  buf.y = y.data();
  buf.work = work.data();
  // Best and median of 200 calls, in microseconds.
  auto time = [&](auto&& fn) {
    std::vector<double> us;
    for (int rep = 0; rep < 200; ++rep) {
      const auto start = std::chrono::steady_clock::now();
      fn();
      us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(us.begin(), us.end());
    return std::make_pair(us.front(), us[us.size() / 2]);
  };
  const auto proj = time([&] { (*lstm)->RunProjection(buf, 0, 0, (*lstm)->projection_tiles()); });
  const auto rec = time([&] { (*lstm)->RunRecurrence(buf, 0); });
  const auto all = time([&] { (*lstm)->Run(buf); });
  std::printf(
      "%s: projection %.1f us (%.1f GFLOP/s), recurrence %.1f us = %.2f us/step (%.1f GFLOP/s in the products); "
      "whole layer best %.1f us, median %.1f us\n",
      (*lstm)->label().c_str(), proj.first, 2.0 * S * B * 4 * H * I / proj.first * 1e-3, rec.first, rec.first / S,
      2.0 * B * 4 * H * H * S / rec.first * 1e-3, all.first, all.second);
}

}  // namespace
}  // namespace kiln::jit
