// The JIT's GEMM against a double-precision reference: static and dynamic
// M, edges in M, N and K, transposed weights, every epilogue, row and
// column splits, guard bands around C; and the generated assembly for
// AVX-512 and AVX2 CPUs.
#include "jit/gemm_codegen.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "test/jit/jit_test_util.h"

namespace kiln::jit {
namespace {

using testing::SharedCompiler;

bool HostHasAvx512() { return __builtin_cpu_supports("avx512f"); }

double ProcessCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

std::vector<float> RandomFloats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

double Activate(const GemmEpilogue& e, double x) {
  switch (e.activation) {
    case GemmActivation::kNone: return x;
    case GemmActivation::kRelu: return x < 0 ? 0 : x;
    case GemmActivation::kLeakyRelu: return x < 0 ? e.alpha * x : x;
    case GemmActivation::kClip: return std::min<double>(std::max<double>(x, e.alpha), e.beta);
    case GemmActivation::kSigmoid: return 1 / (1 + std::exp(-x));
    case GemmActivation::kTanh: return std::tanh(x);
    case GemmActivation::kHardSwish: return x * std::clamp(x / 6 + 0.5, 0.0, 1.0);
    case GemmActivation::kHardSigmoid: return std::clamp(e.alpha * x + e.beta, 0.0, 1.0);
    case GemmActivation::kElu: return x < 0 ? e.alpha * std::expm1(x) : x;
    case GemmActivation::kGeluErf: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case GemmActivation::kGeluTanh: return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case GemmActivation::kSilu: return x / (1 + std::exp(-x));
  }
  return x;
}

// One GEMM's inputs and a guarded output, with ldc and ldr wider than n.
struct Case {
  GemmProblem problem;
  int64_t m = 0;  // rows to run (problem.m, or any M for a dynamic one)
  bool transposed = false;
  GemmTuning tuning;
};

constexpr float kSentinel = -12345.5f;
constexpr int64_t kGuard = 40;

// Checks `gemm` on m rows split into `row_splits` ranges and the column
// blocks into `col_splits` ranges, against the double reference.
void CheckRun(const CompiledGemm& gemm, const Case& c, int row_splits, int col_splits, uint32_t seed) {
  const GemmProblem& p = c.problem;
  const int64_t m = c.m, n = p.n, k = p.k;
  const int64_t lda = k + 3, ldc = n + 5, ldr = n + 2;
  const std::vector<float> a = RandomFloats(static_cast<size_t>(m * lda), seed);
  const std::vector<float> w = RandomFloats(static_cast<size_t>(k * n), seed + 1);  // [k,n] or [n,k]
  const std::vector<float> bias = RandomFloats(static_cast<size_t>(n), seed + 2);
  const std::vector<float> residual = RandomFloats(static_cast<size_t>(std::max<int64_t>(m, 1) * ldr), seed + 3);
  std::vector<float> out(static_cast<size_t>(2 * kGuard + m * ldc), kSentinel);
  float* cp = out.data() + kGuard;
  (void)w;

  const int64_t blocks = gemm.num_column_blocks();
  for (int rs = 0; rs < row_splits; ++rs) {
    for (int cs = 0; cs < col_splits; ++cs) {
      gemm.RunTile(a.data(), lda, m, cp, ldc, p.epilogue.has_bias ? bias.data() : nullptr,
                   p.epilogue.has_residual ? residual.data() : nullptr, ldr, m * rs / row_splits,
                   m * (rs + 1) / row_splits, blocks * cs / col_splits, blocks * (cs + 1) / col_splits);
    }
  }
  for (int64_t g = 0; g < kGuard; ++g) {
    ASSERT_EQ(out[static_cast<size_t>(g)], kSentinel) << "write before C at " << g;
    ASSERT_EQ(out[static_cast<size_t>(kGuard + m * ldc + g)], kSentinel) << "write after C at " << g;
  }
  int failures = 0;
  for (int64_t i = 0; i < m && failures < 8; ++i) {
    for (int64_t j = n; j < ldc; ++j) {
      if (cp[i * ldc + j] != kSentinel) {
        ADD_FAILURE() << "write in the ldc padding at row " << i << " column " << j;
        ++failures;
      }
    }
    for (int64_t j = 0; j < n && failures < 8; ++j) {
      double sum = 0, magnitude = 0;
      for (int64_t kk = 0; kk < k; ++kk) {
        const double bv = c.transposed ? w[static_cast<size_t>(j * k + kk)] : w[static_cast<size_t>(kk * n + j)];
        sum += double{a[static_cast<size_t>(i * lda + kk)]} * bv;
        magnitude += std::fabs(double{a[static_cast<size_t>(i * lda + kk)]} * bv);
      }
      double x = p.alpha * sum;
      magnitude *= std::fabs(p.alpha);
      if (p.epilogue.has_bias) x += bias[static_cast<size_t>(j)];
      if (p.epilogue.has_residual) x += residual[static_cast<size_t>(i * ldr + j)];
      const double want = Activate(p.epilogue, x);
      const double got = cp[i * ldc + j];
      // Rounding grows with sqrt(k) relative to the sum of |a||b|; the
      // activations add a few float ulps of |want| (and their slope is <= ~1.2).
      const double tol = 1e-5 * std::sqrt(static_cast<double>(k)) * (magnitude + 1) + 2e-6 * std::fabs(want) + 1e-6;
      if (!(std::fabs(got - want) <= tol)) {
        ADD_FAILURE() << "C[" << i << "," << j << "] = " << got << ", want " << want << " (tol " << tol << ") for " << m
                      << "x" << n << "x" << k << " " << GemmActivationName(p.epilogue.activation) << " splits "
                      << row_splits << "x" << col_splits;
        ++failures;
      }
    }
  }
}

std::unique_ptr<CompiledGemm> MustCompile(const Case& c, uint32_t seed) {
  const std::vector<float> w = RandomFloats(static_cast<size_t>(c.problem.k * c.problem.n), seed + 1);
  // The process's CPU time next to the wall time: on a shared machine the
  // wall time also counts waiting for a core (the JIT may compile on a
  // thread of its own, so the caller's thread time would miss it).
  const double cpu_start = ProcessCpuMs();
  StatusOr<std::unique_ptr<CompiledGemm>> gemm =
      CompileGemm(SharedCompiler(), c.problem, w.data(), c.transposed, c.tuning);
  const double cpu_ms = ProcessCpuMs() - cpu_start;
  if (!gemm.ok()) {
    ADD_FAILURE() << gemm.status().ToString();
    return nullptr;
  }
  std::printf(
      "[gemm] m=%lld n=%lld k=%lld: %s kc=%lld, compile %.2f ms (%.2f ms CPU), %zu code bytes, %zu packed bytes\n",
      static_cast<long long>(c.problem.m), static_cast<long long>(c.problem.n), static_cast<long long>(c.problem.k),
      (*gemm)->label().c_str(), static_cast<long long>((*gemm)->kc()), (*gemm)->compile_ms(), cpu_ms,
      (*gemm)->code_bytes(), (*gemm)->packed_weight_bytes());
  return std::move(*gemm);
}

void CheckCase(const Case& c, uint32_t seed = 1) {
  std::unique_ptr<CompiledGemm> gemm = MustCompile(c, seed);
  if (gemm == nullptr) return;
  CheckRun(*gemm, c, 1, 1, seed);
}

Case Make(int64_t m, int64_t n, int64_t k) {
  Case c;
  c.problem.m = m;
  c.problem.n = n;
  c.problem.k = k;
  c.m = m;
  return c;
}

TEST(GemmCodegenTest, OddShapes) {
  for (auto [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 1, 1},
                                                                           {3, 5, 7},
                                                                           {17, 33, 19},
                                                                           {29, 100, 61},
                                                                           {15, 47, 13},
                                                                           {64, 64, 64},
                                                                           {7, 129, 300},
                                                                           {45, 96, 17}}) {
    CheckCase(Make(m, n, k), static_cast<uint32_t>(m * 131 + n));
  }
}

TEST(GemmCodegenTest, NarrowerThanOneVector) {
  for (int64_t n : {1, 3, 7, 15}) CheckCase(Make(9, n, 21), static_cast<uint32_t>(n));
}

TEST(GemmCodegenTest, SingleRow) {
  for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{512, 512}, {1000, 77}, {33, 1025}, {5, 3}}) {
    CheckCase(Make(1, n, k), static_cast<uint32_t>(n + k));
  }
}

