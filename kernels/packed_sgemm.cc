#include "kernels/packed_sgemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace kiln::kernels {
namespace {

constexpr int64_t kPanel = PackedMatrixB::kPanelWidth;
// Rows of C per micro-kernel call: 6 x 2 accumulators plus the two panel
// vectors and a broadcast use 15 of AVX2's 16 registers.
constexpr int kTileRows = 6;
// Depth per pass over a tile: a panel's 256 x 16 floats (16 KiB) stay in L1
// while every row group of the task streams past them.
constexpr int64_t kDepthBlock = 256;
// A task: up to 48 rows (8 row groups; 48 KiB of A per depth block, in L2)
// times up to 8 panels (128 columns).
constexpr int64_t kTaskRows = 8 * kTileRows;
constexpr int64_t kTaskPanels = 8;
// UnpackedSgemm packs each panel block once per task: up to 8 times
// PackedSgemm's rows per task make that a small share of the work (384 rows
// of A per depth block, 384 KiB, still in L2), while leaving a task per
// thread.
constexpr int64_t kUnpackedTaskRows = 8 * kTaskRows;
// Packed panels start on a cache line, so a panel row (16 floats) is one
// line and never straddles two.
constexpr size_t kAlignment = 64;

// c[0, Rows) x [0, 16) (row stride ldc) = (accumulate ? c : 0) +
// a[0, Rows) x [0, depth) (row stride lda) * panel rows [0, depth), row p
// of the panel being the 16 floats at panel + p * panel_stride (kPanel for
// a packed panel; B's row stride when B is read in place).
//
// Each accumulator is a chain of dependent FMAs (4 cycles apart); two FMA
// units need 8 chains in flight to stay busy. Six rows give 12; one or two
// rows (a batch-1 GEMV) split the depth over Splits interleaved sets of
// accumulators instead, added together at the end.
//
// kPackedPanel: the stride is kPanel, a constant (the packed path's
// addressing), and `given_stride` is ignored.
template <int Rows, bool kPackedPanel>
void MicroKernel(const float* a, int64_t lda, const float* panel, int64_t given_stride, int64_t depth, float* c,
                 int64_t ldc, bool accumulate) {
  const int64_t panel_stride = kPackedPanel ? kPanel : given_stride;
  constexpr int kSplits = Rows == 1 ? 4 : Rows == 2 ? 2 : 1;
  __m256 acc[kSplits][Rows][2];
#pragma GCC unroll 4
  for (int s = 0; s < kSplits; ++s) {
#pragma GCC unroll 6
    for (int r = 0; r < Rows; ++r) {
      acc[s][r][0] = _mm256_setzero_ps();
      acc[s][r][1] = _mm256_setzero_ps();
    }
  }
  auto step = [&](int s, int64_t p) {
    const __m256 b0 = _mm256_loadu_ps(panel + p * panel_stride);
    const __m256 b1 = _mm256_loadu_ps(panel + p * panel_stride + 8);
#pragma GCC unroll 6
    for (int r = 0; r < Rows; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * lda + p);
      acc[s][r][0] = _mm256_fmadd_ps(av, b0, acc[s][r][0]);
      acc[s][r][1] = _mm256_fmadd_ps(av, b1, acc[s][r][1]);
    }
  };
  int64_t p = 0;
  for (; p + kSplits <= depth; p += kSplits) {
#pragma GCC unroll 4
    for (int s = 0; s < kSplits; ++s) step(s, p + s);
  }
  for (; p < depth; ++p) step(0, p);
#pragma GCC unroll 4
  for (int s = 1; s < kSplits; ++s) {
#pragma GCC unroll 6
    for (int r = 0; r < Rows; ++r) {
      acc[0][r][0] = _mm256_add_ps(acc[0][r][0], acc[s][r][0]);
      acc[0][r][1] = _mm256_add_ps(acc[0][r][1], acc[s][r][1]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < Rows; ++r) {
    float* row = c + r * ldc;
    if (accumulate) {
      acc[0][r][0] = _mm256_add_ps(acc[0][r][0], _mm256_loadu_ps(row));
      acc[0][r][1] = _mm256_add_ps(acc[0][r][1], _mm256_loadu_ps(row + 8));
    }
    _mm256_storeu_ps(row, acc[0][r][0]);
    _mm256_storeu_ps(row + 8, acc[0][r][1]);
  }
}

template <bool kPackedPanel>
void MicroKernelRowsOf(int rows, const float* a, int64_t lda, const float* panel, int64_t panel_stride, int64_t depth,
                       float* c, int64_t ldc, bool accumulate) {
  switch (rows) {
    case 6: return MicroKernel<6, kPackedPanel>(a, lda, panel, panel_stride, depth, c, ldc, accumulate);
    case 5: return MicroKernel<5, kPackedPanel>(a, lda, panel, panel_stride, depth, c, ldc, accumulate);
    case 4: return MicroKernel<4, kPackedPanel>(a, lda, panel, panel_stride, depth, c, ldc, accumulate);
    case 3: return MicroKernel<3, kPackedPanel>(a, lda, panel, panel_stride, depth, c, ldc, accumulate);
    case 2: return MicroKernel<2, kPackedPanel>(a, lda, panel, panel_stride, depth, c, ldc, accumulate);
    default: return MicroKernel<1, kPackedPanel>(a, lda, panel, panel_stride, depth, c, ldc, accumulate);
  }
}

void MicroKernelRows(int rows, const float* a, int64_t lda, const float* panel, int64_t panel_stride, int64_t depth,
                     float* c, int64_t ldc, bool accumulate) {
  if (panel_stride == kPanel)
    return MicroKernelRowsOf<true>(rows, a, lda, panel, panel_stride, depth, c, ldc, accumulate);
  MicroKernelRowsOf<false>(rows, a, lda, panel, panel_stride, depth, c, ldc, accumulate);
}

// One micro-kernel call for a tile of `rows` x `cols` (cols <= 16): a partial
// last panel goes through a 16-wide scratch tile so that nothing is read or
// written past C's columns.
void Tile(int rows, int64_t cols, const float* a, int64_t lda, const float* panel, int64_t panel_stride, int64_t depth,
          float* c, int64_t ldc, bool accumulate) {
  if (cols == kPanel) {
    MicroKernelRows(rows, a, lda, panel, panel_stride, depth, c, ldc, accumulate);
    return;
  }
  alignas(32) float scratch[kTileRows * kPanel];
  const size_t bytes = static_cast<size_t>(cols) * sizeof(float);
  if (accumulate) {
    for (int r = 0; r < rows; ++r) std::memcpy(scratch + r * kPanel, c + r * ldc, bytes);
  }
  MicroKernelRows(rows, a, lda, panel, panel_stride, depth, scratch, kPanel, accumulate);
  for (int r = 0; r < rows; ++r) std::memcpy(c + r * ldc, scratch + r * kPanel, bytes);
}

}  // namespace

void PackedMatrixB::FreeAligned::operator()(float* p) const { std::free(p); }

PackedMatrixB::PackedMatrixB(int64_t k, int64_t n, const float* source) : k_(k), n_(n), source_(source) {}

StatusOr<std::shared_ptr<const PackedMatrixB>> PackedMatrixB::Pack(const float* b, int64_t k, int64_t n, int64_t ldb,
                                                                   bool transposed) {
  std::shared_ptr<PackedMatrixB> packed(new PackedMatrixB(k, n, b));
  const size_t floats = static_cast<size_t>(std::max<int64_t>(1, packed->num_panels() * k * kPanel));
  // aligned_alloc wants a size that is a multiple of the alignment.
  const size_t bytes = (floats * sizeof(float) + kAlignment - 1) / kAlignment * kAlignment;
  packed->data_.reset(static_cast<float*>(std::aligned_alloc(kAlignment, bytes)));
  if (packed->data_ == nullptr) {
    return ResourceExhausted("cannot allocate ", bytes, " bytes for a packed ", k, "x", n, " weight");
  }
  for (int64_t p = 0; p < packed->num_panels(); ++p) {
    const int64_t col0 = p * kPanel;
    const int64_t cols = std::min(kPanel, n - col0);
    for (int64_t row = 0; row < k; ++row) {
      float* out = packed->data_.get() + (p * k + row) * kPanel;
      for (int64_t j = 0; j < cols; ++j) out[j] = transposed ? b[(col0 + j) * ldb + row] : b[row * ldb + col0 + j];
      std::fill(out + cols, out + kPanel, 0.0f);
    }
  }
  return std::shared_ptr<const PackedMatrixB>(std::move(packed));
}

StatusOr<std::shared_ptr<const PackedMatrixB>> PackedWeightSlot::Get(const float* b, int64_t k, int64_t n, int64_t ldb,
                                                                     bool transposed) const {
  MutexLock lock(mu_);
  if (packed_ == nullptr || packed_->source() != b || packed_->k() != k || packed_->n() != n) {
    KILN_ASSIGN_OR_RETURN(packed_, PackedMatrixB::Pack(b, k, n, ldb, transposed));
  }
  return packed_;
}

std::function<void()> PackedWeightSlot::DeferPacking(const float* b, int64_t k, int64_t n, int64_t ldb,
                                                     bool transposed) {
  {
    MutexLock lock(mu_);
    deferred_ = true;
  }
  return [this, b, k, n, ldb, transposed] {
    StatusOr<std::shared_ptr<const PackedMatrixB>> packed = PackedMatrixB::Pack(b, k, n, ldb, transposed);
    if (!packed.ok()) return;  // calls keep running unpacked
    MutexLock lock(mu_);
    packed_ = std::move(packed).value();
  };
}

std::shared_ptr<const PackedMatrixB> PackedWeightSlot::Published(const float* b, int64_t k, int64_t n,
                                                                 bool* deferred) const {
  MutexLock lock(mu_);
  *deferred = deferred_;
  if (packed_ != nullptr && packed_->source() == b && packed_->k() == k && packed_->n() == n) return packed_;
  return nullptr;
}

namespace {

// Rows [depth0, depth0 + depth) of one 16-column panel of B: row p is the 16
// floats at data + p * stride.
struct PanelBlock {
  const float* data;
  int64_t stride;
};

// PackedSgemm's loop over tasks (row blocks of `task_rows`, a multiple of
// kTaskRows, x panel groups), depth blocks, panels and tiles, with the panel
// block for (panel, depth0, depth) coming from `panel_block`, so that the
// packed and unpacked products sum in the same order (a task's rows only
// group tiles; each element's sum runs over the depth blocks in order). The
// epilogue sees the same tiles whatever `task_rows`: kTaskRows rows each.
template <typename GetPanelBlock>
void RunSgemm(const float* a, int64_t lda, int64_t m, int64_t k, int64_t n, float* c, int64_t ldc,
              const ParallelRunner& parallel, const TileEpilogue& epilogue, int64_t task_rows,
              const GetPanelBlock& panel_block) {
  if (m <= 0 || n <= 0) return;
  const int64_t panels = (n + kPanel - 1) / kPanel;
  const int64_t row_blocks = (m + task_rows - 1) / task_rows;
  const int64_t panel_groups = (panels + kTaskPanels - 1) / kTaskPanels;
  auto run_task = [&](int64_t task) {
    const int64_t row0 = task / panel_groups * task_rows, row1 = std::min(m, row0 + task_rows);
    const int64_t panel0 = task % panel_groups * kTaskPanels, panel1 = std::min(panels, panel0 + kTaskPanels);
    for (int64_t depth0 = 0; depth0 < k || depth0 == 0; depth0 += kDepthBlock) {
      const int64_t depth = std::min(kDepthBlock, k - depth0);
      for (int64_t p = panel0; p < panel1; ++p) {
        const int64_t cols = std::min(kPanel, n - p * kPanel);
        const PanelBlock block = panel_block(p, depth0, depth);
        for (int64_t row = row0; row < row1; row += kTileRows) {
          const int rows = static_cast<int>(std::min<int64_t>(kTileRows, row1 - row));
          Tile(rows, cols, a + row * lda + depth0, lda, block.data, block.stride, depth, c + row * ldc + p * kPanel,
               ldc, depth0 > 0);
        }
      }
    }
    if (!epilogue) return;
    for (int64_t row = row0; row < row1; row += kTaskRows) {
      epilogue(row, std::min(row1, row + kTaskRows), panel0 * kPanel, std::min(n, panel1 * kPanel));
    }
  };
  parallel.For(row_blocks * panel_groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) run_task(task);
  });
}

}  // namespace

