// Tests of the oneDNN-backed family (Conv, ConvTranspose, MatMul, Gemm,
// BatchNormalization, pooling) against naive reference loops written here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "test/kernels/kernel_test_util.h"

namespace kiln {
namespace {

using testing::ElementCount;
using testing::FloatAttr;
using testing::IntAttr;
using testing::IntsAttr;
using testing::MakeTensor;
using testing::RandomFloats;
using testing::RunOp;
using testing::StringAttr;
using testing::ToVector;

// 2-D convolution reference; x [N,C,H,W], w [M,C/G,KH,KW].
struct Conv2dParams {
  int64_t group = 1;
  Dims strides = {1, 1}, dilations = {1, 1}, pads = {0, 0, 0, 0};
};
std::vector<float> RefConv2d(const std::vector<float>& x, const Dims& xd, const std::vector<float>& w, const Dims& wd,
                             const std::vector<float>* b, const Conv2dParams& p, Dims* yd) {
  const int64_t n = xd[0], c = xd[1], h = xd[2], wi = xd[3], m = wd[0], kh = wd[2], kw = wd[3];
  const int64_t cg = c / p.group, mg = m / p.group;
  const int64_t oh = (h + p.pads[0] + p.pads[2] - ((kh - 1) * p.dilations[0] + 1)) / p.strides[0] + 1;
  const int64_t ow = (wi + p.pads[1] + p.pads[3] - ((kw - 1) * p.dilations[1] + 1)) / p.strides[1] + 1;
  *yd = {n, m, oh, ow};
  std::vector<float> y(static_cast<size_t>(n * m * oh * ow));
  for (int64_t in = 0; in < n; ++in)
    for (int64_t om = 0; om < m; ++om)
      for (int64_t y0 = 0; y0 < oh; ++y0)
        for (int64_t x0 = 0; x0 < ow; ++x0) {
          double acc = b ? (*b)[static_cast<size_t>(om)] : 0.0;
          const int64_t g = om / mg;
          for (int64_t ic = 0; ic < cg; ++ic)
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy = y0 * p.strides[0] - p.pads[0] + ky * p.dilations[0];
                const int64_t ix = x0 * p.strides[1] - p.pads[1] + kx * p.dilations[1];
                if (iy < 0 || iy >= h || ix < 0 || ix >= wi) continue;
                acc += x[static_cast<size_t>(((in * c + g * cg + ic) * h + iy) * wi + ix)] *
                       w[static_cast<size_t>(((om * cg + ic) * kh + ky) * kw + kx)];
              }
          y[static_cast<size_t>(((in * m + om) * oh + y0) * ow + x0)] = static_cast<float>(acc);
        }
  return y;
}

struct ConvCase {
  Dims xd, wd;
  Conv2dParams p;
  bool bias;
};

TEST(ConvTest, MatchesReference) {
  const std::vector<ConvCase> cases = {
      {{1, 3, 7, 7}, {4, 3, 3, 3}, {}, true},
      {{2, 4, 9, 8}, {6, 2, 3, 2}, {2, {2, 1}, {1, 2}, {1, 0, 2, 1}}, true},   // groups, strides, dilations, pads
      {{1, 8, 6, 6}, {8, 1, 3, 3}, {8, {1, 1}, {1, 1}, {1, 1, 1, 1}}, false},  // depthwise
      {{1, 4, 5, 5}, {8, 1, 3, 3}, {4, {2, 2}, {1, 1}, {1, 1, 1, 1}}, true},   // depthwise with multiplier
      {{1, 2, 5, 6}, {3, 2, 1, 1}, {1, {1, 2}, {1, 1}, {0, 0, 0, 0}}, true},   // 1x1
  };
  uint32_t seed = 1;
  for (const ConvCase& tc : cases) {
    auto xv = RandomFloats(static_cast<size_t>(ElementCount(tc.xd)), seed++);
    auto wv = RandomFloats(static_cast<size_t>(ElementCount(tc.wd)), seed++);
    auto bv = RandomFloats(static_cast<size_t>(tc.wd[0]), seed++);
    Dims yd;
    auto expected = RefConv2d(xv, tc.xd, wv, tc.wd, tc.bias ? &bv : nullptr, tc.p, &yd);
    Tensor x = MakeTensor<float>(tc.xd, xv), w = MakeTensor<float>(tc.wd, wv), b = MakeTensor<float>({tc.wd[0]}, bv);
    std::vector<const Tensor*> inputs = {&x, &w};
    if (tc.bias) inputs.push_back(&b);
    auto out = RunOp("Conv", inputs,
                     {{"group", IntAttr(tc.p.group)},
                      {"strides", IntsAttr(tc.p.strides)},
                      {"dilations", IntsAttr(tc.p.dilations)},
                      {"pads", IntsAttr(tc.p.pads)}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ((*out)[0].dims(), yd);
    testing::ExpectNear(ToVector<float>((*out)[0]), expected, 1e-4f, 1e-5f);
  }
}

// Reports two threads and runs the chunks on the calling thread: kernels
// size their oneDNN primitives for two threads (DnnlThreadsFor), which
// oneDNN then runs on its own OpenMP team.
class TwoThreadRunner final : public kernels::ParallelRunner {
 public:
  void For(int64_t n, int64_t, const std::function<void(int64_t, int64_t)>& fn) const override {
    const int64_t half = n / 2;
    if (half > 0) fn(0, half);
    if (n > half) fn(half, n);
  }
  int num_threads() const override { return 2; }
};

// Convolutions that touch little memory but compute much (pointwise and 3x3
// over small maps with many channels) have their primitive built for, and
// run on, the run's two threads; the results are the reference's.
TEST(ConvTest, ComputeHeavySmallConvolutionsOnTwoThreads) {
  const std::vector<ConvCase> cases = {
      {{1, 40, 14, 14}, {240, 40, 1, 1}, {}, true},
      {{1, 96, 7, 7}, {96, 96, 3, 3}, {1, {1, 1}, {1, 1}, {1, 1, 1, 1}}, true},
      {{1, 64, 8, 8}, {128, 64, 3, 3}, {1, {2, 2}, {1, 1}, {1, 1, 1, 1}}, false},
  };
  uint32_t seed = 700;
  for (const ConvCase& tc : cases) {
    SCOPED_TRACE(DimsToString(tc.xd) + " * " + DimsToString(tc.wd));
    auto xv = RandomFloats(static_cast<size_t>(ElementCount(tc.xd)), seed++);
    auto wv = RandomFloats(static_cast<size_t>(ElementCount(tc.wd)), seed++);
    auto bv = RandomFloats(static_cast<size_t>(tc.wd[0]), seed++);
    Dims yd;
    auto expected = RefConv2d(xv, tc.xd, wv, tc.wd, tc.bias ? &bv : nullptr, tc.p, &yd);
    Tensor x = MakeTensor<float>(tc.xd, xv), w = MakeTensor<float>(tc.wd, wv), b = MakeTensor<float>({tc.wd[0]}, bv);
    std::vector<const Tensor*> inputs = {&x, &w};
    if (tc.bias) inputs.push_back(&b);
    graph::Node node;
    node.op_type = "Conv";
    node.opset = 17;
    node.attributes = {{"group", IntAttr(tc.p.group)},
                       {"strides", IntsAttr(tc.p.strides)},
                       {"dilations", IntsAttr(tc.p.dilations)},
                       {"pads", IntsAttr(tc.p.pads)}};
    auto out = testing::RunNode(node, inputs, TwoThreadRunner());
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ((*out)[0].dims(), yd);
    testing::ExpectNear(ToVector<float>((*out)[0]), expected, 1e-4f, 1e-5f);
  }
}

TEST(ConvTest, AutoPadSameAndOneD) {
  // SAME_UPPER with stride 2 on 5x5 with a 3x3 kernel: output 3x3, pads 1/1.
  auto xv = RandomFloats(25, 7), wv = RandomFloats(9, 8);
  Dims yd;
  Conv2dParams p;
  p.strides = {2, 2};
  p.pads = {1, 1, 1, 1};
  auto expected = RefConv2d(xv, {1, 1, 5, 5}, wv, {1, 1, 3, 3}, nullptr, p, &yd);
  Tensor x = MakeTensor<float>({1, 1, 5, 5}, xv), w = MakeTensor<float>({1, 1, 3, 3}, wv);
  auto out = RunOp(
      "Conv", {&x, &w},
      {{"auto_pad", StringAttr("SAME_UPPER")}, {"strides", IntsAttr({2, 2})}, {"kernel_shape", IntsAttr({3, 3})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), yd);
  testing::ExpectNear(ToVector<float>((*out)[0]), expected);

  // 1-D: [1, 2, 6] with a [1, 2, 3] kernel, pad 1 each side.
  auto x1 = RandomFloats(12, 9), w1 = RandomFloats(6, 10);
  p = Conv2dParams();
  p.pads = {0, 1, 0, 1};
  expected = RefConv2d(x1, {1, 2, 1, 6}, w1, {1, 2, 1, 3}, nullptr, p, &yd);
  Tensor xt = MakeTensor<float>({1, 2, 6}, x1), wt = MakeTensor<float>({1, 2, 3}, w1);
  out = RunOp("Conv", {&xt, &wt}, {{"pads", IntsAttr({1, 1})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{1, 1, 6}));
  testing::ExpectNear(ToVector<float>((*out)[0]), expected);
}

// One kernel object called again on the same shapes (the path that reuses
// its oneDNN plan) keeps giving the reference result; whether the plan was
// rebuilt is not visible from here.
TEST(ConvTest, RepeatedCallsOnOneKernelStayCorrect) {
  auto xv = RandomFloats(2 * 3 * 4 * 4, 3), wv = RandomFloats(2 * 3 * 2 * 2, 4);
  Tensor x = MakeTensor<float>({2, 3, 4, 4}, xv), w = MakeTensor<float>({2, 3, 2, 2}, wv);
  graph::Node node;
  node.op_type = "Conv";
  node.opset = 17;
  auto kernel = kernels::DefaultKernelRegistry().Create(node);
  ASSERT_TRUE(kernel.ok());
  Dims yd;
  auto expected = RefConv2d(xv, {2, 3, 4, 4}, wv, {2, 3, 2, 2}, nullptr, {}, &yd);
  for (int i = 0; i < 3; ++i) {
    std::vector<const Tensor*> inputs = {&x, &w};
    std::vector<Tensor> outputs(1);
    testing::PlainAllocator alloc;
    kernels::SerialRunner serial;
    kernels::KernelContext ctx(inputs, outputs, alloc, serial);
    ASSERT_TRUE((*kernel)->Compute(ctx).ok());
    testing::ExpectNear(ToVector<float>(outputs[0]), expected);
  }
}

// Runs `kernel` once on `inputs` and returns output 0.
std::vector<float> RunKernel(const kernels::OpKernel& kernel, std::vector<const Tensor*> inputs) {
  std::vector<Tensor> outputs(1);
  testing::PlainAllocator alloc;
  kernels::SerialRunner serial;
  kernels::KernelContext ctx(inputs, outputs, alloc, serial);
  Status s = kernel.Compute(ctx);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return s.ok() ? ToVector<float>(outputs[0]) : std::vector<float>();
}

TEST(ConvTest, PackedWeightsFollowChangedValuesAndConcurrentCalls) {
  // Big enough for oneDNN to choose blocked layouts (weights packed once).
  const Dims xd = {1, 16, 10, 10}, wd = {16, 16, 3, 3};
  auto xv = RandomFloats(static_cast<size_t>(ElementCount(xd)), 31),
       wv = RandomFloats(static_cast<size_t>(ElementCount(wd)), 32);
  graph::Node node;
  node.op_type = "Conv";
  node.opset = 17;
  node.attributes = {{"pads", IntsAttr({1, 1, 1, 1})}};
  auto kernel = kernels::DefaultKernelRegistry().Create(node);
  ASSERT_TRUE(kernel.ok());
  Tensor x = MakeTensor<float>(xd, xv), w = MakeTensor<float>(wd, wv);
  Conv2dParams p;
  p.pads = {1, 1, 1, 1};
  Dims yd;
  testing::ExpectNear(RunKernel(**kernel, {&x, &w}), RefConv2d(xv, xd, wv, wd, nullptr, p, &yd), 1e-4f, 1e-5f);
  // Same tensor (same address), new values: the packed copy must not be reused.
  for (float& f : wv) f = -2.0f * f;
  std::copy(wv.begin(), wv.end(), w.data<float>());
  const auto expected = RefConv2d(xv, xd, wv, wd, nullptr, p, &yd);
  testing::ExpectNear(RunKernel(**kernel, {&x, &w}), expected, 1e-4f, 1e-5f);

  std::vector<std::thread> threads;
  std::vector<std::vector<float>> results(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) results[t] = RunKernel(**kernel, {&x, &w});
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) testing::ExpectNear(r, expected, 1e-4f, 1e-5f);
}

TEST(ConvTest, Errors) {
  Tensor x = MakeTensor<float>({1, 3, 4, 4}, std::vector<float>(48, 1.0f));
  Tensor w = MakeTensor<float>({2, 2, 3, 3}, std::vector<float>(36, 1.0f));
  auto out = RunOp("Conv", {&x, &w});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("channel mismatch"), std::string::npos) << out.status().message();

  Tensor x2 = MakeTensor<float>({3, 4}, std::vector<float>(12, 1.0f));
  out = RunOp("Conv", {&x2, &w});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("rank"), std::string::npos);

  Tensor w3 = MakeTensor<float>({2, 3, 5, 5}, std::vector<float>(150, 1.0f));
  out = RunOp("Conv", {&x, &w3});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);

  Tensor xi = MakeTensor<int32_t>({1, 3, 4, 4}, std::vector<int32_t>(48, 1));
  out = RunOp("Conv", {&xi, &w});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnsupported);
}