TEST(GemmCodegenTest, SplitKAccumulatesInC) {
  for (int64_t kc : {8, 13, 64}) {
    Case c = Make(23, 70, 150);
    c.tuning.kc = kc;
    c.problem.epilogue.has_bias = true;
    c.problem.epilogue.activation = GemmActivation::kRelu;
    c.problem.alpha = 0.5f;
    CheckCase(c, static_cast<uint32_t>(kc));
  }
  // The heuristic's own K blocks.
  CheckCase(Make(40, 96, 3000), 5);
}

TEST(GemmCodegenTest, TransposedWeight) {
  for (auto [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 70, 33}, {13, 50, 29}, {32, 128, 256}}) {
    Case c = Make(m, n, k);
    c.transposed = true;
    CheckCase(c, static_cast<uint32_t>(n));
  }
}

TEST(GemmCodegenTest, Alpha) {
  Case c = Make(11, 40, 37);
  c.problem.alpha = -2.5f;
  CheckCase(c);
}

TEST(GemmCodegenTest, EveryActivationWithBiasAndResidual) {
  const GemmActivation all[] = {GemmActivation::kNone,      GemmActivation::kRelu,        GemmActivation::kLeakyRelu,
                                GemmActivation::kClip,      GemmActivation::kSigmoid,     GemmActivation::kTanh,
                                GemmActivation::kHardSwish, GemmActivation::kHardSigmoid, GemmActivation::kElu,
                                GemmActivation::kGeluErf,   GemmActivation::kGeluTanh,    GemmActivation::kSilu};
  uint32_t seed = 100;
  for (GemmActivation act : all) {
    for (int combo = 0; combo < 4; ++combo) {
      Case c = Make(7, 37, 24);
      c.problem.epilogue.activation = act;
      c.problem.epilogue.has_bias = (combo & 1) != 0;
      c.problem.epilogue.has_residual = (combo & 2) != 0;
      c.problem.epilogue.alpha = act == GemmActivation::kClip          ? -0.5f
                                 : act == GemmActivation::kHardSigmoid ? 0.2f
                                                                       : 0.1f;
      c.problem.epilogue.beta = act == GemmActivation::kClip ? 0.7f : 0.5f;
      SCOPED_TRACE(GemmActivationName(act));
      CheckCase(c, seed++);
    }
  }
}

