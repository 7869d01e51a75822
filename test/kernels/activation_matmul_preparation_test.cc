// A MatMul of two activations whose shapes the graph knows builds its
// oneDNN primitive in the background (OpKernel::TakePreparation): before the
// work has run, Compute gives UnpackedSgemm's results (no primitive), after
// it the primitive's, bit for bit what a kernel that never prepared gives;
// both close to a double-precision reference, with broadcast batches, a B
// without batch dims and a FusedMatMul's bias, residual and activation.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <vector>

#include "graph/fuse_epilogues.h"
#include "kernels/packed_sgemm.h"
#include "test/kernels/kernel_test_util.h"

namespace kiln::kernels {
namespace {

using kiln::testing::PlainAllocator;
using kiln::testing::StringAttr;

Tensor Random(const Dims& dims, uint32_t seed) { return kiln::testing::RandomTensor(dims, seed).value(); }

std::vector<float> Values(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.num_elements());
}

// Runs `kernel` on `inputs` (none constant) on one thread, the count the
// background work builds for in these tests.
std::vector<float> RunKernel(const OpKernel& kernel, const std::vector<const Tensor*>& inputs) {
  std::vector<Tensor> outputs(1);
  PlainAllocator allocator;
  const std::vector<bool> constant(inputs.size(), false);
  const SerialRunner serial;
  KernelContext ctx(inputs, outputs, allocator, serial, &constant);
  const Status s = kernel.Compute(ctx);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return s.ok() ? Values(outputs[0]) : std::vector<float>{};
}

std::unique_ptr<OpKernel> Create(const graph::Node& node) {
  auto kernel = DefaultKernelRegistry().Create(node);
  EXPECT_TRUE(kernel.ok()) << kernel.status().ToString();
  return kernel.ok() ? std::move(kernel).value() : nullptr;
}

std::vector<std::optional<Dims>> DimsOf(const std::vector<const Tensor*>& inputs) {
  std::vector<std::optional<Dims>> dims;
  for (const Tensor* t : inputs) dims.push_back(t != nullptr ? std::optional<Dims>(t->dims()) : std::nullopt);
  return dims;
}

// A [.., m, k] x B [.., k, n], numpy batch broadcasting, in double; then
// bias, residual and Relu when given.
std::vector<double> Reference(const Tensor& a, const Tensor& b, const Tensor* bias, const Tensor* residual, bool relu) {
  const size_t rank = std::max(a.rank(), b.rank());
  auto padded = [rank](const Dims& d) {
    Dims p(rank - d.size(), 1);
    p.insert(p.end(), d.begin(), d.end());
    return p;
  };
  const Dims ap = padded(a.dims()), bp = padded(b.dims());
  const int64_t m = ap[rank - 2], k = ap[rank - 1], n = bp[rank - 1];
  Dims out(rank - 2);
  int64_t batches = 1;
  for (size_t d = 0; d + 2 < rank; ++d) batches *= (out[d] = std::max(ap[d], bp[d]));
  std::vector<double> y(static_cast<size_t>(batches * m * n));
  for (int64_t batch = 0; batch < batches; ++batch) {
    int64_t rest = batch, a_off = 0, b_off = 0, a_stride = m * k, b_stride = k * n;
    for (size_t d = rank - 2; d-- > 0;) {
      const int64_t i = rest % out[d];
      rest /= out[d];
      a_off += (ap[d] == 1 ? 0 : i) * a_stride;
      b_off += (bp[d] == 1 ? 0 : i) * b_stride;
      a_stride *= ap[d];
      b_stride *= bp[d];
    }
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t c = 0; c < n; ++c) {
        double sum = 0;
        for (int64_t t = 0; t < k; ++t)
          sum += double{a.data<float>()[a_off + r * k + t]} * b.data<float>()[b_off + t * n + c];
        const size_t at = static_cast<size_t>((batch * m + r) * n + c);
        if (bias != nullptr) sum += bias->data<float>()[c];
        if (residual != nullptr) sum += residual->data<float>()[at];
        y[at] = relu ? std::max(sum, 0.0) : sum;
      }
    }
  }
  return y;
}

void ExpectNear(const std::vector<float>& got, const std::vector<double>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << what << " at " << i;
  }
}

void ExpectSameBits(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << what;
}

// Pending (UnpackedSgemm's bits), prepared (the primitive's bits, as a
// kernel that never prepared computes them) and the reference.
void CheckPendingAndPrepared(const graph::Node& node, const std::vector<const Tensor*>& inputs,
                             const std::vector<const Tensor*>& constants, const std::vector<double>& reference) {
  // The background work builds for its thread's OpenMP count; the runs here
  // have one thread.
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(1);
  std::unique_ptr<OpKernel> prepared = Create(node), never = Create(node);
  ASSERT_TRUE(prepared && never);
  std::function<void()> prepare = prepared->TakePreparation(constants, DimsOf(inputs));
  ASSERT_TRUE(prepare) << "a product of two activations of known shapes has a primitive to prepare";
  const std::vector<float> before = RunKernel(*prepared, inputs);
  prepare();
  const std::vector<float> after = RunKernel(*prepared, inputs);
  const std::vector<float> primitive = RunKernel(*never, inputs);
  omp_set_num_threads(saved_threads);
  ExpectNear(before, reference, "before preparation");
  ExpectNear(after, reference, "after preparation");
  ExpectSameBits(after, primitive, "prepared vs built on first use");
}