// ConvTranspose reference (2-D): y[oc, iy*s - pb + ky*d] += x[ic, iy] * w[ic, oc].
std::vector<float> RefConvTranspose2d(const std::vector<float>& x, const Dims& xd, const std::vector<float>& w,
                                      const Dims& wd, const std::vector<float>* b, int64_t group, const Dims& s,
                                      const Dims& d, const Dims& pads, const Dims& out_pad, Dims* yd) {
  const int64_t n = xd[0], c = xd[1], h = xd[2], wi = xd[3], mg = wd[1], kh = wd[2], kw = wd[3];
  const int64_t m = mg * group, cg = c / group;
  const int64_t oh = s[0] * (h - 1) + out_pad[0] + (kh - 1) * d[0] + 1 - pads[0] - pads[2];
  const int64_t ow = s[1] * (wi - 1) + out_pad[1] + (kw - 1) * d[1] + 1 - pads[1] - pads[3];
  *yd = {n, m, oh, ow};
  std::vector<double> y(static_cast<size_t>(n * m * oh * ow), 0.0);
  for (int64_t in = 0; in < n; ++in)
    for (int64_t om = 0; om < m; ++om)
      for (int64_t i = 0; i < oh * ow; ++i) y[static_cast<size_t>((in * m + om) * oh * ow + i)] = b ? (*b)[om] : 0.0;
  for (int64_t in = 0; in < n; ++in)
    for (int64_t ic = 0; ic < c; ++ic) {
      const int64_t g = ic / cg;
      for (int64_t iy = 0; iy < h; ++iy)
        for (int64_t ix = 0; ix < wi; ++ix)
          for (int64_t oc = 0; oc < mg; ++oc)
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t oy = iy * s[0] - pads[0] + ky * d[0];
                const int64_t ox = ix * s[1] - pads[1] + kx * d[1];
                if (oy < 0 || oy >= oh || ox < 0 || ox >= ow) continue;
                y[static_cast<size_t>(((in * m + g * mg + oc) * oh + oy) * ow + ox)] +=
                    x[static_cast<size_t>(((in * c + ic) * h + iy) * wi + ix)] *
                    w[static_cast<size_t>(((ic * mg + oc) * kh + ky) * kw + kx)];
              }
    }
  return std::vector<float>(y.begin(), y.end());
}

