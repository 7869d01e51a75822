// The packed GEMM against a double-precision reference, over shapes that hit
// every edge of its tiling: row counts around the 6-row micro-tile and the
// 48-row task, columns around the 16-wide panel, depths around the 256-deep
// block; B packed as given and transposed; run serially and split into
// chunks the way a thread pool would. PanelSgemm on the packed panels gives
// the same bits.
#include "kernels/packed_sgemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <set>
#include <tuple>
#include <vector>

#include "test/kernels/kernel_test_util.h"
#include "test/tensors.h"

namespace kiln::kernels {
namespace {

using kiln::testing::ChunkedRunner;
using kiln::testing::RandomFloats;

struct Shape {
  int64_t m, k, n;
};

void CheckShape(const Shape& s, bool transposed, const ParallelRunner& runner) {
  SCOPED_TRACE(::testing::Message() << s.m << "x" << s.k << "x" << s.n << (transposed ? " B^T" : ""));
  const int64_t lda = s.k + 3;  // strided rows: A need not be dense
  const int64_t ldc = s.n + 5;
  const std::vector<float> a = RandomFloats(s.m * lda, 1);
  // B as [k, n] or, transposed, as [n, k], with row stride ldb.
  const int64_t ldb = (transposed ? s.k : s.n) + 2;
  const std::vector<float> b = RandomFloats((transposed ? s.n : s.k) * ldb, 2);
  auto b_at = [&](int64_t row, int64_t col) { return transposed ? b[col * ldb + row] : b[row * ldb + col]; };

  StatusOr<std::shared_ptr<const PackedMatrixB>> packed = PackedMatrixB::Pack(b.data(), s.k, s.n, ldb, transposed);
  ASSERT_TRUE(packed.ok()) << packed.status().ToString();
  constexpr float kSentinel = 12345.f;
  std::vector<float> c(static_cast<size_t>(s.m * ldc), kSentinel);
  std::vector<int> finished(static_cast<size_t>(s.m * s.n), 0);
  std::mutex mu;
  PackedSgemm(a.data(), lda, s.m, **packed, c.data(), ldc, runner,
              [&](int64_t row0, int64_t row1, int64_t col0, int64_t col1) {
                std::lock_guard<std::mutex> lock(mu);
                for (int64_t i = row0; i < row1; ++i) {
                  for (int64_t j = col0; j < col1; ++j) ++finished[static_cast<size_t>(i * s.n + j)];
                }
              });
  int failures = 0;
  for (int64_t i = 0; i < s.m && failures < 5; ++i) {
    for (int64_t j = 0; j < ldc && failures < 5; ++j) {
      const float got = c[static_cast<size_t>(i * ldc + j)];
      if (j >= s.n) {
        // Padding between rows is never written.
        if (got != kSentinel) ++failures, ADD_FAILURE() << "wrote C[" << i << "][" << j << "] past the row";
        continue;
      }
      double want = 0;
      for (int64_t p = 0; p < s.k; ++p) want += double{a[static_cast<size_t>(i * lda + p)]} * b_at(p, j);
      if (std::fabs(got - want) > 1e-5 * (1 + std::sqrt(static_cast<double>(s.k)))) {
        ++failures;
        ADD_FAILURE() << "C[" << i << "][" << j << "] = " << got << ", want " << want;
      }
      if (finished[static_cast<size_t>(i * s.n + j)] != 1) {
        ++failures;
        ADD_FAILURE() << "C[" << i << "][" << j << "] was in " << finished[static_cast<size_t>(i * s.n + j)]
                      << " finished tiles, not 1";
      }
    }
  }
}

const Shape kShapes[] = {
    {1, 1, 1},      {1, 784, 1024}, {5, 7, 15},  {6, 16, 16},     {7, 255, 17},  {13, 256, 33},
    {48, 257, 130}, {50, 600, 129}, {97, 64, 8}, {128, 256, 256}, {3, 1000, 10},
};

TEST(PackedSgemm, MatchesReferenceSerial) {
  SerialRunner serial;
  for (const Shape& s : kShapes) {
    CheckShape(s, false, serial);
    CheckShape(s, true, serial);
  }
}

TEST(PackedSgemm, MatchesReferenceInChunks) {
  ChunkedRunner chunked;
  for (const Shape& s : kShapes) CheckShape(s, true, chunked);
}

TEST(PackedSgemm, SameBitsWhateverTheSplit) {
  // Each element is summed in one fixed order: the split must not matter.
  const Shape s{50, 600, 129};
  const std::vector<float> a = RandomFloats(s.m * s.k, 3);
  const std::vector<float> b = RandomFloats(s.k * s.n, 4);
  auto packed = PackedMatrixB::Pack(b.data(), s.k, s.n, s.n, false);
  ASSERT_TRUE(packed.ok());
  std::vector<float> serial_c(static_cast<size_t>(s.m * s.n)), chunked_c(serial_c.size());
  PackedSgemm(a.data(), s.k, s.m, **packed, serial_c.data(), s.n, SerialRunner(), nullptr);
  PackedSgemm(a.data(), s.k, s.m, **packed, chunked_c.data(), s.n, ChunkedRunner(), nullptr);
  EXPECT_EQ(serial_c, chunked_c);
}

TEST(PanelSgemm, EqualsPackedSgemmOnTheSamePanels) {
  // Panels laid out by the caller as Pack lays them out give PackedSgemm's
  // product bit for bit, over the same tiles.
  const ChunkedRunner chunked;
  for (const Shape& s : {Shape{1, 1, 1}, Shape{7, 255, 17}, Shape{50, 600, 129}, Shape{97, 64, 8}}) {
    SCOPED_TRACE(::testing::Message() << s.m << "x" << s.k << "x" << s.n);
    const int64_t lda = s.k + 3, ldc = s.n + 5;
    const std::vector<float> a = RandomFloats(s.m * lda, 7);
    const std::vector<float> b = RandomFloats(s.k * s.n, 8);
    auto packed = PackedMatrixB::Pack(b.data(), s.k, s.n, s.n, false);
    ASSERT_TRUE(packed.ok());
    std::vector<float> want(static_cast<size_t>(s.m * ldc), -3.f), got(want);
    std::set<std::tuple<int64_t, int64_t, int64_t, int64_t>> want_tiles, got_tiles;
    std::mutex mu;
    auto recorder = [&mu](std::set<std::tuple<int64_t, int64_t, int64_t, int64_t>>& tiles) {
      return [&mu, &tiles](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
        std::lock_guard<std::mutex> lock(mu);
        tiles.emplace(r0, r1, c0, c1);
      };
    };
    PackedSgemm(a.data(), lda, s.m, **packed, want.data(), ldc, chunked, recorder(want_tiles));
    PanelSgemm(a.data(), lda, s.m, (*packed)->panel_row(0, 0), s.k, s.n, got.data(), ldc, chunked, recorder(got_tiles));
    EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
    EXPECT_EQ(want_tiles, got_tiles);
  }
}

TEST(PackedWeightSlot, PacksOncePerMatrix) {
  const std::vector<float> b = RandomFloats(64 * 32, 5);
  const std::vector<float> other = RandomFloats(64 * 32, 6);
  PackedWeightSlot slot;
  auto first = slot.Get(b.data(), 64, 32, 32, false);
  auto again = slot.Get(b.data(), 64, 32, 32, false);
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first->get(), again->get());
  auto changed = slot.Get(other.data(), 64, 32, 32, false);
  ASSERT_TRUE(changed.ok());
  EXPECT_NE(changed->get(), first->get());
  EXPECT_EQ((*changed)->source(), other.data());
}

}  // namespace
}  // namespace kiln::kernels
