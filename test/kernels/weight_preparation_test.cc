// A constant weight's GEMM before and after its background packing
// (OpKernel::TakePreparation): UnpackedSgemm, which a first run uses while
// the packed copy is not ready, gives PackedSgemm's results bit for bit over
// shapes at every edge of the tiling; and MatMul and Gemm kernels give the
// same outputs with their preparation pending, done, or never taken, all
// close to a double-precision reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <set>
#include <tuple>
#include <vector>

#include "kernels/packed_sgemm.h"
#include "test/kernels/kernel_test_util.h"

namespace kiln::kernels {
namespace {

using kiln::testing::ChunkedRunner;
using kiln::testing::IntAttr;
using kiln::testing::PlainAllocator;
using kiln::testing::RandomFloats;

Tensor Random(const Dims& dims, uint32_t seed) { return kiln::testing::RandomTensor(dims, seed).value(); }

using Tiles = std::set<std::tuple<int64_t, int64_t, int64_t, int64_t>>;

TEST(UnpackedSgemm, EqualsPackedSgemmBitForBit) {
  const ChunkedRunner runner;
  struct Shape {
    int64_t m, k, n;
  };
  // One row of A takes its own paths (UnpackedGemv; UnpackedGemvTransposed
  // for B^T, which transposes 8 columns by 8 depths at a time): depths around
  // the 256-deep block, the 4-way split and the 8-deep transpose, columns
  // past one 1024-column pass, past a 128-column task and not a multiple of
  // 8, fewer than 8 columns.
  for (const Shape& s : {Shape{1, 1, 8}, Shape{1, 300, 1000}, Shape{1, 517, 1103}, Shape{1, 3, 13}, Shape{1, 260, 7},
                         Shape{1, 1030, 129}, Shape{1, 9, 200}, Shape{1, 264, 136}, Shape{5, 17, 15}, Shape{6, 256, 16},
                         Shape{7, 257, 33}, Shape{48, 512, 128}, Shape{50, 513, 130}, Shape{97, 64, 200},
                         // B's rows a page apart: whole panels are copied
                         // rather than read in place from 13 rows of A on
                         // (12 rows: read in place).
                         Shape{50, 300, 1030}, Shape{13, 40, 1100}, Shape{12, 260, 1024}}) {
    for (bool transposed : {false, true}) {
      SCOPED_TRACE(::testing::Message() << s.m << "x" << s.k << "x" << s.n << (transposed ? " B^T" : ""));
      const int64_t lda = s.k + 3, ldc = s.n + 5, ldb = (transposed ? s.k : s.n) + 2;
      const std::vector<float> a = RandomFloats(s.m * lda, 1);
      const std::vector<float> b = RandomFloats((transposed ? s.n : s.k) * ldb, 2);
      auto packed = PackedMatrixB::Pack(b.data(), s.k, s.n, ldb, transposed);
      ASSERT_TRUE(packed.ok()) << packed.status().ToString();
      std::vector<float> want(static_cast<size_t>(s.m * ldc), -7.f), got(want);
      Tiles want_tiles, got_tiles;
      std::mutex mu;
      auto recorder = [&](Tiles& tiles) {
        return [&mu, &tiles](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
          std::lock_guard<std::mutex> lock(mu);
          tiles.emplace(r0, r1, c0, c1);
        };
      };
      PackedSgemm(a.data(), lda, s.m, **packed, want.data(), ldc, runner, recorder(want_tiles));
      UnpackedSgemm(a.data(), lda, s.m, b.data(), s.k, s.n, ldb, transposed, got.data(), ldc, runner,
                    recorder(got_tiles));
      ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
      EXPECT_EQ(want_tiles, got_tiles);
      // And both are the product (the packed GEMM's own test covers it in
      // depth; one element per row here guards against equal garbage).
      for (int64_t i = 0; i < s.m; ++i) {
        const int64_t j = (i * 7) % s.n;
        double ref = 0;
        for (int64_t p = 0; p < s.k; ++p) {
          ref += double{a[static_cast<size_t>(i * lda + p)]} *
                 b[static_cast<size_t>(transposed ? j * ldb + p : p * ldb + j)];
        }
        EXPECT_NEAR(got[static_cast<size_t>(i * ldc + j)], ref, 1e-4 * (1 + std::sqrt(double(s.k))));
      }
    }
  }
}

// One kernel for `node`, its weight marked constant, run on `x`.
class WeightKernel {
 public:
  WeightKernel(const graph::Node& node, const Tensor& weight) : weight_(weight) {
    auto kernel = DefaultKernelRegistry().Create(node);
    EXPECT_TRUE(kernel.ok()) << kernel.status().ToString();
    if (kernel.ok()) kernel_ = std::move(kernel).value();
  }
  // The background work, or empty; after this, Compute never packs itself.
  std::function<void()> TakePreparation() {
    return kernel_->TakePreparation({nullptr, &weight_}, {std::nullopt, weight_.dims()});
  }