TEST(ConvTransposeTest, MatchesReference) {
  struct Case {
    Dims xd, wd;
    int64_t group;
    Dims s, d, pads, out_pad;
  };
  const std::vector<Case> cases = {
      {{1, 2, 3, 3}, {2, 3, 3, 3}, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, {0, 0}},
      {{2, 4, 3, 4}, {4, 2, 3, 2}, 2, {2, 3}, {1, 1}, {1, 0, 1, 1}, {1, 0}},
      {{1, 2, 4, 4}, {2, 1, 3, 3}, 1, {2, 2}, {2, 1}, {0, 0, 0, 0}, {1, 1}},  // output_padding > end pad
      {{1, 3, 3, 3}, {3, 1, 2, 2}, 3, {2, 2}, {1, 1}, {1, 1, 0, 0}, {0, 0}},
  };
  uint32_t seed = 40;
  for (const Case& tc : cases) {
    auto xv = RandomFloats(static_cast<size_t>(ElementCount(tc.xd)), seed++);
    auto wv = RandomFloats(static_cast<size_t>(ElementCount(tc.wd)), seed++);
    auto bv = RandomFloats(static_cast<size_t>(tc.wd[1] * tc.group), seed++);
    Dims yd;
    auto expected = RefConvTranspose2d(xv, tc.xd, wv, tc.wd, &bv, tc.group, tc.s, tc.d, tc.pads, tc.out_pad, &yd);
    Tensor x = MakeTensor<float>(tc.xd, xv), w = MakeTensor<float>(tc.wd, wv);
    Tensor b = MakeTensor<float>({tc.wd[1] * tc.group}, bv);
    auto out = RunOp("ConvTranspose", {&x, &w, &b},
                     {{"group", IntAttr(tc.group)},
                      {"strides", IntsAttr(tc.s)},
                      {"dilations", IntsAttr(tc.d)},
                      {"pads", IntsAttr(tc.pads)},
                      {"output_padding", IntsAttr(tc.out_pad)}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ((*out)[0].dims(), yd);
    testing::ExpectNear(ToVector<float>((*out)[0]), expected, 1e-4f, 1e-5f);
  }
}

TEST(ConvTransposeTest, OutputShapeLargerThanFullResult) {
  // Full result is 3x3 (1x1 input, 3x3 kernel); output_shape 4x4 puts the
  // extra row/column at the end, holding only the bias.
  Tensor x = MakeTensor<float>({1, 1, 1, 1}, {2.0f});
  Tensor w = MakeTensor<float>({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  Tensor b = MakeTensor<float>({1}, {0.5f});
  auto out = RunOp("ConvTranspose", {&x, &w, &b}, {{"output_shape", IntsAttr({4, 4})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{1, 1, 4, 4}));
  testing::ExpectNear(ToVector<float>((*out)[0]), {2.5f, 4.5f, 6.5f, 0.5f, 8.5f, 10.5f, 12.5f, 0.5f, 14.5f, 16.5f,
                                                   18.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f});
}

TEST(ConvTransposeTest, Errors) {
  Tensor x = MakeTensor<float>({1, 3, 2, 2}, std::vector<float>(12, 1.0f));
  Tensor w = MakeTensor<float>({2, 1, 3, 3}, std::vector<float>(18, 1.0f));
  auto out = RunOp("ConvTranspose", {&x, &w});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("channel mismatch"), std::string::npos);
}

std::vector<float> RefMatMul(const std::vector<float>& a, const std::vector<float>& b, int64_t batch, int64_t m,
                             int64_t k, int64_t n, bool a_batched, bool b_batched) {
  std::vector<float> y(static_cast<size_t>(batch * m * n));
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) {
        double acc = 0;
        for (int64_t t = 0; t < k; ++t)
          acc += a[static_cast<size_t>((a_batched ? i * m * k : 0) + r * k + t)] *
                 b[static_cast<size_t>((b_batched ? i * k * n : 0) + t * n + c)];
        y[static_cast<size_t>((i * m + r) * n + c)] = static_cast<float>(acc);
      }
  return y;
}

TEST(MatMulTest, TwoDAndBatched) {
  auto av = RandomFloats(3 * 4 * 5, 1), bv = RandomFloats(3 * 5 * 2, 2);
  Tensor a = MakeTensor<float>({3, 4, 5}, av), b = MakeTensor<float>({3, 5, 2}, bv);
  auto out = RunOp("MatMul", {&a, &b});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{3, 4, 2}));
  testing::ExpectNear(ToVector<float>((*out)[0]), RefMatMul(av, bv, 3, 4, 5, 2, true, true));

  // B without batch: broadcast over A's batch.
  Tensor b2 = MakeTensor<float>({5, 2}, std::vector<float>(bv.begin(), bv.begin() + 10));
  out = RunOp("MatMul", {&a, &b2});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{3, 4, 2}));
  testing::ExpectNear(ToVector<float>((*out)[0]),
                      RefMatMul(av, std::vector<float>(bv.begin(), bv.begin() + 10), 3, 4, 5, 2, true, false));

  // A without batch, B batched: [4,5] x [2,1,5,2] -> [2,1,4,2].
  Tensor a2 = MakeTensor<float>({4, 5}, std::vector<float>(av.begin(), av.begin() + 20));
  Tensor b3 = MakeTensor<float>({2, 1, 5, 2}, std::vector<float>(bv.begin(), bv.begin() + 20));
  out = RunOp("MatMul", {&a2, &b3});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{2, 1, 4, 2}));
  testing::ExpectNear(ToVector<float>((*out)[0]),
                      RefMatMul(std::vector<float>(av.begin(), av.begin() + 20),
                                std::vector<float>(bv.begin(), bv.begin() + 20), 2, 4, 5, 2, false, true));
}

