#include "kernels/unprepared_conv.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/packed_sgemm.h"

namespace kiln::kernels {
namespace {

// Gathered window values per block (1 MiB): UnpackedSgemm packs each panel
// of the weight once per task of rows, so blocks of a few hundred output
// positions spend little on packing, and one block's rows of a depth slice
// still fit in L2.
constexpr int64_t kBlockFloats = int64_t{1} << 18;
constexpr int64_t kMinBlock = 48;
constexpr int64_t kMaxBlock = 512;

struct Geometry {
  int64_t n, c, h, w;     // X
  int64_t m, oh, ow;      // Y's channels and spatial sizes
  int64_t kh, kw;         // window
  int64_t sh, sw;         // strides
  int64_t dh, dw;         // dilations
  int64_t ph, pw;         // padding before
  int64_t group, cg, mg;  // groups, input and output channels per group
  bool nhwc;

  // X's element (image, channel, row, column), or 0 in the padding.
  float At(const float* x, int64_t image, int64_t ch, int64_t row, int64_t col) const {
    if (row < 0 || row >= h || col < 0 || col >= w) return 0.f;
    return nhwc ? x[((image * h + row) * w + col) * c + ch] : x[((image * c + ch) * h + row) * w + col];
  }
  // Every output position reads exactly the input position it sits at.
  bool IsPointwise() const {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && oh == h && ow == w;
  }
};

// One depthwise channel's plane (one input and one output channel per
// group): a direct loop, since a GEMM with one output column would waste
// 15 of each 16-wide panel.
void DepthwiseConvNchw(const Geometry& q, const float* x, const float* w, const float* bias, float* y) {
  for (int64_t image = 0; image < q.n; ++image) {
    for (int64_t ch = 0; ch < q.c; ++ch) {
      const float* taps = w + ch * q.kh * q.kw;
      const float b = bias != nullptr ? bias[ch] : 0.f;
      for (int64_t oy = 0; oy < q.oh; ++oy) {
        for (int64_t ox = 0; ox < q.ow; ++ox) {
          float sum = b;
          for (int64_t ky = 0; ky < q.kh; ++ky) {
            const int64_t row = oy * q.sh - q.ph + ky * q.dh;
            for (int64_t kx = 0; kx < q.kw; ++kx) {
              sum += taps[ky * q.kw + kx] * q.At(x, image, ch, row, ox * q.sw - q.pw + kx * q.dw);
            }
          }
          y[((image * q.m + ch) * q.oh + oy) * q.ow + ox] = sum;
        }
      }
    }
  }
}

// Channels-last depthwise: every output position is a row of channels, so
// each tap inside the image is one multiply-add of two contiguous rows (the
// tap's weights, transposed to [tap, channel], and X's pixel), which the
// compiler vectorises; taps in the padding are skipped. Per element, the
// bias and then the taps in (ky, kx) order, as the NCHW loop sums.
void DepthwiseConvNhwc(const KernelContext& ctx, const Geometry& q, const float* x, const float* w, const float* bias,
                       float* y) {
  const int64_t taps = q.kh * q.kw;
  std::vector<float> by_tap(static_cast<size_t>(taps * q.c));
  for (int64_t ch = 0; ch < q.c; ++ch) {
    for (int64_t t = 0; t < taps; ++t) by_tap[static_cast<size_t>(t * q.c + ch)] = w[ch * taps + t];
  }
  const int64_t c = q.c;
  ctx.parallel().For(q.n * q.oh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t image_row = begin; image_row < end; ++image_row) {
      const int64_t image = image_row / q.oh, oy = image_row % q.oh;
      for (int64_t ox = 0; ox < q.ow; ++ox) {
        float* out = y + ((image * q.oh + oy) * q.ow + ox) * c;
        if (bias != nullptr) {
          std::copy_n(bias, c, out);
        } else {
          std::fill_n(out, c, 0.f);
        }
        for (int64_t ky = 0; ky < q.kh; ++ky) {
          const int64_t row = oy * q.sh - q.ph + ky * q.dh;
          if (row < 0 || row >= q.h) continue;
          for (int64_t kx = 0; kx < q.kw; ++kx) {
            const int64_t col = ox * q.sw - q.pw + kx * q.dw;
            if (col < 0 || col >= q.w) continue;
            const float* src = x + ((image * q.h + row) * q.w + col) * c;
            const float* tap = by_tap.data() + (ky * q.kw + kx) * c;
            // -O2's cost model leaves this loop scalar unless asked.
#pragma omp simd
            for (int64_t ch = 0; ch < c; ++ch) out[ch] += tap[ch] * src[ch];
          }
        }
      }
    }
  });
}