  std::vector<float> Run(const Tensor& x) const {
    std::vector<const Tensor*> inputs = {&x, &weight_};
    std::vector<Tensor> outputs(1);
    PlainAllocator allocator;
    const std::vector<bool> constant = {false, true};
    KernelContext ctx(inputs, outputs, allocator, runner_, &constant);
    const Status s = kernel_->Compute(ctx);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return {};
    return std::vector<float>(outputs[0].data<float>(), outputs[0].data<float>() + outputs[0].num_elements());
  }

 private:
  const Tensor& weight_;
  std::unique_ptr<OpKernel> kernel_;
  ChunkedRunner runner_;
};

void ExpectSameBits(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << what;
}

// Runs `node` (input 0 = x [m, k], input 1 = the weight) three ways and
// checks them against each other and against `reference`.
void CheckPreparationPaths(const graph::Node& node, const Tensor& x, const Tensor& weight,
                           const std::vector<double>& reference) {
  WeightKernel pending(node, weight), prepared(node, weight), inline_packed(node, weight);
  std::function<void()> never_run = pending.TakePreparation();
  ASSERT_TRUE(never_run) << "a constant float weight has packing to prepare";
  std::function<void()> prepare = prepared.TakePreparation();
  ASSERT_TRUE(prepare);
  const std::vector<float> unprepared = pending.Run(x);  // the packed copy never comes
  const std::vector<float> before = prepared.Run(x);     // first run, nothing packed yet
  prepare();
  const std::vector<float> after = prepared.Run(x);
  const std::vector<float> legacy = inline_packed.Run(x);  // packs on its first call
  ExpectSameBits(unprepared, after, "pending vs prepared");
  ExpectSameBits(before, after, "first run vs after preparation");
  ExpectSameBits(legacy, after, "packed inline vs in the background");
  ASSERT_EQ(after.size(), reference.size());
  for (size_t i = 0; i < reference.size(); ++i) {
    ASSERT_NEAR(after[i], reference[i], 1e-4 * (1 + std::fabs(reference[i]))) << i;
  }
}

TEST(WeightPreparation, MatMulGivesTheSameOutputsPendingPreparedAndInline) {
  constexpr int64_t m = 13, k = 300, n = 70;
  const Tensor x = Random({m, k}, 3);
  const Tensor w = Random({k, n}, 4);
  std::vector<double> reference(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p) sum += double{x.data<float>()[i * k + p]} * w.data<float>()[p * n + j];
      reference[static_cast<size_t>(i * n + j)] = sum;
    }
  }
  graph::Node node;
  node.op_type = "MatMul";
  node.opset = 13;
  CheckPreparationPaths(node, x, w, reference);
}

TEST(WeightPreparation, GemmWithTransposedWeightGivesTheSameOutputs) {
  constexpr int64_t m = 7, k = 129, n = 40;
  const Tensor x = Random({m, k}, 5);
  const Tensor w = Random({n, k}, 6);  // PyTorch's Linear layout
  std::vector<double> reference(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p) sum += double{x.data<float>()[i * k + p]} * w.data<float>()[j * k + p];
      reference[static_cast<size_t>(i * n + j)] = sum;
    }
  }
  graph::Node node;
  node.op_type = "Gemm";
  node.opset = 13;
  node.attributes["transB"] = IntAttr(1);
  CheckPreparationPaths(node, x, w, reference);
}

TEST(WeightPreparation, NothingToPrepareWithoutAConstantWeight) {
  graph::Node node;
  node.op_type = "MatMul";
  node.opset = 13;
  auto kernel = DefaultKernelRegistry().Create(node);
  ASSERT_TRUE(kernel.ok());
  EXPECT_FALSE((*kernel)->TakePreparation({nullptr, nullptr}, {std::nullopt, std::nullopt}));
  // A narrow weight is not packed at all.
  const Tensor narrow = Random({16, 3}, 1);
  EXPECT_FALSE((*kernel)->TakePreparation({nullptr, &narrow}, {std::nullopt, narrow.dims()}));
}

}  // namespace
}  // namespace kiln::kernels