TEST(MatMulTest, BroadcastBothBatches) {
  // [2,1,2,3] x [1,3,3,2] -> [2,3,2,2].
  auto av = RandomFloats(12, 5), bv = RandomFloats(18, 6);
  Tensor a = MakeTensor<float>({2, 1, 2, 3}, av), b = MakeTensor<float>({1, 3, 3, 2}, bv);
  auto out = RunOp("MatMul", {&a, &b});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{2, 3, 2, 2}));
  std::vector<float> expected;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) {
      auto part = RefMatMul(std::vector<float>(av.begin() + i * 6, av.begin() + i * 6 + 6),
                            std::vector<float>(bv.begin() + j * 6, bv.begin() + j * 6 + 6), 1, 2, 3, 2, false, false);
      expected.insert(expected.end(), part.begin(), part.end());
    }
  testing::ExpectNear(ToVector<float>((*out)[0]), expected);
}

TEST(MatMulTest, LargeProblemsUseOneDnnPaths) {
  // Above the small-problem threshold: B batched (broadcast A) and B shared.
  auto av = RandomFloats(32 * 40, 71), bv = RandomFloats(3 * 40 * 24, 72);
  Tensor a = MakeTensor<float>({1, 32, 40}, av), b = MakeTensor<float>({3, 40, 24}, bv);
  auto out = RunOp("MatMul", {&a, &b});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{3, 32, 24}));
  testing::ExpectNear(ToVector<float>((*out)[0]), RefMatMul(av, bv, 3, 32, 40, 24, false, true));

  auto a2v = RandomFloats(2 * 64 * 64, 73), b2v = RandomFloats(64 * 48, 74);
  Tensor a2 = MakeTensor<float>({2, 64, 64}, a2v), b2 = MakeTensor<float>({64, 48}, b2v);
  out = RunOp("MatMul", {&a2, &b2});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{2, 64, 48}));
  testing::ExpectNear(ToVector<float>((*out)[0]), RefMatMul(a2v, b2v, 2, 64, 64, 48, true, false));
}