// Scratch that every element of is written before it is read: not zeroed
// first, which would touch its pages twice.
std::unique_ptr<float[]> Uninitialized(int64_t count) {
  return std::unique_ptr<float[]>(new float[static_cast<size_t>(count)]);
}

// Output positions per gathered block, for a window of `k` values.
int64_t BlockPositions(int64_t k) {
  return std::clamp<int64_t>(kBlockFloats / std::max<int64_t>(1, k), kMinBlock, kMaxBlock);
}

// NCHW: rows are window taps, W_g [Mg, K] x [K, P] -> Y's channel planes.
// K runs over (input channel, kernel row, kernel column), the order of
// ONNX's weight, so W is read as stored. A pointwise convolution reads X's
// channel planes as they are.
void GemmConvNchw(const KernelContext& ctx, const Geometry& q, const float* x, const float* w, float* y) {
  const int64_t k = q.cg * q.kh * q.kw;
  const int64_t positions = q.oh * q.ow;
  if (q.IsPointwise()) {
    for (int64_t image = 0; image < q.n; ++image) {
      for (int64_t gi = 0; gi < q.group; ++gi) {
        const float* planes = x + (image * q.c + gi * q.cg) * positions;
        float* out = y + (image * q.m + gi * q.mg) * positions;
        UnpackedSgemm(w + gi * q.mg * k, k, q.mg, planes, k, positions, positions, /*transposed=*/false, out, positions,
                      ctx.parallel(), {});
      }
    }
    return;
  }
  const int64_t block = BlockPositions(k);
  const std::unique_ptr<float[]> cols = Uninitialized(std::min(block, positions) * k);
  const int64_t taps = q.kh * q.kw;
  for (int64_t image = 0; image < q.n; ++image) {
    for (int64_t gi = 0; gi < q.group; ++gi) {
      const float* wg = w + gi * q.mg * k;
      for (int64_t p0 = 0; p0 < positions; p0 += block) {
        const int64_t count = std::min(block, positions - p0);
        // Tap (ci, ky, kx) is row ci * kh * kw + ky * kw + kx of the block;
        // the bounds are checked once per (position, ky, kx).
        for (int64_t p = 0; p < count; ++p) {
          const int64_t oy = (p0 + p) / q.ow, ox = (p0 + p) % q.ow;
          for (int64_t ky = 0; ky < q.kh; ++ky) {
            const int64_t row = oy * q.sh - q.ph + ky * q.dh;
            for (int64_t kx = 0; kx < q.kw; ++kx) {
              const int64_t col = ox * q.sw - q.pw + kx * q.dw;
              const bool inside = row >= 0 && row < q.h && col >= 0 && col < q.w;
              float* dst = cols.get() + (ky * q.kw + kx) * count + p;
              if (!inside) {
                for (int64_t ci = 0; ci < q.cg; ++ci) dst[ci * taps * count] = 0.f;
                continue;
              }
              const float* src = x + ((image * q.c + gi * q.cg) * q.h + row) * q.w + col;
              for (int64_t ci = 0; ci < q.cg; ++ci) dst[ci * taps * count] = src[ci * q.h * q.w];
            }
          }
        }
        float* out = y + (image * q.m + gi * q.mg) * positions + p0;
        UnpackedSgemm(wg, k, q.mg, cols.get(), k, count, count, /*transposed=*/false, out, positions, ctx.parallel(),
                      {});
      }
    }
  }
}