graph::Node MatMulNode() {
  graph::Node node;
  node.op_type = "MatMul";
  node.opset = 13;
  return node;
}

TEST(ActivationMatMulPreparation, AttentionShapesBeforeAndAfter) {
  // Q x K^T and scores x V, as exported attention computes them.
  const Tensor q = Random({1, 4, 32, 64}, 1), kt = Random({1, 4, 64, 40}, 2);
  const Tensor scores = Random({1, 4, 32, 40}, 3), v = Random({1, 4, 40, 64}, 4);
  for (const auto& [a, b] : {std::pair<const Tensor*, const Tensor*>{&q, &kt}, {&scores, &v}}) {
    SCOPED_TRACE(DimsToString(a->dims()) + " x " + DimsToString(b->dims()));
    CheckPendingAndPrepared(MatMulNode(), {a, b}, {nullptr, nullptr}, Reference(*a, *b, nullptr, nullptr, false));
  }
}

TEST(ActivationMatMulPreparation, PendingRunsGiveUnpackedSgemmsBits) {
  const Tensor a = Random({3, 37, 50}, 5), b = Random({3, 50, 72}, 6);
  std::unique_ptr<OpKernel> kernel = Create(MatMulNode());
  ASSERT_TRUE(kernel);
  std::function<void()> prepare = kernel->TakePreparation({nullptr, nullptr}, {a.dims(), b.dims()});
  ASSERT_TRUE(prepare);
  const std::vector<float> got = RunKernel(*kernel, {&a, &b});
  std::vector<float> want(3 * 37 * 72);
  for (int64_t batch = 0; batch < 3; ++batch) {
    UnpackedSgemm(a.data<float>() + batch * 37 * 50, 50, 37, b.data<float>() + batch * 50 * 72, 50, 72, 72,
                  /*transposed=*/false, want.data() + batch * 37 * 72, 72, SerialRunner(), {});
  }
  ExpectSameBits(got, want, "pending vs UnpackedSgemm per batch");
}

TEST(ActivationMatMulPreparation, BroadcastBatchesAndSharedB) {
  const Tensor a = Random({2, 1, 30, 24}, 7), b = Random({1, 3, 24, 20}, 8);
  CheckPendingAndPrepared(MatMulNode(), {&a, &b}, {nullptr, nullptr}, Reference(a, b, nullptr, nullptr, false));
  // B without batch dims: A's batches are rows of one product.
  const Tensor a2 = Random({3, 40, 24}, 9), b2 = Random({24, 48}, 10);
  CheckPendingAndPrepared(MatMulNode(), {&a2, &b2}, {nullptr, nullptr}, Reference(a2, b2, nullptr, nullptr, false));
}

TEST(ActivationMatMulPreparation, FusedBiasResidualAndActivation) {
  const Tensor a = Random({2, 33, 32}, 11), b = Random({2, 32, 24}, 12), bias = Random({24}, 13),
               residual = Random({2, 33, 24}, 14);
  graph::Node node;
  node.op_type = "FusedMatMul";
  node.domain = "kiln";
  node.opset = 1;
  node.attributes["activation"] = StringAttr("Relu");
  CheckPendingAndPrepared(node, {&a, &b, &bias, &residual}, {nullptr, nullptr, &bias, nullptr},
                          Reference(a, b, &bias, &residual, true));
}

TEST(ActivationMatMulPreparation, OtherShapesWhilePendingBuildTheirOwn) {
  const Tensor a = Random({1, 4, 32, 64}, 15), b = Random({1, 4, 64, 40}, 16);
  const Tensor a2 = Random({1, 4, 20, 64}, 17), b2 = Random({1, 4, 64, 20}, 18);
  std::unique_ptr<OpKernel> kernel = Create(MatMulNode());
  ASSERT_TRUE(kernel);
  std::function<void()> prepare = kernel->TakePreparation({nullptr, nullptr}, {a.dims(), b.dims()});
  ASSERT_TRUE(prepare);
  ExpectNear(RunKernel(*kernel, {&a2, &b2}), Reference(a2, b2, nullptr, nullptr, false), "another shape, pending");
  ExpectNear(RunKernel(*kernel, {&a, &b}), Reference(a, b, nullptr, nullptr, false), "the prepared shape, pending");
}

TEST(ActivationMatMulPreparation, NothingToPrepareWithoutShapesOrForSmallAndNarrowProducts) {
  std::unique_ptr<OpKernel> kernel = Create(MatMulNode());
  ASSERT_TRUE(kernel);
  // Dims unknown (a dynamic sequence length).
  EXPECT_FALSE(kernel->TakePreparation({nullptr, nullptr}, {Dims{1, 4, 32, 64}, std::nullopt}));
  // Small enough for the plain loop.
  EXPECT_FALSE(Create(MatMulNode())->TakePreparation({nullptr, nullptr}, {Dims{4, 8}, Dims{8, 8}}));
  // Fewer than 8 columns, and a 1-D B.
  EXPECT_FALSE(Create(MatMulNode())->TakePreparation({nullptr, nullptr}, {Dims{64, 256}, Dims{256, 4}}));
  EXPECT_FALSE(Create(MatMulNode())->TakePreparation({nullptr, nullptr}, {Dims{64, 256}, Dims{256}}));
}

}  // namespace
}  // namespace kiln::kernels