// Numpy-style batched matmul in double: batch dims right-aligned and
// broadcast, A [.., m, k] x B [.., k, n].
std::vector<float> RefBroadcastMatMul(const std::vector<float>& a, const Dims& a_dims, const std::vector<float>& b,
                                      const Dims& b_dims, Dims& out_dims) {
  const size_t rank = std::max(a_dims.size(), b_dims.size());
  auto padded = [rank](const Dims& d) {
    Dims p(rank - d.size(), 1);
    p.insert(p.end(), d.begin(), d.end());
    return p;
  };
  const Dims ap = padded(a_dims), bp = padded(b_dims);
  const int64_t m = ap[rank - 2], k = ap[rank - 1], n = bp[rank - 1];
  out_dims.assign(rank, 1);
  int64_t batches = 1;
  for (size_t d = 0; d + 2 < rank; ++d) batches *= (out_dims[d] = std::max(ap[d], bp[d]));
  out_dims[rank - 2] = m;
  out_dims[rank - 1] = n;
  std::vector<float> y(static_cast<size_t>(batches * m * n));
  for (int64_t batch = 0; batch < batches; ++batch) {
    int64_t rest = batch, a_off = 0, b_off = 0, a_stride = m * k, b_stride = k * n;
    for (size_t d = rank - 2; d-- > 0;) {
      const int64_t i = rest % out_dims[d];
      rest /= out_dims[d];
      a_off += (ap[d] == 1 ? 0 : i) * a_stride;
      b_off += (bp[d] == 1 ? 0 : i) * b_stride;
      a_stride *= ap[d];
      b_stride *= bp[d];
    }
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) {
        double acc = 0;
        for (int64_t t = 0; t < k; ++t) acc += double{a[a_off + r * k + t]} * b[b_off + t * n + c];
        y[static_cast<size_t>((batch * m + r) * n + c)] = static_cast<float>(acc);
      }
  }
  return y;
}

// Splits every For into chunks of one, in reverse, as a pool of many threads
// might, so that per-batch and per-tile work really is independent.
class ReversedChunkRunner final : public kernels::ParallelRunner {
 public:
  void For(int64_t n, int64_t, const std::function<void(int64_t, int64_t)>& fn) const override {
    for (int64_t i = n; i-- > 0;) fn(i, i + 1);
  }
  int num_threads() const override { return 8; }
};

// Activation x activation products (attention's Q x K^T and scores x V,
// broadcast batches, a shared B, K beyond one 256-deep block, N < 8): the
// same results as a double reference whatever the runner kiln passes, and
// bitwise the same across runners.
TEST(MatMulTest, ActivationProductsMatchTheReferenceOnAnyRunner) {
  struct Case {
    Dims a, b;
  };
  const std::vector<Case> cases = {{{1, 4, 32, 64}, {1, 4, 64, 32}}, {{1, 4, 32, 32}, {1, 4, 32, 64}},
                                   {{2, 1, 40, 24}, {1, 3, 24, 20}}, {{3, 40, 24}, {24, 20}},
                                   {{2, 64, 64}, {2, 64, 48}},       {{1, 4, 7, 300}, {4, 300, 17}},
                                   {{3, 40, 64}, {3, 64, 5}}};
  uint32_t seed = 100;
  for (const Case& c : cases) {
    SCOPED_TRACE(DimsToString(c.a) + " x " + DimsToString(c.b));
    const auto av = RandomFloats(static_cast<size_t>(ElementCount(c.a)), seed++),
               bv = RandomFloats(static_cast<size_t>(ElementCount(c.b)), seed++);
    Tensor a = MakeTensor<float>(c.a, av), b = MakeTensor<float>(c.b, bv);
    Dims out_dims;
    const std::vector<float> expected = RefBroadcastMatMul(av, c.a, bv, c.b, out_dims);
    graph::Node node;
    node.op_type = "MatMul";
    node.opset = 13;
    auto serial = testing::RunNode(node, {&a, &b}, kernels::SerialRunner());
    auto chunked = testing::RunNode(node, {&a, &b}, ReversedChunkRunner());
    ASSERT_TRUE(serial.ok()) << serial.status().ToString();
    ASSERT_TRUE(chunked.ok()) << chunked.status().ToString();
    EXPECT_EQ((*serial)[0].dims(), out_dims);
    testing::ExpectNear(ToVector<float>((*serial)[0]), expected, 1e-5f, 1e-5f);
    EXPECT_EQ(ToVector<float>((*serial)[0]), ToVector<float>((*chunked)[0]));
  }
}

// A 1-D A against batched B: [256] x [4, 256, 64] -> [4, 64] (the promoted
// row is dropped again).
TEST(MatMulTest, VectorTimesBatchedActivation) {
  const auto av = RandomFloats(256, 301), bv = RandomFloats(4 * 256 * 64, 302);
  Tensor a = MakeTensor<float>({256}, av), b = MakeTensor<float>({4, 256, 64}, bv);
  auto out = RunOp("MatMul", {&a, &b});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{4, 64}));
  Dims out_dims;
  testing::ExpectNear(ToVector<float>((*out)[0]), RefBroadcastMatMul(av, {1, 256}, bv, {4, 256, 64}, out_dims), 1e-5f,
                      1e-5f);
}