// W [M, Cg, kH, kW] as one [K, Mg] matrix per group, K running over
// (kernel row, kernel column, input channel), laid out in PackedMatrixB's
// 16-column panels for PanelSgemm: copied once per call in sequential
// writes (each panel row is 16 filters' values at one tap), where
// UnpackedSgemm on W's transpose would gather every panel with strided
// loads again in each task. Returns the panels per group.
int64_t PermuteWeightToPanels(const Geometry& q, const float* w, float* panels) {
  constexpr int64_t kPanel = PackedMatrixB::kPanelWidth;
  const int64_t taps = q.kh * q.kw;
  const int64_t k = q.cg * taps;
  const int64_t per_group = (q.mg + kPanel - 1) / kPanel;
  for (int64_t gi = 0; gi < q.group; ++gi) {
    for (int64_t pi = 0; pi < per_group; ++pi) {
      const int64_t o0 = gi * q.mg + pi * kPanel;
      const int64_t width = std::min(kPanel, q.mg - pi * kPanel);
      float* out = panels + (gi * per_group + pi) * k * kPanel;
      for (int64_t t = 0; t < taps; ++t) {
        for (int64_t ci = 0; ci < q.cg; ++ci) {
          float* row = out + (t * q.cg + ci) * kPanel;
          for (int64_t j = 0; j < width; ++j) row[j] = w[((o0 + j) * q.cg + ci) * taps + t];
          std::fill(row + width, row + kPanel, 0.f);
        }
      }
    }
  }
  return per_group;
}

// NHWC: rows are positions, [P, K] x W_g -> Y rows (position, channel).
// K runs over (kernel row, kernel column, input channel), so that a tap's
// input channels are one contiguous run of X's pixel, copied at once, and a
// kernel row's taps with them when they lie inside the image and X has no
// groups; the weight is permuted to that order once per call (it is far
// smaller than the windows). A pointwise convolution multiplies X's rows as
// they are (with the weight's panels too, unless X is a single row).
void GemmConvNhwc(const KernelContext& ctx, const Geometry& q, const float* x, const float* w, float* y) {
  const int64_t taps = q.kh * q.kw;
  const int64_t k = q.cg * taps;
  const int64_t positions = q.oh * q.ow;
  if (q.IsPointwise() && positions * q.n == 1) {
    // One row of X: UnpackedSgemm streams W once (a GEMV), no copy.
    for (int64_t gi = 0; gi < q.group; ++gi) {
      UnpackedSgemm(x + gi * q.cg, q.c, 1, w + gi * q.mg * k, k, q.mg, k, /*transposed=*/true, y + gi * q.mg, q.m,
                    ctx.parallel(), {});
    }
    return;
  }
  constexpr int64_t kPanel = PackedMatrixB::kPanelWidth;
  const std::unique_ptr<float[]> panels = Uninitialized(q.group * ((q.mg + kPanel - 1) / kPanel) * k * kPanel);
  const int64_t per_group = PermuteWeightToPanels(q, w, panels.get());
  if (q.IsPointwise()) {
    for (int64_t image = 0; image < q.n; ++image) {
      for (int64_t gi = 0; gi < q.group; ++gi) {
        PanelSgemm(x + image * positions * q.c + gi * q.cg, q.c, positions, panels.get() + gi * per_group * k * kPanel,
                   k, q.mg, y + image * positions * q.m + gi * q.mg, q.m, ctx.parallel(), {});
      }
    }
    return;
  }
  const int64_t block = BlockPositions(k);
  const std::unique_ptr<float[]> cols = Uninitialized(std::min(block, positions) * k);
  const size_t run_bytes = static_cast<size_t>(q.cg) * sizeof(float);
  // A kernel row's taps are adjacent pixels, and with one group each
  // pixel's channels are the whole pixel: one run of kW pixels.
  const bool rows_contiguous = q.group == 1 && q.dw == 1;
  const size_t row_bytes = static_cast<size_t>(q.kw * q.c) * sizeof(float);
  for (int64_t image = 0; image < q.n; ++image) {
    for (int64_t gi = 0; gi < q.group; ++gi) {
      for (int64_t p0 = 0; p0 < positions; p0 += block) {
        const int64_t count = std::min(block, positions - p0);
        for (int64_t p = 0; p < count; ++p) {
          const int64_t oy = (p0 + p) / q.ow, ox = (p0 + p) % q.ow;
          float* dst = cols.get() + p * k;
          const int64_t first_col = ox * q.sw - q.pw;
          const bool cols_inside = first_col >= 0 && first_col + (q.kw - 1) * q.dw < q.w;
          for (int64_t ky = 0; ky < q.kh; ++ky) {
            const int64_t row = oy * q.sh - q.ph + ky * q.dh;
            if (rows_contiguous && cols_inside && row >= 0 && row < q.h) {
              std::memcpy(dst, x + ((image * q.h + row) * q.w + first_col) * q.c, row_bytes);
              dst += q.kw * q.cg;
              continue;
            }
            for (int64_t kx = 0; kx < q.kw; ++kx, dst += q.cg) {
              const int64_t col = first_col + kx * q.dw;
              if (row < 0 || row >= q.h || col < 0 || col >= q.w) {
                std::fill_n(dst, q.cg, 0.f);
              } else {
                std::memcpy(dst, x + ((image * q.h + row) * q.w + col) * q.c + gi * q.cg, run_bytes);
              }
            }
          }
        }
        float* out = y + (image * positions + p0) * q.m + gi * q.mg;
        PanelSgemm(cols.get(), k, count, panels.get() + gi * per_group * k * kPanel, k, q.mg, out, q.m, ctx.parallel(),
                   {});
      }
    }
  }
}