TEST(GemmCodegenTest, DynamicMServesEveryM) {
  Case c = Make(0, 75, 45);
  c.problem.epilogue.has_bias = true;
  c.problem.epilogue.has_residual = true;
  c.problem.epilogue.activation = GemmActivation::kGeluErf;
  std::unique_ptr<CompiledGemm> gemm = MustCompile(c, 7);
  ASSERT_NE(gemm, nullptr);
  EXPECT_TRUE(gemm->dynamic_m());
  for (int64_t m : {1, 2, 3, 5, 8, 13, 14, 15, 16, 29, 31, 64, 100}) {
    c.m = m;
    CheckRun(*gemm, c, 1, 1, 7);
  }
}

TEST(GemmCodegenTest, RowAndColumnSplitsEqualOneCall) {
  for (int64_t m : {int64_t{0}, int64_t{37}}) {
    Case c = Make(m, 200, 70);
    c.m = 37;
    c.problem.epilogue.has_residual = true;
    c.problem.epilogue.activation = GemmActivation::kTanh;
    std::unique_ptr<CompiledGemm> gemm = MustCompile(c, 9);
    ASSERT_NE(gemm, nullptr);
    for (auto [rows, cols] : std::vector<std::pair<int, int>>{{1, 1}, {2, 1}, {3, 1}, {1, 2}, {2, 3}, {5, 2}}) {
      CheckRun(*gemm, c, rows, cols, 9);
    }
  }
}

TEST(GemmCodegenTest, EveryTileOfTheHost) {
  const bool avx512 = HostHasAvx512();
  std::vector<std::pair<int, int>> tiles = {{6, avx512 ? 32 : 16}, {1, avx512 ? 64 : 16}};
  if (avx512) tiles.insert(tiles.end(), {{14, 32}, {8, 48}, {6, 64}});
  for (auto [mr, nr] : tiles) {
    for (int64_t m : {int64_t{0}, int64_t{45}}) {
      Case c = Make(m, 150, 40);
      c.m = 45;
      c.tuning.mr = mr;
      c.tuning.nr = nr;
      std::unique_ptr<CompiledGemm> gemm = MustCompile(c, 11);
      ASSERT_NE(gemm, nullptr);
      EXPECT_EQ(gemm->mr(), mr);
      EXPECT_EQ(gemm->nr(), nr);
      CheckRun(*gemm, c, 2, 1, 11);
    }
  }
}

