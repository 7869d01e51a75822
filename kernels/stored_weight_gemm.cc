#include "kernels/stored_weight_gemm.h"

#include <immintrin.h>

#include <algorithm>

namespace kiln::kernels {
namespace {

// Eight accumulators' totals as one vector, lane i the sum of v[i]'s lanes.
inline __m256 ReduceEight(const __m256 v[8]) {
  const __m256 t01 = _mm256_hadd_ps(v[0], v[1]);
  const __m256 t23 = _mm256_hadd_ps(v[2], v[3]);
  const __m256 t45 = _mm256_hadd_ps(v[4], v[5]);
  const __m256 t67 = _mm256_hadd_ps(v[6], v[7]);
  // Each 128-bit half: v0..v3 (v4..v7) summed over that half's lanes.
  const __m256 u0 = _mm256_hadd_ps(t01, t23);
  const __m256 u1 = _mm256_hadd_ps(t45, t67);
  const __m256 low = _mm256_permute2f128_ps(u0, u1, 0x20);
  const __m256 high = _mm256_permute2f128_ps(u0, u1, 0x31);
  return _mm256_add_ps(low, high);
}

// Rows [i, i + MR) of C times columns [j, j + NR) (of which the first `valid`
// exist; the others reread B's last valid row and are not stored). The k
// tail is read with masked loads, which read nothing past it.
template <int MR, int NR>
void Tile(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t k, int64_t valid, const __m256i tail_mask,
          float* c, int64_t ldc, bool accumulate) {
  static_assert(MR * NR == 8, "a tile is eight dot products");
  const float* b_rows[NR];
#pragma GCC unroll 8
  for (int jj = 0; jj < NR; ++jj) b_rows[jj] = b + std::min<int64_t>(jj, valid - 1) * ldb;
  // Unrolled so that the accumulators stay in registers.
  __m256 acc[8];
#pragma GCC unroll 8
  for (__m256& v : acc) v = _mm256_setzero_ps();
  int64_t p = 0;
  for (; p + 8 <= k; p += 8) {
    __m256 bv[NR];
#pragma GCC unroll 8
    for (int jj = 0; jj < NR; ++jj) bv[jj] = _mm256_loadu_ps(b_rows[jj] + p);
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_loadu_ps(a + r * lda + p);
#pragma GCC unroll 8
      for (int jj = 0; jj < NR; ++jj) acc[r * NR + jj] = _mm256_fmadd_ps(av, bv[jj], acc[r * NR + jj]);
    }
  }
  if (p < k) {
    __m256 bv[NR];
#pragma GCC unroll 8
    for (int jj = 0; jj < NR; ++jj) bv[jj] = _mm256_maskload_ps(b_rows[jj] + p, tail_mask);
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_maskload_ps(a + r * lda + p, tail_mask);
#pragma GCC unroll 8
      for (int jj = 0; jj < NR; ++jj) acc[r * NR + jj] = _mm256_fmadd_ps(av, bv[jj], acc[r * NR + jj]);
    }
  }
  alignas(32) float sums[8];
  _mm256_store_ps(sums, ReduceEight(acc));
  for (int r = 0; r < MR; ++r) {
    float* c_row = c + r * ldc;
    for (int jj = 0; jj < NR && jj < valid; ++jj) {
      const float s = sums[r * NR + jj];
      c_row[jj] = accumulate ? c_row[jj] + s : s;
    }
  }
}

// Columns [j0, j1) of C, eight at a time; A's rows in blocks of 4, 2 and 1
// so that each tile does eight dot products.
void Columns(const float* a, int64_t lda, int64_t m, const float* b, int64_t ldb, int64_t j0, int64_t j1, int64_t k,
             float* c, int64_t ldc, bool accumulate) {
  alignas(32) int32_t mask_values[8];
  for (int l = 0; l < 8; ++l) mask_values[l] = l < k % 8 ? -1 : 0;
  const __m256i tail_mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(mask_values));
  for (int64_t j = j0; j < j1; j += 8) {
    const int64_t width = std::min<int64_t>(8, j1 - j);
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
      for (int64_t jj = 0; jj < width; jj += 2) {
        Tile<4, 2>(a + i * lda, lda, b + (j + jj) * ldb, ldb, k, std::min<int64_t>(2, width - jj), tail_mask,
                   c + i * ldc + j + jj, ldc, accumulate);
      }
    }
    for (; i + 2 <= m; i += 2) {
      for (int64_t jj = 0; jj < width; jj += 4) {
        Tile<2, 4>(a + i * lda, lda, b + (j + jj) * ldb, ldb, k, std::min<int64_t>(4, width - jj), tail_mask,
                   c + i * ldc + j + jj, ldc, accumulate);
      }
    }
    for (; i < m; ++i) {
      Tile<1, 8>(a + i * lda, lda, b + j * ldb, ldb, k, width, tail_mask, c + i * ldc + j, ldc, accumulate);
    }
  }
}

}  // namespace

void StoredWeightGemm(const float* a, int64_t lda, int64_t m, const float* b, int64_t ldb, int64_t n, int64_t k,
                      float* c, int64_t ldc, bool accumulate, const ParallelRunner& parallel) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < m; ++i) std::fill_n(c + i * ldc, n, 0.0f);
    }
    return;
  }
  // Tasks of at least this many multiply-adds: below it a fork and join
  // costs more than the work.
  constexpr int64_t kMinTaskMacs = int64_t{1} << 17;
  const int64_t blocks = (n + 7) / 8;
  const int64_t grain = std::max<int64_t>(1, kMinTaskMacs / std::max<int64_t>(1, 8 * m * k));
  auto run = [&](int64_t begin, int64_t end) {
    Columns(a, lda, m, b, ldb, begin * 8, std::min(n, end * 8), k, c, ldc, accumulate);
  };
  if (blocks <= grain || parallel.num_threads() <= 1) {
    run(0, blocks);
  } else {
    parallel.For(blocks, grain, run);
  }
}

}  // namespace kiln::kernels