void AddBias(const Geometry& q, const float* bias, float* y) {
  const int64_t positions = q.oh * q.ow;
  for (int64_t image = 0; image < q.n; ++image) {
    if (q.nhwc) {
      for (int64_t p = 0; p < positions; ++p) {
        float* row = y + (image * positions + p) * q.m;
#pragma omp simd
        for (int64_t ch = 0; ch < q.m; ++ch) row[ch] += bias[ch];
      }
    } else {
      for (int64_t ch = 0; ch < q.m; ++ch) {
        float* plane = y + (image * q.m + ch) * positions;
#pragma omp simd
        for (int64_t p = 0; p < positions; ++p) plane[p] += bias[ch];
      }
    }
  }
}

}  // namespace

void UnpreparedConv2d(const KernelContext& ctx, const float* x, const Dims& x_nchw, bool channels_last, const float* w,
                      const Dims& w_dims, int64_t group, const float* bias, const WindowGeometry& g, float* y) {
  Geometry q{};
  q.n = x_nchw[0], q.c = x_nchw[1], q.h = x_nchw[2], q.w = x_nchw[3];
  q.m = w_dims[0], q.oh = g.output[0], q.ow = g.output[1];
  q.kh = g.kernel[0], q.kw = g.kernel[1];
  q.sh = g.strides[0], q.sw = g.strides[1];
  q.dh = g.dilations[0], q.dw = g.dilations[1];
  q.ph = g.pad_begin[0], q.pw = g.pad_begin[1];
  q.group = group, q.cg = q.c / group, q.mg = q.m / group;
  q.nhwc = channels_last;
  if (q.cg == 1 && q.mg == 1) {
    if (q.nhwc) {
      DepthwiseConvNhwc(ctx, q, x, w, bias, y);
    } else {
      DepthwiseConvNchw(q, x, w, bias, y);
    }
    return;
  }
  if (q.nhwc) {
    GemmConvNhwc(ctx, q, x, w, y);
  } else {
    GemmConvNchw(ctx, q, x, w, y);
  }
  if (bias != nullptr) AddBias(q, bias, y);
}

}  // namespace kiln::kernels