// A FusedMatMul whose B is an activation (so no packed weight): bias,
// residual and activation, in ONNX's order.
TEST(MatMulTest, FusedEpilogueOnActivationB) {
  const Dims a_dims = {2, 16, 32}, b_dims = {2, 32, 24};
  const auto av = RandomFloats(2 * 16 * 32, 201), bv = RandomFloats(2 * 32 * 24, 202), biasv = RandomFloats(24, 203),
             rv = RandomFloats(2 * 16 * 24, 204);
  Tensor a = MakeTensor<float>(a_dims, av), b = MakeTensor<float>(b_dims, bv), bias = MakeTensor<float>({24}, biasv),
         residual = MakeTensor<float>({2, 16, 24}, rv);
  graph::Node node;
  node.op_type = "FusedMatMul";
  node.domain = "kiln";
  node.opset = 1;
  node.attributes["activation"] = StringAttr("Relu");
  const kernels::SerialRunner serial;
  const ReversedChunkRunner chunked;
  const std::vector<const kernels::ParallelRunner*> runners = {&serial, &chunked};
  for (const kernels::ParallelRunner* runner : runners) {
    auto out = testing::RunNode(node, {&a, &b, &bias, &residual}, *runner);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    Dims out_dims;
    std::vector<float> expected = RefBroadcastMatMul(av, a_dims, bv, b_dims, out_dims);
    for (size_t i = 0; i < expected.size(); ++i) {
      expected[i] = std::max(0.0f, expected[i] + biasv[i % 24] + rv[i]);
    }
    testing::ExpectNear(ToVector<float>((*out)[0]), expected, 1e-5f, 1e-5f);
  }
}

TEST(MatMulTest, OneDOperands) {
  Tensor v = MakeTensor<float>({3}, {1, 2, 3});
  Tensor m = MakeTensor<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  auto out = RunOp("MatMul", {&v, &m});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{2}));
  testing::ExpectNear(ToVector<float>((*out)[0]), {22, 28});

  Tensor m2 = MakeTensor<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  out = RunOp("MatMul", {&m2, &v});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{2}));
  testing::ExpectNear(ToVector<float>((*out)[0]), {14, 32});

  out = RunOp("MatMul", {&v, &v});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{}));
  testing::ExpectNear(ToVector<float>((*out)[0]), {14});
}

TEST(MatMulTest, Errors) {
  Tensor a = MakeTensor<float>({2, 3}, std::vector<float>(6, 1.0f));
  Tensor b = MakeTensor<float>({4, 2}, std::vector<float>(8, 1.0f));
  auto out = RunOp("MatMul", {&a, &b});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("inner dimensions"), std::string::npos);

  Tensor a3 = MakeTensor<float>({2, 2, 3}, std::vector<float>(12, 1.0f));
  Tensor b3 = MakeTensor<float>({3, 3, 2}, std::vector<float>(18, 1.0f));
  out = RunOp("MatMul", {&a3, &b3});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);

  Tensor ai = MakeTensor<int64_t>({2, 2}, {1, 2, 3, 4});
  out = RunOp("MatMul", {&ai, &ai});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnsupported);
}

TEST(GemmTest, TransposesAlphaBetaAndBroadcastC) {
  const int64_t m = 3, k = 4, n = 5;
  auto av = RandomFloats(m * k, 11), bv = RandomFloats(k * n, 12), cv = RandomFloats(n, 13);
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      // Store A and B transposed when the attribute says so.
      std::vector<float> as(av.size()), bs(bv.size());
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < k; ++j) as[ta ? j * m + i : i * k + j] = av[i * k + j];
      for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j < n; ++j) bs[tb ? j * k + i : i * n + j] = bv[i * n + j];
      Tensor a = MakeTensor<float>(ta ? Dims{k, m} : Dims{m, k}, as);
      Tensor b = MakeTensor<float>(tb ? Dims{n, k} : Dims{k, n}, bs);
      Tensor c = MakeTensor<float>({n}, cv);
      auto out = RunOp(
          "Gemm", {&a, &b, &c},
          {{"transA", IntAttr(ta)}, {"transB", IntAttr(tb)}, {"alpha", FloatAttr(0.5f)}, {"beta", FloatAttr(2.0f)}});
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      auto ab = RefMatMul(av, bv, 1, m, k, n, false, false);
      std::vector<float> expected(ab.size());
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) expected[i * n + j] = 0.5f * ab[i * n + j] + 2.0f * cv[j];
      EXPECT_EQ((*out)[0].dims(), (Dims{m, n}));
      testing::ExpectNear(ToVector<float>((*out)[0]), expected);
    }
}

TEST(GemmTest, NoCScalarCAndColumnC) {
  Tensor a = MakeTensor<float>({2, 2}, {1, 2, 3, 4});
  Tensor b = MakeTensor<float>({2, 2}, {5, 6, 7, 8});
  auto out = RunOp("Gemm", {&a, &b}, {}, 13);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  testing::ExpectNear(ToVector<float>((*out)[0]), {19, 22, 43, 50});

  Tensor s = MakeTensor<float>({1}, {1.0f});
  out = RunOp("Gemm", {&a, &b, &s});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  testing::ExpectNear(ToVector<float>((*out)[0]), {20, 23, 44, 51});

  Tensor col = MakeTensor<float>({2, 1}, {1.0f, 2.0f});
  out = RunOp("Gemm", {&a, &b, &col}, {{"beta", FloatAttr(-1.0f)}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  testing::ExpectNear(ToVector<float>((*out)[0]), {18, 21, 41, 48});

  Tensor bad = MakeTensor<float>({3}, {1, 2, 3});
  out = RunOp("Gemm", {&a, &b, &bad});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("broadcast"), std::string::npos);
}

TEST(BatchNormTest, InferenceAnyRank) {
  // [2, 3, 2] input: per-channel (x - mean) / sqrt(var + eps) * scale + B.
  auto xv = RandomFloats(12, 21);
  std::vector<float> scale = {1.0f, 0.5f, 2.0f}, bias = {0.0f, 1.0f, -1.0f}, mean = {0.1f, -0.2f, 0.3f},
                     var = {1.0f, 0.25f, 4.0f};
  Tensor x = MakeTensor<float>({2, 3, 2}, xv), s = MakeTensor<float>({3}, scale), b = MakeTensor<float>({3}, bias),
         mu = MakeTensor<float>({3}, mean), v = MakeTensor<float>({3}, var);
  auto out = RunOp("BatchNormalization", {&x, &s, &b, &mu, &v}, {{"epsilon", FloatAttr(1e-3f)}}, 15);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  std::vector<float> expected(12);
  for (int i = 0; i < 12; ++i) {
    const int c = (i / 2) % 3;
    expected[i] = (xv[i] - mean[c]) / std::sqrt(var[c] + 1e-3f) * scale[c] + bias[c];
  }
  testing::ExpectNear(ToVector<float>((*out)[0]), expected);

  Tensor x2 = MakeTensor<float>({2, 3}, std::vector<float>(xv.begin(), xv.begin() + 6));
  out = RunOp("BatchNormalization", {&x2, &s, &b, &mu, &v}, {}, 9);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{2, 3}));
}

