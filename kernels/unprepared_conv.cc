#include "kernels/unprepared_conv.h"

#include <algorithm>
#include <vector>

#include "kernels/packed_sgemm.h"

namespace kiln::kernels {
namespace {

// Gathered window values per block: small enough to stay in L2 beside the
// weight panels the GEMM packs.
constexpr int64_t kBlockFloats = 32768;

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
};

// One depthwise channel's plane (one input and one output channel per
// group): a direct loop, since a GEMM with one output column would waste
// 15 of each 16-wide panel.
void DepthwiseConv(const Geometry& q, const float* x, const float* w, const float* bias, float* y) {
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
          const int64_t at =
              q.nhwc ? ((image * q.oh + oy) * q.ow + ox) * q.m + ch : ((image * q.m + ch) * q.oh + oy) * q.ow + ox;
          y[at] = sum;
        }
      }
    }
  }
}

// Windows gathered per block of output positions, times the group's
// weight. NHWC: rows are positions, [P, K] x W_g^T -> Y rows (position,
// channel). NCHW: rows are window taps, W_g [Mg, K] x [K, P] -> Y's channel
// planes. K runs over (input channel, kernel row, kernel column), the order
// of ONNX's weight, so W is read as stored.
void GemmConv(const KernelContext& ctx, const Geometry& q, const float* x, const float* w, const float* bias,
              float* y) {
  const int64_t k = q.cg * q.kh * q.kw;
  const int64_t positions = q.oh * q.ow;
  const int64_t block = std::max<int64_t>(16, kBlockFloats / std::max<int64_t>(1, k) / 16 * 16);
  std::vector<float> cols(static_cast<size_t>(block * k));
  for (int64_t image = 0; image < q.n; ++image) {
    for (int64_t gi = 0; gi < q.group; ++gi) {
      const float* wg = w + gi * q.mg * k;
      for (int64_t p0 = 0; p0 < positions; p0 += block) {
        const int64_t count = std::min(block, positions - p0);
        // Tap (ci, ky, kx) is column ci * kh * kw + ky * kw + kx of the
        // window; the bounds are checked once per (position, ky, kx).
        const int64_t taps = q.kh * q.kw;
        for (int64_t p = 0; p < count; ++p) {
          const int64_t oy = (p0 + p) / q.ow, ox = (p0 + p) % q.ow;
          for (int64_t ky = 0; ky < q.kh; ++ky) {
            const int64_t row = oy * q.sh - q.ph + ky * q.dh;
            for (int64_t kx = 0; kx < q.kw; ++kx) {
              const int64_t col = ox * q.sw - q.pw + kx * q.dw;
              const bool inside = row >= 0 && row < q.h && col >= 0 && col < q.w;
              const int64_t tap0 = ky * q.kw + kx;
              // Where consecutive input channels of this tap are in X and
              // in the gathered block.
              const int64_t src_step = q.nhwc ? 1 : q.h * q.w;
              const int64_t dst_step = q.nhwc ? taps : taps * count;
              float* dst = cols.data() + (q.nhwc ? p * k + tap0 : tap0 * count + p);
              if (!inside) {
                for (int64_t ci = 0; ci < q.cg; ++ci) dst[ci * dst_step] = 0.f;
                continue;
              }
              const float* src = x + (q.nhwc ? ((image * q.h + row) * q.w + col) * q.c + gi * q.cg
                                             : ((image * q.c + gi * q.cg) * q.h + row) * q.w + col);
              for (int64_t ci = 0; ci < q.cg; ++ci) dst[ci * dst_step] = src[ci * src_step];
            }
          }
        }
        if (q.nhwc) {
          float* out = y + (image * positions + p0) * q.m + gi * q.mg;
          UnpackedSgemm(cols.data(), k, count, wg, k, q.mg, k, /*transposed=*/true, out, q.m, ctx.parallel(), {});
        } else {
          float* out = y + (image * q.m + gi * q.mg) * positions + p0;
          UnpackedSgemm(wg, k, q.mg, cols.data(), k, count, count, /*transposed=*/false, out, positions, ctx.parallel(),
                        {});
        }
      }
    }
  }
  if (bias == nullptr) return;
  for (int64_t image = 0; image < q.n; ++image) {
    for (int64_t p = 0; p < positions; ++p) {
      for (int64_t ch = 0; ch < q.m; ++ch) {
        y[q.nhwc ? (image * positions + p) * q.m + ch : (image * q.m + ch) * positions + p] += bias[ch];
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
    DepthwiseConv(q, x, w, bias, y);
  } else {
    GemmConv(ctx, q, x, w, bias, y);
  }
}

}  // namespace kiln::kernels
