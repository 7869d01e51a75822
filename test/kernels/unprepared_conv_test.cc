// Conv and kiln.FusedConv while their oneDNN primitive is being prepared in
// the background (OpKernel::TakePreparation): the unprepared path
// (UnpreparedConv2d plus the epilogue) and the prepared primitive agree
// within float rounding and match a double-precision reference, for NCHW and
// channels-last layouts, groups, depthwise, strides, padding, dilations,
// bias, residual and activation; and 1-D convolutions, which run unprepared
// as 2-D ones of height 1.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "graph/channels_last.h"
#include "graph/fuse_epilogues.h"
#include "test/kernels/kernel_test_util.h"

namespace kiln::kernels {
namespace {

using kiln::testing::IntAttr;
using kiln::testing::IntsAttr;
using kiln::testing::PlainAllocator;
using kiln::testing::StringAttr;

Tensor Random(const Dims& dims, uint32_t seed) { return kiln::testing::RandomTensor(dims, seed).value(); }

struct ConvCase {
  const char* name;
  int64_t n, c, h, w, m, k, stride, pad, dilation, group;
  bool bias, channels_last, residual_relu;
};

// The reference in double precision, NCHW in and out.
std::vector<double> Reference(const ConvCase& t, const std::vector<float>& x, const std::vector<float>& w,
                              const float* b, const std::vector<float>& r, int64_t oh, int64_t ow) {
  const int64_t cg = t.c / t.group, mg = t.m / t.group;
  std::vector<double> y(static_cast<size_t>(t.n * t.m * oh * ow));
  for (int64_t n = 0; n < t.n; ++n) {
    for (int64_t o = 0; o < t.m; ++o) {
      const int64_t gi = o / mg;
      for (int64_t oy = 0; oy < oh; ++oy) {
        for (int64_t ox = 0; ox < ow; ++ox) {
          double sum = b != nullptr ? b[o] : 0.0;
          for (int64_t ci = 0; ci < cg; ++ci) {
            for (int64_t ky = 0; ky < t.k; ++ky) {
              for (int64_t kx = 0; kx < t.k; ++kx) {
                const int64_t iy = oy * t.stride - t.pad + ky * t.dilation;
                const int64_t ix = ox * t.stride - t.pad + kx * t.dilation;
                if (iy < 0 || iy >= t.h || ix < 0 || ix >= t.w) continue;
                const int64_t c = gi * cg + ci;
                sum += double{x[static_cast<size_t>(((n * t.c + c) * t.h + iy) * t.w + ix)]} *
                       w[static_cast<size_t>(((o * cg + ci) * t.k + ky) * t.k + kx)];
              }
            }
          }
          const size_t at = static_cast<size_t>(((n * t.m + o) * oh + oy) * ow + ox);
          if (t.residual_relu) sum = std::max(0.0, sum + r[at]);
          y[at] = sum;
        }
      }
    }
  }
  return y;
}

// NCHW [n, c, h, w] data as NHWC.
std::vector<float> ToNhwc(const std::vector<float>& v, int64_t n, int64_t c, int64_t h, int64_t w) {
  std::vector<float> out(v.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x)
          out[static_cast<size_t>(((i * h + y) * w + x) * c + ch)] =
              v[static_cast<size_t>(((i * c + ch) * h + y) * w + x)];
  return out;
}

class UnpreparedConv : public ::testing::TestWithParam<ConvCase> {};

TEST_P(UnpreparedConv, AgreesWithThePreparedPrimitiveAndTheReference) {
  const ConvCase& t = GetParam();
  const int64_t ek = (t.k - 1) * t.dilation + 1;
  const int64_t oh = (t.h + 2 * t.pad - ek) / t.stride + 1, ow = (t.w + 2 * t.pad - ek) / t.stride + 1;
  const Tensor x_nchw = Random({t.n, t.c, t.h, t.w}, 1);
  const Tensor w = Random({t.m, t.c / t.group, t.k, t.k}, 2);
  const Tensor b = Random({t.m}, 3);
  const Tensor r_nchw = Random({t.n, t.m, oh, ow}, 4);
  const std::vector<float> xv = kiln::testing::ToVector<float>(x_nchw);
  const std::vector<float> rv = kiln::testing::ToVector<float>(r_nchw);
  const std::vector<double> want =
      Reference(t, xv, kiln::testing::ToVector<float>(w), t.bias ? b.data<float>() : nullptr, rv, oh, ow);

  std::vector<float> x_data = t.channels_last ? ToNhwc(xv, t.n, t.c, t.h, t.w) : xv;
  std::vector<float> r_data = t.channels_last ? ToNhwc(rv, t.n, t.m, oh, ow) : rv;
  const Dims x_dims = t.channels_last ? Dims{t.n, t.h, t.w, t.c} : Dims{t.n, t.c, t.h, t.w};
  const Dims y_dims = t.channels_last ? Dims{t.n, oh, ow, t.m} : Dims{t.n, t.m, oh, ow};
  const Tensor x = Tensor::View(DType::kFloat32, x_dims, x_data.data());
  const Tensor r = Tensor::View(DType::kFloat32, y_dims, r_data.data());

  graph::Node node;
  const bool fused = t.channels_last || t.residual_relu;
  node.op_type = fused ? "FusedConv" : "Conv";
  node.domain = fused ? graph::kKilnDomain : "";
  node.opset = fused ? 1 : 13;
  node.attributes["strides"] = IntsAttr({t.stride, t.stride});
  node.attributes["pads"] = IntsAttr({t.pad, t.pad, t.pad, t.pad});
  node.attributes["dilations"] = IntsAttr({t.dilation, t.dilation});
  node.attributes["group"] = IntAttr(t.group);
  if (t.channels_last) node.attributes[graph::kChannelsLastAttr] = IntAttr(1);
  if (t.residual_relu) node.attributes["activation"] = StringAttr("Relu");

  std::vector<const Tensor*> inputs = {&x, &w, t.bias ? &b : nullptr};
  if (t.residual_relu) inputs.push_back(&r);
  std::vector<const Tensor*> constants = {nullptr, &w, t.bias ? &b : nullptr};
  std::vector<std::optional<Dims>> static_dims = {x.dims(), w.dims(),
                                                  t.bias ? std::optional<Dims>(b.dims()) : std::nullopt};
  if (t.residual_relu) {
    constants.push_back(nullptr);
    static_dims.push_back(r.dims());
  }
  std::vector<bool> constant_flags;
  for (const Tensor* c : constants) constant_flags.push_back(c != nullptr);

  auto run = [&](OpKernel& kernel) {
    std::vector<Tensor> outputs(1);
    PlainAllocator allocator;
    SerialRunner serial;
    KernelContext ctx(inputs, outputs, allocator, serial, &constant_flags);
    const Status s = kernel.Compute(ctx);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(outputs[0].dims(), y_dims);
    return s.ok() ? kiln::testing::ToVector<float>(outputs[0]) : std::vector<float>{};
  };
  auto pending = DefaultKernelRegistry().Create(node);
  auto prepared = DefaultKernelRegistry().Create(node);
  ASSERT_TRUE(pending.ok() && prepared.ok()) << pending.status().ToString();
  ASSERT_TRUE((*pending)->TakePreparation(constants, static_dims)) << "a static 2-D conv has a primitive to prepare";
  std::function<void()> prepare = (*prepared)->TakePreparation(constants, static_dims);
  ASSERT_TRUE(prepare);
  const std::vector<float> unprepared = run(**pending);
  prepare();
  const std::vector<float> primitive = run(**prepared);
  ASSERT_EQ(unprepared.size(), want.size());
  ASSERT_EQ(primitive.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    // want is NCHW: element i sits at `at` in Y's layout.
    size_t at = i;
    if (t.channels_last) {
      const int64_t ox = static_cast<int64_t>(i) % ow, oy = static_cast<int64_t>(i) / ow % oh;
      const int64_t o = static_cast<int64_t>(i) / (ow * oh) % t.m, n = static_cast<int64_t>(i) / (ow * oh * t.m);
      at = static_cast<size_t>(((n * oh + oy) * ow + ox) * t.m + o);
    }
    const double tol = 1e-4 * (1 + std::fabs(want[i]));
    ASSERT_NEAR(unprepared[at], want[i], tol) << "unprepared, element " << i;
    ASSERT_NEAR(primitive[at], want[i], tol) << "primitive, element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, UnpreparedConv,
    ::testing::Values(ConvCase{"plain3x3", 1, 8, 9, 11, 20, 3, 1, 1, 1, 1, true, false, false},
                      ConvCase{"stem7x7s2", 2, 3, 23, 20, 16, 7, 2, 3, 1, 1, true, false, false},
                      ConvCase{"pointwise_nobias", 1, 33, 6, 5, 17, 1, 1, 0, 1, 1, false, false, false},
                      ConvCase{"grouped_dilated", 1, 12, 10, 10, 18, 3, 1, 2, 2, 3, true, false, false},
                      ConvCase{"depthwise", 1, 24, 12, 12, 24, 3, 2, 1, 1, 24, true, false, false},
                      ConvCase{"nhwc_residual_relu", 1, 16, 14, 14, 32, 3, 1, 1, 1, 1, true, true, true},
                      ConvCase{"nhwc_depthwise", 2, 40, 7, 9, 40, 5, 1, 2, 1, 40, true, true, false},
                      ConvCase{"nchw_residual_relu", 1, 8, 8, 8, 8, 3, 1, 1, 1, 1, false, false, true},
                      // Pointwise convolutions multiply X as it is (no gathered windows).
                      ConvCase{"nhwc_pointwise", 2, 24, 6, 7, 40, 1, 1, 0, 1, 1, true, true, false},
                      ConvCase{"nhwc_pointwise_grouped", 1, 24, 5, 5, 12, 1, 1, 0, 1, 3, true, true, true},
                      // One pixel (a squeeze-excitation FC): a GEMV on W as stored.
                      ConvCase{"nhwc_pointwise_one_pixel", 1, 24, 1, 1, 40, 1, 1, 0, 1, 1, true, true, false},
                      ConvCase{"nchw_pointwise_grouped", 2, 24, 5, 6, 12, 1, 1, 0, 1, 2, false, false, false},
                      // A pointwise convolution with padding or strides still gathers.
                      ConvCase{"nhwc_pointwise_strided", 1, 16, 9, 9, 24, 1, 2, 0, 1, 1, true, true, false},
                      ConvCase{"nhwc_pointwise_padded", 1, 16, 5, 5, 24, 1, 1, 1, 1, 1, true, true, false},
                      // More output positions than one gathered block holds.
                      ConvCase{"nhwc_several_blocks", 1, 64, 30, 30, 32, 3, 1, 1, 1, 1, true, true, true},
                      ConvCase{"nchw_several_blocks", 1, 64, 30, 30, 32, 3, 1, 1, 1, 1, true, false, false},
                      ConvCase{"nhwc_grouped_strided", 2, 12, 9, 9, 18, 3, 2, 1, 1, 3, false, true, false},
                      // Channels-last windows copied a kernel row at a time
                      // (one group, no column dilation) next to the padding,
                      // per tap otherwise; the weight's last 16-channel panel
                      // partial, per group too.
                      ConvCase{"nhwc_stem7x7s2", 1, 3, 23, 20, 20, 7, 2, 3, 1, 1, true, true, false},
                      ConvCase{"nhwc_dilated", 1, 12, 10, 10, 18, 3, 1, 2, 2, 1, true, true, true},
                      ConvCase{"nhwc_grouped_wide", 1, 16, 8, 8, 40, 3, 1, 1, 1, 2, false, true, false},
                      ConvCase{"nhwc_depthwise_strided_dilated", 1, 16, 11, 10, 16, 3, 2, 2, 2, 16, true, true, true},
                      ConvCase{"nhwc_depthwise_nobias", 1, 8, 6, 6, 8, 3, 1, 1, 1, 8, false, true, false}),
    [](const ::testing::TestParamInfo<ConvCase>& info) { return std::string(info.param.name); });

struct Conv1dCase {
  int64_t n, c, w, m, k, stride, pad_begin, pad_end, dilation, group;
  bool bias;
};

// A 1-D convolution runs unprepared as a 2-D one of height 1: it and the
// prepared primitive agree with a double-precision reference.
TEST(UnpreparedConv1d, AgreesWithThePreparedPrimitiveAndTheReference) {
  for (const Conv1dCase& t : {Conv1dCase{1, 1, 512, 16, 9, 4, 4, 4, 1, 1, false},  // a raw-audio front end
                              Conv1dCase{2, 12, 40, 18, 3, 2, 2, 1, 2, 3, true},
                              Conv1dCase{1, 16, 33, 16, 5, 1, 2, 2, 1, 16, true},  // depthwise
                              Conv1dCase{1, 8, 17, 24, 1, 1, 0, 0, 1, 1, true}}) {
    SCOPED_TRACE(::testing::Message() << "X [" << t.n << ", " << t.c << ", " << t.w << "], " << t.m << " filters of "
                                      << t.k << ", stride " << t.stride << ", group " << t.group);
    const int64_t ow = (t.w + t.pad_begin + t.pad_end - ((t.k - 1) * t.dilation + 1)) / t.stride + 1;
    const Tensor x = Random({t.n, t.c, t.w}, 11);
    const Tensor w = Random({t.m, t.c / t.group, t.k}, 12);
    const Tensor b = Random({t.m}, 13);
    const std::vector<float> xv = kiln::testing::ToVector<float>(x), wv = kiln::testing::ToVector<float>(w);
    const int64_t cg = t.c / t.group, mg = t.m / t.group;
    std::vector<double> want(static_cast<size_t>(t.n * t.m * ow));
    for (int64_t n = 0; n < t.n; ++n) {
      for (int64_t o = 0; o < t.m; ++o) {
        for (int64_t ox = 0; ox < ow; ++ox) {
          double sum = t.bias ? b.data<float>()[o] : 0.0;
          for (int64_t ci = 0; ci < cg; ++ci) {
            for (int64_t kx = 0; kx < t.k; ++kx) {
              const int64_t ix = ox * t.stride - t.pad_begin + kx * t.dilation;
              if (ix < 0 || ix >= t.w) continue;
              sum += double{xv[static_cast<size_t>((n * t.c + o / mg * cg + ci) * t.w + ix)]} *
                     wv[static_cast<size_t>((o * cg + ci) * t.k + kx)];
            }
          }
          want[static_cast<size_t>((n * t.m + o) * ow + ox)] = sum;
        }
      }
    }

    graph::Node node;
    node.op_type = "Conv";
    node.opset = 13;
    node.attributes["strides"] = IntsAttr({t.stride});
    node.attributes["pads"] = IntsAttr({t.pad_begin, t.pad_end});
    node.attributes["dilations"] = IntsAttr({t.dilation});
    node.attributes["group"] = IntAttr(t.group);
    const std::vector<const Tensor*> inputs = {&x, &w, t.bias ? &b : nullptr};
    const std::vector<const Tensor*> constants = {nullptr, &w, t.bias ? &b : nullptr};
    const std::vector<std::optional<Dims>> static_dims = {x.dims(), w.dims(),
                                                          t.bias ? std::optional<Dims>(b.dims()) : std::nullopt};
    const std::vector<bool> constant_flags = {false, true, t.bias};
    auto run = [&](OpKernel& kernel) {
      std::vector<Tensor> outputs(1);
      PlainAllocator allocator;
      SerialRunner serial;
      KernelContext ctx(inputs, outputs, allocator, serial, &constant_flags);
      const Status s = kernel.Compute(ctx);
      EXPECT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(outputs[0].dims(), (Dims{t.n, t.m, ow}));
      return s.ok() ? kiln::testing::ToVector<float>(outputs[0]) : std::vector<float>{};
    };
    auto pending = DefaultKernelRegistry().Create(node);
    auto prepared = DefaultKernelRegistry().Create(node);
    ASSERT_TRUE(pending.ok() && prepared.ok()) << pending.status().ToString();
    ASSERT_TRUE((*pending)->TakePreparation(constants, static_dims)) << "a static 1-D conv has a primitive to prepare";
    std::function<void()> prepare = (*prepared)->TakePreparation(constants, static_dims);
    ASSERT_TRUE(prepare);
    const std::vector<float> unprepared = run(**pending);
    prepare();
    const std::vector<float> primitive = run(**prepared);
    ASSERT_EQ(unprepared.size(), want.size());
    ASSERT_EQ(primitive.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      const double tol = 1e-4 * (1 + std::fabs(want[i]));
      ASSERT_NEAR(unprepared[i], want[i], tol) << "unprepared, element " << i;
      ASSERT_NEAR(primitive[i], want[i], tol) << "primitive, element " << i;
    }
  }
}

TEST(UnpreparedConvPreparation, NothingToPrepareWithoutStaticShapes) {
  graph::Node node;
  node.op_type = "Conv";
  node.opset = 13;
  auto kernel = DefaultKernelRegistry().Create(node);
  ASSERT_TRUE(kernel.ok());
  const Tensor w = Random({4, 3, 3, 3}, 1);
  EXPECT_FALSE((*kernel)->TakePreparation({nullptr, &w}, {std::nullopt, w.dims()}));
  // A channel mismatch is left for Compute to report.
  EXPECT_FALSE((*kernel)->TakePreparation({nullptr, &w}, {Dims{1, 5, 8, 8}, w.dims()}));
  // So is an X whose rank is not W's, and 3-D convolutions prepare nothing.
  EXPECT_FALSE((*kernel)->TakePreparation({nullptr, &w}, {Dims{1, 3, 8}, w.dims()}));
  const Tensor w3d = Random({4, 3, 3, 3, 3}, 2);
  EXPECT_FALSE((*kernel)->TakePreparation({nullptr, &w3d}, {Dims{1, 3, 8, 8, 8}, w3d.dims()}));
}

}  // namespace
}  // namespace kiln::kernels