TEST(BatchNormTest, Errors) {
  Tensor x = MakeTensor<float>({1, 2, 2}, {1, 2, 3, 4});
  Tensor p3 = MakeTensor<float>({3}, {1, 1, 1});
  auto out = RunOp("BatchNormalization", {&x, &p3, &p3, &p3, &p3}, {}, 15);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  Tensor p2 = MakeTensor<float>({2}, {1, 1});
  out = RunOp("BatchNormalization", {&x, &p2, &p2, &p2, &p2}, {{"training_mode", IntAttr(1)}}, 15);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(out.status().message().find("training_mode"), std::string::npos);
}

// 2-D pooling reference with ONNX semantics.
std::vector<float> RefPool2d(const std::vector<float>& x, const Dims& xd, bool is_max, const Dims& k, const Dims& s,
                             const Dims& pads, bool ceil_mode, bool count_include_pad, Dims* yd) {
  const int64_t planes = xd[0] * xd[1], h = xd[2], w = xd[3];
  auto out_size = [&](int64_t in, int64_t kk, int64_t ss, int64_t pb, int64_t pe) {
    const int64_t span = in + pb + pe - kk;
    int64_t out = (ceil_mode ? (span + ss - 1) / ss : span / ss) + 1;
    if (ceil_mode && (out - 1) * ss >= in + pb) --out;  // no window starting in the end padding
    return out;
  };
  const int64_t oh = out_size(h, k[0], s[0], pads[0], pads[2]), ow = out_size(w, k[1], s[1], pads[1], pads[3]);
  *yd = {xd[0], xd[1], oh, ow};
  std::vector<float> y;
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        float mx = -std::numeric_limits<float>::infinity();
        double sum = 0;
        int64_t inside = 0, padded_count = 0;
        for (int64_t ky = 0; ky < k[0]; ++ky)
          for (int64_t kx = 0; kx < k[1]; ++kx) {
            const int64_t iy = oy * s[0] - pads[0] + ky, ix = ox * s[1] - pads[1] + kx;
            if (iy < h + pads[2] && ix < w + pads[3]) ++padded_count;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            const float v = x[static_cast<size_t>((p * h + iy) * w + ix)];
            mx = std::max(mx, v);
            sum += v;
            ++inside;
          }
        y.push_back(is_max ? mx : static_cast<float>(sum / (count_include_pad ? padded_count : inside)));
      }
  return y;
}

TEST(PoolTest, MatchesReference) {
  struct Case {
    Dims xd, k, s, pads;
    bool ceil, include;
  };
  const std::vector<Case> cases = {
      {{1, 2, 5, 5}, {2, 2}, {2, 2}, {0, 0, 0, 0}, false, false},
      {{1, 2, 5, 5}, {2, 2}, {2, 2}, {0, 0, 0, 0}, true, false},
      {{2, 3, 6, 7}, {3, 3}, {2, 2}, {1, 1, 1, 1}, true, true},
      {{1, 1, 7, 6}, {3, 2}, {2, 3}, {1, 0, 2, 1}, false, true},
      {{1, 1, 8, 8}, {3, 3}, {3, 3}, {1, 1, 1, 1}, true, true},
      {{1, 1, 5, 5}, {3, 3}, {1, 1}, {1, 1, 1, 1}, false, false},
  };
  uint32_t seed = 60;
  for (const Case& tc : cases) {
    auto xv = RandomFloats(static_cast<size_t>(ElementCount(tc.xd)), seed++);
    Tensor x = MakeTensor<float>(tc.xd, xv);
    for (bool is_max : {true, false}) {
      Dims yd;
      auto expected = RefPool2d(xv, tc.xd, is_max, tc.k, tc.s, tc.pads, tc.ceil, tc.include, &yd);
      std::map<std::string, graph::Attribute> attrs = {{"kernel_shape", IntsAttr(tc.k)},
                                                       {"strides", IntsAttr(tc.s)},
                                                       {"pads", IntsAttr(tc.pads)},
                                                       {"ceil_mode", IntAttr(tc.ceil)}};
      if (!is_max) attrs["count_include_pad"] = IntAttr(tc.include);
      auto out = RunOp(is_max ? "MaxPool" : "AveragePool", {&x}, attrs);
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      EXPECT_EQ((*out)[0].dims(), yd);
      testing::ExpectNear(ToVector<float>((*out)[0]), expected);
    }
  }
}

// NCHW <-> NHWC for the channels-last (kiln domain) pools.
std::vector<float> ToNhwc(const std::vector<float>& x, const Dims& nchw) {
  const int64_t n = nchw[0], c = nchw[1], hw = nchw[2] * nchw[3];
  std::vector<float> y(x.size());
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < hw; ++p)
        y[static_cast<size_t>((b * hw + p) * c + ch)] = x[static_cast<size_t>((b * c + ch) * hw + p)];
  return y;
}