TEST(GemmCodegenTest, ChoosesTheHostIsa) {
  std::unique_ptr<CompiledGemm> gemm = MustCompile(Make(32, 512, 512), 3);
  ASSERT_NE(gemm, nullptr);
  if (HostHasAvx512()) {
    EXPECT_EQ(gemm->isa(), "avx512");
    EXPECT_EQ(gemm->nr() % 16, 0);
  } else if (__builtin_cpu_supports("avx2")) {
    EXPECT_EQ(gemm->isa(), "avx2");
    EXPECT_EQ(gemm->nr(), 16);
  }
  EXPECT_EQ(gemm->packed_weight_bytes(), size_t{512 * 512 * 4});
  EXPECT_GT(gemm->code_bytes(), 0u);
  EXPECT_DOUBLE_EQ(gemm->flops(32), 2.0 * 32 * 512 * 512);
}

TEST(GemmCodegenTest, RejectsBadProblems) {
  const float w[4] = {};
  StatusOr<std::unique_ptr<CompiledGemm>> bad = CompileGemm(SharedCompiler(), Make(2, 0, 2).problem, w, false);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  bad = CompileGemm(SharedCompiler(), Make(2, 2, 2).problem, nullptr, false);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  GemmTuning too_big;
  too_big.mr = 16;
  too_big.nr = 256;
  bad = CompileGemm(SharedCompiler(), Make(2, 2, 2).problem, w, false, too_big);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EmitGemmAssembly(Make(2, 2, 2).problem, "no-such-cpu", "").status().code(), StatusCode::kInvalidArgument);
}

TEST(GemmCodegenTest, CompileTimeIsSmall) {
  for (int64_t m : {int64_t{0}, int64_t{1}, int64_t{128}}) {
    Case c = Make(m, 1024, 1024);
    c.problem.epilogue.has_bias = true;
    c.problem.epilogue.activation = GemmActivation::kGeluErf;
    std::unique_ptr<CompiledGemm> gemm = MustCompile(c, 21);
    ASSERT_NE(gemm, nullptr);
    // Generous for a loaded shared machine; the figure itself is printed.
    EXPECT_LT(gemm->compile_ms(), 250.0);
  }
}

TEST(GemmCodegenAssemblyTest, Avx512UsesZmmFmaAndMasks) {
  GemmProblem p = Make(30, 100, 64).problem;  // 100 columns: a masked edge
  StatusOr<std::string> asm_text = EmitGemmAssembly(p, "skylake-avx512", "");
  ASSERT_TRUE(asm_text.ok()) << asm_text.status().ToString();
  EXPECT_NE(asm_text->find("zmm"), std::string::npos);
  EXPECT_NE(asm_text->find("vfmadd"), std::string::npos);
  EXPECT_NE(asm_text->find("{%k"), std::string::npos);
  StatusOr<std::string> znver4 = EmitGemmAssembly(p, "znver4", "");
  ASSERT_TRUE(znver4.ok()) << znver4.status().ToString();
  EXPECT_NE(znver4->find("zmm"), std::string::npos);
}

TEST(GemmCodegenAssemblyTest, Avx2UsesYmmOnly) {
  GemmProblem p = Make(30, 100, 64).problem;
  StatusOr<std::string> asm_text = EmitGemmAssembly(p, "haswell", "");
  ASSERT_TRUE(asm_text.ok()) << asm_text.status().ToString();
  EXPECT_NE(asm_text->find("ymm"), std::string::npos);
  EXPECT_NE(asm_text->find("vfmadd"), std::string::npos);
  EXPECT_NE(asm_text->find("vmaskmovps"), std::string::npos);  // AVX2's masked edge
  EXPECT_EQ(asm_text->find("zmm"), std::string::npos);
  // An AVX-512 CPU with AVX-512 switched off gets the AVX2 tile too.
  StatusOr<std::string> off = EmitGemmAssembly(p, "skylake-avx512", "-avx512f");
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_EQ(off->find("zmm"), std::string::npos);
}

}  // namespace
}  // namespace kiln::jit