void PackedSgemm(const float* a, int64_t lda, int64_t m, const PackedMatrixB& b, float* c, int64_t ldc,
                 const ParallelRunner& parallel, const TileEpilogue& epilogue) {
  RunSgemm(a, lda, m, b.k(), b.n(), c, ldc, parallel, epilogue, kTaskRows,
           [&b](int64_t panel, int64_t depth0, int64_t) {
             return PanelBlock{b.panel_row(panel, depth0), kPanel};
           });
}

void PanelSgemm(const float* a, int64_t lda, int64_t m, const float* panels, int64_t k, int64_t n, float* c,
                int64_t ldc, const ParallelRunner& parallel, const TileEpilogue& epilogue) {
  RunSgemm(a, lda, m, k, n, c, ldc, parallel, epilogue, kTaskRows, [panels, k](int64_t panel, int64_t depth0, int64_t) {
    return PanelBlock{panels + (panel * k + depth0) * kPanel, kPanel};
  });
}

namespace {

// Columns per pass of UnpackedGemv: its four accumulator rows (16 KiB) stay
// in L1 while B's rows stream past.
constexpr int64_t kGemvColumns = 1024;

// c[col0, col1) = (accumulate ? c : 0) + a[0, depth) * B rows [0, depth)
// (row stride ldb), each element summed exactly as MicroKernel<1> sums it:
// row p into accumulator p % 4 (rows past the last multiple of 4 into the
// first), the four added in order, then the earlier depth blocks' sum.
void GemvDepthBlock(const float* a, const float* b, int64_t ldb, int64_t depth, int64_t col0, int64_t col1, float* c,
                    bool accumulate) {
  constexpr int kSplits = 4;
  alignas(kAlignment) thread_local float acc[kSplits][kGemvColumns];
  const int64_t cols = col1 - col0;
  for (int s = 0; s < kSplits; ++s) std::fill(acc[s], acc[s] + cols, 0.f);
  const int64_t vector_cols = cols / 8 * 8;
  auto add_row = [&](float* row_acc, int64_t p) {
    const float* src = b + p * ldb + col0;
    const __m256 av = _mm256_broadcast_ss(a + p);
    for (int64_t j = 0; j < vector_cols; j += 8) {
      _mm256_store_ps(row_acc + j, _mm256_fmadd_ps(av, _mm256_loadu_ps(src + j), _mm256_load_ps(row_acc + j)));
    }
    for (int64_t j = vector_cols; j < cols; ++j) row_acc[j] = std::fma(a[p], src[j], row_acc[j]);
  };
  int64_t p = 0;
  for (; p + kSplits <= depth; p += kSplits) {
    for (int s = 0; s < kSplits; ++s) add_row(acc[s], p + s);
  }
  for (; p < depth; ++p) add_row(acc[0], p);
  for (int64_t j = 0; j < cols; ++j) {
    float sum = acc[0][j];
    for (int s = 1; s < kSplits; ++s) sum += acc[s][j];
    if (accumulate) sum += c[col0 + j];
    c[col0 + j] = sum;
  }
}

// UnpackedSgemm for one row of A and a row-major B: B's rows stream through
// in order (the in-place micro-kernel would read 64 bytes from each of 256
// rows per panel), with the micro-kernel's sums, and the epilogue on the
// tiles PackedSgemm gives it.
void UnpackedGemv(const float* a, const float* b, int64_t k, int64_t n, int64_t ldb, float* c,
                  const ParallelRunner& parallel, const TileEpilogue& epilogue) {
  const int64_t group_cols = kTaskPanels * kPanel;
  const int64_t groups = (n + group_cols - 1) / group_cols;
  parallel.For(groups, 1, [&](int64_t begin, int64_t end) {
    const int64_t first = begin * group_cols, last = std::min(n, end * group_cols);
    for (int64_t col0 = first; col0 < last; col0 += kGemvColumns) {
      const int64_t col1 = std::min(last, col0 + kGemvColumns);
      for (int64_t depth0 = 0; depth0 < k || depth0 == 0; depth0 += kDepthBlock) {
        GemvDepthBlock(a + depth0, b + depth0 * ldb, ldb, std::min(kDepthBlock, k - depth0), col0, col1, c, depth0 > 0);
      }
    }
    if (!epilogue) return;
    for (int64_t g = begin; g < end; ++g) epilogue(0, 1, g * group_cols, std::min(n, (g + 1) * group_cols));
  });
}

// Transposes the 8x8 block whose rows are rows[0..8) into out[0..8): out[i]
// holds element i of every row.
inline void Transpose8x8Ps(const __m256 rows[8], __m256 out[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(rows[0], rows[1]), t1 = _mm256_unpackhi_ps(rows[0], rows[1]);
  const __m256 t2 = _mm256_unpacklo_ps(rows[2], rows[3]), t3 = _mm256_unpackhi_ps(rows[2], rows[3]);
  const __m256 t4 = _mm256_unpacklo_ps(rows[4], rows[5]), t5 = _mm256_unpackhi_ps(rows[4], rows[5]);
  const __m256 t6 = _mm256_unpacklo_ps(rows[6], rows[7]), t7 = _mm256_unpackhi_ps(rows[6], rows[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  out[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  out[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  out[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  out[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  out[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  out[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  out[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  out[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// UnpackedGemv for a transposed B ([n, k], row stride ldb): column j of
// the product is row j of `bt`, so each column's weights are one contiguous
// row, read once, instead of being packed a panel at a time with strided
// loads. Eight columns at a time, their rows are read 8 depths at a time and
// transposed in registers, so that each depth's 8 values meet the
// accumulators in GemvDepthBlock's (and MicroKernel<1>'s) order: per depth
// block, row p into accumulator p % 4 (rows past the last multiple of 4 into
// the first), the four added in order, then the earlier depth blocks' sum.
// The epilogue sees UnpackedGemv's tiles.
void UnpackedGemvTransposed(const float* a, const float* bt, int64_t k, int64_t n, int64_t ldb, float* c,
                            const ParallelRunner& parallel, const TileEpilogue& epilogue) {
  constexpr int kSplits = 4;
  // Columns [col0, col0 + 8): every depth block in turn.
  auto eight_columns = [&](int64_t col0) {
    const float* rows = bt + col0 * ldb;
    for (int64_t depth0 = 0; depth0 < k || depth0 == 0; depth0 += kDepthBlock) {
      const int64_t depth = std::min(kDepthBlock, k - depth0);
      const int64_t whole = depth / kSplits * kSplits;
      __m256 acc[kSplits] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
      int64_t p = 0;
      // p + 8 <= depth makes every row of the block one before `whole`.
      for (; p + 8 <= depth; p += 8) {
        __m256 block[8], by_depth[8];
        for (int r = 0; r < 8; ++r) block[r] = _mm256_loadu_ps(rows + r * ldb + depth0 + p);
        Transpose8x8Ps(block, by_depth);
        for (int q = 0; q < 8; ++q) {
          acc[q % kSplits] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + depth0 + p + q), by_depth[q], acc[q % kSplits]);
        }
      }
      for (; p < depth; ++p) {
        alignas(32) float values[8];
        for (int r = 0; r < 8; ++r) values[r] = rows[r * ldb + depth0 + p];
        const int s = p < whole ? static_cast<int>(p % kSplits) : 0;
        acc[s] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + depth0 + p), _mm256_load_ps(values), acc[s]);
      }
      __m256 sum = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), acc[2]), acc[3]);
      if (depth0 > 0) sum = _mm256_add_ps(sum, _mm256_loadu_ps(c + col0));
      _mm256_storeu_ps(c + col0, sum);
    }
  };
  auto one_column = [&](int64_t col) {
    const float* row = bt + col * ldb;
    for (int64_t depth0 = 0; depth0 < k || depth0 == 0; depth0 += kDepthBlock) {
      const int64_t depth = std::min(kDepthBlock, k - depth0);
      const int64_t whole = depth / kSplits * kSplits;
      float acc[kSplits] = {0.f, 0.f, 0.f, 0.f};
      for (int64_t p = 0; p < depth; ++p) {
        const int s = p < whole ? static_cast<int>(p % kSplits) : 0;
        acc[s] = std::fma(a[depth0 + p], row[depth0 + p], acc[s]);
      }
      float sum = acc[0];
      for (int s = 1; s < kSplits; ++s) sum += acc[s];
      if (depth0 > 0) sum += c[col];
      c[col] = sum;
    }
  };
  const int64_t group_cols = kTaskPanels * kPanel;
  const int64_t groups = (n + group_cols - 1) / group_cols;
  parallel.For(groups, 1, [&](int64_t begin, int64_t end) {
    const int64_t first = begin * group_cols, last = std::min(n, end * group_cols);
    int64_t col = first;
    for (; col + 8 <= last; col += 8) eight_columns(col);
    for (; col < last; ++col) one_column(col);
    if (!epilogue) return;
    for (int64_t g = begin; g < end; ++g) epilogue(0, 1, g * group_cols, std::min(n, (g + 1) * group_cols));
  });
}

}  // namespace

void UnpackedSgemm(const float* a, int64_t lda, int64_t m, const float* b, int64_t k, int64_t n, int64_t ldb,
                   bool transposed, float* c, int64_t ldc, const ParallelRunner& parallel,
                   const TileEpilogue& epilogue) {
  // As many rows per task as leave every thread a task, between PackedSgemm's
  // and kUnpackedTaskRows.
  if (m == 1) {
    if (n <= 0) return;
    if (transposed) {
      UnpackedGemvTransposed(a, b, k, n, ldb, c, parallel, epilogue);
    } else {
      UnpackedGemv(a, b, k, n, ldb, c, parallel, epilogue);
    }
    return;
  }
  const int64_t threads = std::max(1, parallel.num_threads());
  const int64_t rows_per_thread = ((m + threads - 1) / threads + kTaskRows - 1) / kTaskRows * kTaskRows;
  const int64_t task_rows = std::clamp(rows_per_thread, kTaskRows, kUnpackedTaskRows);
  // A whole panel of a row-major B is read in place, unless B's rows are a
  // page or more apart and the task's rows pass over each panel block more
  // than twice: every row of the block then sits in a page of its own, at
  // the same offset in its page, which the caches and prefetchers serve far
  // worse than the 16 KiB copy that stays in L1.
  const bool copy_whole_panels = m > 2 * kTileRows && ldb * static_cast<int64_t>(sizeof(float)) >= 4096;
  RunSgemm(a, lda, m, k, n, c, ldc, parallel, epilogue, task_rows, [=](int64_t panel, int64_t depth0, int64_t depth) {
    // One block per thread, reused for every panel it packs: the previous
    // block's tiles have all run when the next one is asked for.
    alignas(kAlignment) thread_local float block[kDepthBlock * kPanel];
    const int64_t col0 = panel * kPanel;
    const int64_t cols = std::min(kPanel, n - col0);
    // A whole panel of a row-major B is 16 contiguous floats per row already:
    // the micro-kernel reads it in place, the same values in the same order
    // as from the copy.
    if (!transposed && cols == kPanel && !copy_whole_panels) return PanelBlock{b + depth0 * ldb + col0, ldb};
    if (transposed) {
      // Row j of B's transpose is column j of B: read along it.
      for (int64_t j = 0; j < cols; ++j) {
        const float* src = b + (col0 + j) * ldb + depth0;
        for (int64_t row = 0; row < depth; ++row) block[row * kPanel + j] = src[row];
      }
      for (int64_t row = 0; row < depth; ++row) std::fill(block + row * kPanel + cols, block + (row + 1) * kPanel, 0.f);
    } else {
      for (int64_t row = 0; row < depth; ++row) {
        float* out = block + row * kPanel;
        std::memcpy(out, b + (depth0 + row) * ldb + col0, static_cast<size_t>(cols) * sizeof(float));
        std::fill(out + cols, out + kPanel, 0.f);
      }
    }
    return PanelBlock{block, kPanel};
  });
}

Status SgemmWithWeight(const PackedWeightSlot& slot, const float* a, int64_t lda, int64_t m, const float* b, int64_t k,
                       int64_t n, int64_t ldb, bool transposed, float* c, int64_t ldc, const ParallelRunner& parallel,
                       const TileEpilogue& epilogue) {
  bool deferred = false;
  std::shared_ptr<const PackedMatrixB> packed = slot.Published(b, k, n, &deferred);
  if (packed == nullptr && deferred) {
    UnpackedSgemm(a, lda, m, b, k, n, ldb, transposed, c, ldc, parallel, epilogue);
    return Status::Ok();
  }
  if (packed == nullptr) {
    KILN_ASSIGN_OR_RETURN(packed, slot.Get(b, k, n, ldb, transposed));
  }
  PackedSgemm(a, lda, m, *packed, c, ldc, parallel, epilogue);
  return Status::Ok();
}

}  // namespace kiln::kernels