// The kiln-domain pools on NHWC data against the NCHW reference: channel
// counts that take the 32-wide, 8-wide and scalar paths, windows whose
// border columns hold padding or ceil-mode overhang, dilations, and a
// runner that splits the rows into single-row chunks.
TEST(PoolTest, ChannelsLastMatchesReference) {
  struct Case {
    Dims xd, k, s, pads;
    bool ceil, include;
  };
  const std::vector<Case> cases = {
      {{1, 32, 12, 12}, {3, 3}, {2, 2}, {1, 1, 1, 1}, false, false},  // ResNet's stem pool, small
      {{2, 43, 9, 11}, {3, 3}, {2, 2}, {1, 1, 1, 1}, true, true},
      {{1, 8, 7, 6}, {3, 2}, {2, 3}, {1, 0, 2, 1}, false, true},
      {{1, 5, 8, 8}, {3, 3}, {3, 3}, {1, 1, 1, 1}, true, true},
      {{1, 40, 6, 9}, {2, 4}, {1, 1}, {0, 2, 1, 1}, false, false},
      {{1, 64, 3, 3}, {3, 3}, {1, 1}, {1, 1, 1, 1}, false, false},  // no interior column
  };
  uint32_t seed = 640;
  for (const Case& tc : cases) {
    SCOPED_TRACE(DimsToString(tc.xd) + " k" + DimsToString(tc.k) + " s" + DimsToString(tc.s));
    auto xv = RandomFloats(static_cast<size_t>(ElementCount(tc.xd)), seed++);
    const Dims nhwc = {tc.xd[0], tc.xd[2], tc.xd[3], tc.xd[1]};
    Tensor x = MakeTensor<float>(nhwc, ToNhwc(xv, tc.xd));
    for (bool is_max : {true, false}) {
      Dims yd;
      const auto expected = ToNhwc(RefPool2d(xv, tc.xd, is_max, tc.k, tc.s, tc.pads, tc.ceil, tc.include, &yd), yd);
      graph::Node node;
      node.op_type = is_max ? "MaxPool" : "AveragePool";
      node.domain = "kiln";  // graph::kKilnDomain: the NHWC pools
      node.opset = 1;
      node.attributes = {{"kernel_shape", IntsAttr(tc.k)},
                         {"strides", IntsAttr(tc.s)},
                         {"pads", IntsAttr(tc.pads)},
                         {"ceil_mode", IntAttr(tc.ceil)}};
      if (!is_max) node.attributes["count_include_pad"] = IntAttr(tc.include);
      for (bool chunked : {false, true}) {
        auto out = chunked ? testing::RunNode(node, {&x}, ReversedChunkRunner())
                           : testing::RunNode(node, {&x}, kernels::SerialRunner());
        ASSERT_TRUE(out.ok()) << out.status().ToString();
        EXPECT_EQ((*out)[0].dims(), (Dims{yd[0], yd[2], yd[3], yd[1]}));
        testing::ExpectNear(ToVector<float>((*out)[0]), expected);
      }
    }
  }
}

TEST(PoolTest, MaxPoolDilationsAndSameLower) {
  Tensor x = MakeTensor<float>({1, 1, 4, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
  auto out = RunOp("MaxPool", {&x}, {{"kernel_shape", IntsAttr({2, 2})}, {"dilations", IntsAttr({2, 2})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{1, 1, 2, 2}));
  testing::ExpectNear(ToVector<float>((*out)[0]), {11, 12, 15, 16});

  // SAME_LOWER, 2x2 kernel stride 1: the one pad goes before.
  out = RunOp("AveragePool", {&x}, {{"kernel_shape", IntsAttr({2, 2})}, {"auto_pad", StringAttr("SAME_LOWER")}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{1, 1, 4, 4}));
  auto v = ToVector<float>((*out)[0]);
  EXPECT_FLOAT_EQ(v[0], 1.0f);
  EXPECT_FLOAT_EQ(v[5], (1 + 2 + 5 + 6) / 4.0f);
}

TEST(PoolTest, MaxPoolUint8) {
  Tensor x = MakeTensor<uint8_t>({1, 1, 3, 3}, {1, 200, 3, 4, 5, 6, 7, 8, 255});
  auto out = RunOp("MaxPool", {&x}, {{"kernel_shape", IntsAttr({2, 2})}}, 12);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dtype(), DType::kUint8);
  EXPECT_EQ(ToVector<uint8_t>((*out)[0]), (std::vector<uint8_t>{200, 200, 8, 255}));
}

TEST(PoolTest, GlobalPools) {
  Tensor x = MakeTensor<float>({1, 2, 2, 2}, {1, 2, 3, 4, -5, -6, -7, -8});
  auto out = RunOp("GlobalAveragePool", {&x});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].dims(), (Dims{1, 2, 1, 1}));
  testing::ExpectNear(ToVector<float>((*out)[0]), {2.5f, -6.5f});
  out = RunOp("GlobalMaxPool", {&x});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  testing::ExpectNear(ToVector<float>((*out)[0]), {4.0f, -5.0f});

  Tensor big = MakeTensor<float>({1, 1, 37}, RandomFloats(37, 99));
  out = RunOp("GlobalAveragePool", {&big});
  ASSERT_TRUE(out.ok());
  double sum = 0;
  for (float f : ToVector<float>(big)) sum += f;
  testing::ExpectNear(ToVector<float>((*out)[0]), {static_cast<float>(sum / 37)});
}

TEST(PoolTest, Errors) {
  Tensor x = MakeTensor<float>({4, 4}, std::vector<float>(16, 1.0f));
  auto out = RunOp("MaxPool", {&x}, {{"kernel_shape", IntsAttr({2, 2})}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("rank"), std::string::npos);

  Tensor x4 = MakeTensor<float>({1, 1, 2, 2}, std::vector<float>(4, 1.0f));
  out = RunOp("MaxPool", {&x4}, {{"kernel_shape", IntsAttr({3, 3})}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);

  out = RunOp("MaxPool", {&x4});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidModel);

  Tensor xu = MakeTensor<uint8_t>({1, 1, 2, 2}, {1, 2, 3, 4});
  out = RunOp("AveragePool", {&xu}, {{"kernel_shape", IntsAttr({2, 2})}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kiln
