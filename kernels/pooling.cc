// MaxPool (float32, int8, uint8), AveragePool (float32), 1-D to 3-D, on oneDNN's pooling primitive,
// and GlobalAveragePool / GlobalMaxPool as plain per-plane reductions.
//
// 2-D float32 pooling (the CNN case) has a direct kernel of its own:
// Debian's oneDNN 2.6 serves plain NCHW pooling with its scalar
// "simple_nchw" implementation, measured at 17-20 ms for a 3x3/2 max pool
// over 32x112x112 on this machine, against about 0.2 ms for the loops
// below (which walk each output row once per window tap, vectorised along
// the row).
//
// The kiln-domain ops of the same names (graph/channels_last.h) are these
// ops on 4-D NHWC float32 data: the same plans, with loops that run along
// the channels, which are contiguous there.
//
// ceil_mode: oneDNN derives the output size with floor division, so the end
// padding passed to it is extended until the last (partial) window fits.
// Max pooling and average pooling without pads in the count ignore padding
// anyway; with count_include_pad=1, ONNX counts the explicit pads but not the
// ceil extension, so those border outputs are rescaled afterwards.
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#include "graph/fuse_epilogues.h"
#include "kernels/dnnl_context.h"
#include "kernels/dnnl_kernels.h"
#include "kernels/window_geometry.h"

namespace kiln::kernels {
namespace {

enum class PoolKind { kMax, kAverage };

class PoolKernel final : public OpKernel {
 public:
  PoolKernel(PoolKind kind, WindowAttrs attrs, bool ceil_mode, bool count_include_pad, bool channels_last)
      : kind_(kind),
        attrs_(std::move(attrs)),
        ceil_mode_(ceil_mode),
        count_include_pad_(count_include_pad),
        channels_last_(channels_last) {}

  Status Compute(KernelContext& ctx) const override {
    const char* op = name();
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument(op, ": X is required");
    // MaxPool also takes 8-bit integers (opset 12), which oneDNN supports.
    const bool int8_max = kind_ == PoolKind::kMax && (x->dtype() == DType::kUint8 || x->dtype() == DType::kInt8);
    if (x->dtype() != DType::kFloat32 && !int8_max) {
      return Unsupported(op, ": ", DTypeName(x->dtype()), " is not supported (float32",
                         kind_ == PoolKind::kMax ? ", int8, uint8)" : ")");
    }
    if (x->rank() < 3) return InvalidArgument(op, ": X must have rank >= 3, got ", DimsToString(x->dims()));
    if (x->rank() > 5) return Unsupported(op, ": only 1-D to 3-D pooling, got X ", DimsToString(x->dims()));
    if (attrs_.kernel_shape.size() != static_cast<size_t>(x->rank() - 2)) {
      return InvalidArgument(op, ": kernel_shape ", DimsToString(attrs_.kernel_shape), " does not match X ",
                             DimsToString(x->dims()));
    }
    if (channels_last_ && (x->rank() != 4 || x->dtype() != DType::kFloat32)) {
      return InvalidArgument(op, ": a channels-last X must be 4-D float32, got ", DTypeName(x->dtype()), " ",
                             DimsToString(x->dims()));
    }
    const Dims x_nchw = channels_last_ ? Dims{x->dim(0), x->dim(3), x->dim(1), x->dim(2)} : x->dims();
    std::vector<int64_t> key;
    AppendKey(key, x_nchw);
    key.push_back(static_cast<int64_t>(x->dtype()));
    return GuardDnnl(op, [&]() -> Status {
      KILN_ASSIGN_OR_RETURN(
          std::shared_ptr<const Plan> plan,
          cache_.GetOrCreate(key, ctx.parallel().num_threads(), [&] { return MakePlan(x_nchw, x->dtype()); }));
      const Dims& o = plan->out_dims;
      KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x->dtype(), channels_last_ ? Dims{o[0], o[2], o[3], o[1]} : o));
      if (y->num_elements() == 0) return Status::Ok();
      if (channels_last_ && !plan->direct) {
        // MakePlan gives every 4-D float32 input a direct plan.
        return Internal(op, ": no channels-last plan for X ", DimsToString(x->dims()));
      }
      if (plan->direct) {
        if (channels_last_) {
          RunDirect2dChannelsLast(ctx, *plan, x->data<float>(), y->data<float>());
        } else {
          RunDirect2d(ctx, *plan, x->data<float>(), y->data<float>());
        }
        return Status::Ok();
      }
      ExecuteDnnl(ctx, plan->primitive, plan->pd,
                  {{DNNL_ARG_SRC, WrapMemory(plan->pd.src_desc(), x->raw_data())},
                   {DNNL_ARG_DST, WrapMemory(plan->pd.dst_desc(), y->raw_data())}});
      if (!plan->rescale.empty()) {
        const int64_t plane = static_cast<int64_t>(plan->rescale.size());
        const int64_t planes = y->num_elements() / plane;
        float* out = y->data<float>();
        for (int64_t p = 0; p < planes; ++p) {
          for (int64_t i = 0; i < plane; ++i) out[p * plane + i] *= plan->rescale[static_cast<size_t>(i)];
        }
      }
      return Status::Ok();
    });
  }

 private:
  // One spatial axis of a direct 2-D pooling: which window taps land in
  // the input for each output position, and the average's divisor.
  struct Axis {
    int64_t in = 0, out = 0, kernel = 0, stride = 0, dilation = 0, pad_begin = 0;
    // Output positions [out_lo[t], out_hi[t]) read input for tap t.
    std::vector<int64_t> out_lo, out_hi;
    // 1 / (taps counted by the average) per output position.
    std::vector<float> inv_count;
  };

  struct Plan {
    Dims out_dims;
    std::vector<float> rescale;  // per output spatial position; empty if none
    bool direct = false;         // float32 2-D: RunDirect2d, no oneDNN primitive
    Axis rows, cols;             // direct only
    dnnl::pooling_v2_forward::primitive_desc pd;
    dnnl::pooling_v2_forward primitive;
  };

  // The taps of `axis` that land in the input for each output position;
  // `counted_lo/hi` bound the positions the average counts (the input, or
  // the explicitly padded input for count_include_pad).
  static Axis MakeAxis(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad_begin,
                       int64_t counted_lo, int64_t counted_hi) {
    Axis a{in, out, kernel, stride, dilation, pad_begin, {}, {}, {}};
    for (int64_t t = 0; t < kernel; ++t) {
      // in position of output o at tap t: o * stride - pad_begin + t * dilation.
      const int64_t offset = t * dilation - pad_begin;
      const int64_t lo = std::max<int64_t>(0, -FloorDiv(offset, stride));  // ceil(-offset / stride)
      const int64_t hi = std::min<int64_t>(out, -FloorDiv(offset - in, stride));
      a.out_lo.push_back(std::min(lo, out));
      a.out_hi.push_back(std::max(std::min(lo, out), hi));
    }
    for (int64_t o = 0; o < out; ++o) {
      int64_t n = 0;
      for (int64_t t = 0; t < kernel; ++t) {
        const int64_t pos = o * stride - pad_begin + t * dilation;
        n += pos >= counted_lo && pos < counted_hi;
      }
      a.inv_count.push_back(n > 0 ? 1.0f / static_cast<float>(n) : 0.0f);
    }
    return a;
  }

  // Pools every (n, c) plane: each output row is initialised, then combined
  // with one input row per vertical tap and one strided pass per
  // horizontal tap, so the inner loop runs along contiguous output.
  void RunDirect2d(const KernelContext& ctx, const Plan& plan, const float* in, float* out) const {
    const Axis& r = plan.rows;
    const Axis& c = plan.cols;
    const int64_t planes = plan.out_dims[0] * plan.out_dims[1];
    const int64_t in_plane = r.in * c.in, out_plane = r.out * c.out;
    const bool is_max = kind_ == PoolKind::kMax;
    const int64_t work_per_plane = out_plane * r.kernel * c.kernel;
    // Window reads per parallel chunk: enough work to pay for handing a
    // chunk to another thread.
    constexpr int64_t kChunkWindowReads = int64_t{1} << 16;
    const int64_t grain = std::max<int64_t>(1, kChunkWindowReads / std::max<int64_t>(1, work_per_plane));
    ctx.parallel().For(planes, grain, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float* src = in + p * in_plane;
        float* dst = out + p * out_plane;
        for (int64_t oh = 0; oh < r.out; ++oh) {
          float* row = dst + oh * c.out;
          std::fill(row, row + c.out, is_max ? -std::numeric_limits<float>::infinity() : 0.0f);
          for (int64_t kh = 0; kh < r.kernel; ++kh) {
            if (oh < r.out_lo[static_cast<size_t>(kh)] || oh >= r.out_hi[static_cast<size_t>(kh)]) continue;
            const float* in_row = src + (oh * r.stride - r.pad_begin + kh * r.dilation) * c.in;
            for (int64_t kw = 0; kw < c.kernel; ++kw) {
              const int64_t lo = c.out_lo[static_cast<size_t>(kw)], hi = c.out_hi[static_cast<size_t>(kw)];
              const float* tap = in_row + kw * c.dilation - c.pad_begin;
              const int64_t stride = c.stride;
              if (is_max) {
                for (int64_t ow = lo; ow < hi; ++ow) row[ow] = std::max(row[ow], tap[ow * stride]);
              } else {
                for (int64_t ow = lo; ow < hi; ++ow) row[ow] += tap[ow * stride];
              }
            }
          }
          if (!is_max) {
            const float row_scale = r.inv_count[static_cast<size_t>(oh)];
            for (int64_t ow = 0; ow < c.out; ++ow) row[ow] *= row_scale * c.inv_count[static_cast<size_t>(ow)];
          }
        }
      }
    });
  }

  // RunDirect2d over NHWC, one output pixel at a time: for each group of
  // channels the window's taps are combined in registers and stored once
  // (a pixel's channels are contiguous, so each tap is one load). The
  // pixels whose every horizontal tap lands in the input (all but a border
  // of about kernel / stride columns) take PoolRowInterior, which derives
  // the taps' addresses from the column instead of listing them per pixel;
  // the border pixels list the taps that land.
  void RunDirect2dChannelsLast(const KernelContext& ctx, const Plan& plan, const float* in, float* out) const {
    const Axis& r = plan.rows;
    const Axis& c = plan.cols;
    const int64_t channels = plan.out_dims[1];
    const int64_t rows = plan.out_dims[0] * r.out;
    const bool is_max = kind_ == PoolKind::kMax;
    const int64_t work_per_row = c.out * channels * r.kernel * c.kernel;
    constexpr int64_t kChunkWindowReads = int64_t{1} << 16;
    const int64_t grain = std::max<int64_t>(1, kChunkWindowReads / std::max<int64_t>(1, work_per_row));
    // Output columns [interior_lo, interior_hi) read every horizontal tap.
    int64_t interior_lo = 0, interior_hi = c.out;
    for (int64_t kw = 0; kw < c.kernel; ++kw) {
      interior_lo = std::max(interior_lo, c.out_lo[static_cast<size_t>(kw)]);
      interior_hi = std::min(interior_hi, c.out_hi[static_cast<size_t>(kw)]);
    }
    interior_hi = std::max(interior_lo, interior_hi);
    ctx.parallel().For(rows, grain, [&](int64_t begin, int64_t end) {
      std::vector<const float*> taps(static_cast<size_t>(r.kernel * c.kernel));
      std::vector<const float*> in_rows(static_cast<size_t>(r.kernel));
      for (int64_t row_index = begin; row_index < end; ++row_index) {
        const int64_t n = row_index / r.out, oh = row_index % r.out;
        const float* src = in + n * r.in * c.in * channels;
        // The input rows of the window that land in the input.
        size_t num_rows = 0;
        for (int64_t kh = 0; kh < r.kernel; ++kh) {
          if (oh < r.out_lo[static_cast<size_t>(kh)] || oh >= r.out_hi[static_cast<size_t>(kh)]) continue;
          const int64_t ih = oh * r.stride - r.pad_begin + kh * r.dilation;
          in_rows[num_rows++] = src + ih * c.in * channels;
        }
        float* out_row = out + row_index * c.out * channels;
        auto border_pixel = [&](int64_t ow) {
          size_t count = 0;
          for (size_t i = 0; i < num_rows; ++i) {
            for (int64_t kw = 0; kw < c.kernel; ++kw) {
              if (ow < c.out_lo[static_cast<size_t>(kw)] || ow >= c.out_hi[static_cast<size_t>(kw)]) continue;
              const int64_t iw = ow * c.stride - c.pad_begin + kw * c.dilation;
              taps[count++] = in_rows[i] + iw * channels;
            }
          }
          const float scale =
              is_max ? 1.0f : r.inv_count[static_cast<size_t>(oh)] * c.inv_count[static_cast<size_t>(ow)];
          if (is_max) {
            PoolPixel<true>(taps.data(), count, channels, scale, out_row + ow * channels);
          } else {
            PoolPixel<false>(taps.data(), count, channels, scale, out_row + ow * channels);
          }
        };
        for (int64_t ow = 0; ow < interior_lo; ++ow) border_pixel(ow);
        if (is_max) {
          PoolRowInterior<true>(in_rows.data(), num_rows, c, interior_lo, interior_hi, channels, nullptr, 1.0f,
                                out_row);
        } else {
          PoolRowInterior<false>(in_rows.data(), num_rows, c, interior_lo, interior_hi, channels, c.inv_count.data(),
                                 r.inv_count[static_cast<size_t>(oh)], out_row);
        }
        for (int64_t ow = interior_hi; ow < c.out; ++ow) border_pixel(ow);
      }
    });
  }

  // Output pixels [ow_lo, ow_hi) of one NHWC output row, whose horizontal
  // taps all land in the input rows `in_rows`: their maximum, or their sum
  // times row_scale * col_scale[ow]. Channels go 32 at a time (four
  // registers, so each tap's loads are independent), then 8, then one.
  template <bool kMax>
  static void PoolRowInterior(const float* const* in_rows, size_t num_rows, const Axis& c, int64_t ow_lo, int64_t ow_hi,
                              int64_t channels, const float* col_scale, float row_scale, float* out_row) {
    constexpr int64_t kLanes = 8;
    const int64_t tap_step = c.dilation * channels;
    const __m256 init = kMax ? _mm256_set1_ps(-std::numeric_limits<float>::infinity()) : _mm256_setzero_ps();
    // max(v, acc) keeps acc when v is NaN, like std::max(acc, v).
    auto combine = [](__m256 acc, __m256 v) { return kMax ? _mm256_max_ps(v, acc) : _mm256_add_ps(acc, v); };
    for (int64_t ow = ow_lo; ow < ow_hi; ++ow) {
      const int64_t first = (ow * c.stride - c.pad_begin) * channels;
      float* pixel = out_row + ow * channels;
      const __m256 scale = _mm256_set1_ps(kMax ? 1.0f : row_scale * col_scale[ow]);
      int64_t ch = 0;
      for (; ch + 4 * kLanes <= channels; ch += 4 * kLanes) {
        __m256 a0 = init, a1 = init, a2 = init, a3 = init;
        for (size_t i = 0; i < num_rows; ++i) {
          const float* tap = in_rows[i] + first + ch;
          for (int64_t kw = 0; kw < c.kernel; ++kw, tap += tap_step) {
            a0 = combine(a0, _mm256_loadu_ps(tap));
            a1 = combine(a1, _mm256_loadu_ps(tap + kLanes));
            a2 = combine(a2, _mm256_loadu_ps(tap + 2 * kLanes));
            a3 = combine(a3, _mm256_loadu_ps(tap + 3 * kLanes));
          }
        }
        if (!kMax) {
          a0 = _mm256_mul_ps(a0, scale);
          a1 = _mm256_mul_ps(a1, scale);
          a2 = _mm256_mul_ps(a2, scale);
          a3 = _mm256_mul_ps(a3, scale);
        }
        _mm256_storeu_ps(pixel + ch, a0);
        _mm256_storeu_ps(pixel + ch + kLanes, a1);
        _mm256_storeu_ps(pixel + ch + 2 * kLanes, a2);
        _mm256_storeu_ps(pixel + ch + 3 * kLanes, a3);
      }
      for (; ch + kLanes <= channels; ch += kLanes) {
        __m256 acc = init;
        for (size_t i = 0; i < num_rows; ++i) {
          const float* tap = in_rows[i] + first + ch;
          for (int64_t kw = 0; kw < c.kernel; ++kw, tap += tap_step) acc = combine(acc, _mm256_loadu_ps(tap));
        }
        _mm256_storeu_ps(pixel + ch, kMax ? acc : _mm256_mul_ps(acc, scale));
      }
      for (; ch < channels; ++ch) {
        float acc = kMax ? -std::numeric_limits<float>::infinity() : 0.0f;
        for (size_t i = 0; i < num_rows; ++i) {
          const float* tap = in_rows[i] + first + ch;
          for (int64_t kw = 0; kw < c.kernel; ++kw, tap += tap_step) acc = kMax ? std::max(acc, *tap) : acc + *tap;
        }
        pixel[ch] = kMax ? acc : acc * row_scale * col_scale[ow];
      }
    }
  }

  // Combines `count` input pixels of `channels` floats into `out`: their
  // maximum, or their sum times `scale`.
  template <bool kMax>
  static void PoolPixel(const float* const* taps, size_t count, int64_t channels, float scale, float* out) {
    constexpr int64_t kLanes = 8;
    int64_t ch = 0;
    for (; ch + kLanes <= channels; ch += kLanes) {
      __m256 acc = kMax ? _mm256_set1_ps(-std::numeric_limits<float>::infinity()) : _mm256_setzero_ps();
      for (size_t t = 0; t < count; ++t) {
        const __m256 v = _mm256_loadu_ps(taps[t] + ch);
        // max(v, acc) keeps acc when v is NaN, like std::max(acc, v).
        acc = kMax ? _mm256_max_ps(v, acc) : _mm256_add_ps(acc, v);
      }
      if (!kMax) acc = _mm256_mul_ps(acc, _mm256_set1_ps(scale));
      _mm256_storeu_ps(out + ch, acc);
    }
    for (; ch < channels; ++ch) {
      float acc = kMax ? -std::numeric_limits<float>::infinity() : 0.0f;
      for (size_t t = 0; t < count; ++t) acc = kMax ? std::max(acc, taps[t][ch]) : acc + taps[t][ch];
      out[ch] = kMax ? acc : acc * scale;
    }
  }

  const char* name() const { return kind_ == PoolKind::kMax ? "MaxPool" : "AveragePool"; }

  StatusOr<std::shared_ptr<const Plan>> MakePlan(const Dims& x_dims, DType dtype) const {
    const char* op = name();
    const Dims in(x_dims.begin() + 2, x_dims.end());
    const size_t rank = in.size();
    KILN_ASSIGN_OR_RETURN(WindowGeometry g, ResolveForwardWindow(op, attrs_, in, attrs_.kernel_shape, ceil_mode_));
    auto plan = std::make_shared<Plan>();
    plan->out_dims = {x_dims[0], x_dims[1]};
    plan->out_dims.insert(plan->out_dims.end(), g.output.begin(), g.output.end());
    if (HasZeroDim(plan->out_dims)) return plan;
    if (HasZeroDim(x_dims)) return InvalidArgument(op, ": X ", DimsToString(x_dims), " is empty");

    Dims dnnl_pad_r(rank), dnnl_dilations(rank);
    bool extended = false;
    for (size_t i = 0; i < rank; ++i) {
      const int64_t ek = (g.kernel[i] - 1) * g.dilations[i] + 1;
      const int64_t needed = (g.output[i] - 1) * g.strides[i] + ek - in[i] - g.pad_begin[i];
      dnnl_pad_r[i] = std::max(g.pad_end[i], needed);
      extended |= needed > g.pad_end[i];
      dnnl_dilations[i] = g.dilations[i] - 1;
      if (g.pad_begin[i] >= ek || dnnl_pad_r[i] >= ek) {
        // A window made only of padding has no defined value.
        return InvalidArgument(op, ": pads ", DimsToString(attrs_.pads), " are not smaller than the kernel");
      }
    }
    if (dtype == DType::kFloat32 && rank == 2) {
      // ONNX's average counts the window taps inside the input, or with
      // count_include_pad those inside the explicitly padded input (never
      // the ceil_mode extension beyond it).
      plan->direct = true;
      auto axis = [&](size_t i) {
        const int64_t counted_lo = count_include_pad_ ? -g.pad_begin[i] : 0;
        const int64_t counted_hi = count_include_pad_ ? in[i] + g.pad_end[i] : in[i];
        return MakeAxis(in[i], g.output[i], g.kernel[i], g.strides[i], g.dilations[i], g.pad_begin[i], counted_lo,
                        counted_hi);
      };
      plan->rows = axis(0);
      plan->cols = axis(1);
      return std::shared_ptr<const Plan>(std::move(plan));
    }
    dnnl::algorithm alg = dnnl::algorithm::pooling_max;
    if (kind_ == PoolKind::kAverage) {
      alg = count_include_pad_ ? dnnl::algorithm::pooling_avg_include_padding
                               : dnnl::algorithm::pooling_avg_exclude_padding;
      if (count_include_pad_ && extended) plan->rescale = IncludePadRescale(g, in);
    }
    const dnnl::memory::data_type type = dtype == DType::kUint8  ? dnnl::memory::data_type::u8
                                         : dtype == DType::kInt8 ? dnnl::memory::data_type::s8
                                                                 : dnnl::memory::data_type::f32;
    dnnl::pooling_v2_forward::desc desc(dnnl::prop_kind::forward_inference, alg, PlainDesc(x_dims, type),
                                        PlainDesc(plan->out_dims, type), ToDnnlDims(g.strides), ToDnnlDims(g.kernel),
                                        ToDnnlDims(dnnl_dilations), ToDnnlDims(g.pad_begin), ToDnnlDims(dnnl_pad_r));
    plan->pd = dnnl::pooling_v2_forward::primitive_desc(desc, UserScratchpadAttr(), DnnlEngine());
    plan->primitive = dnnl::pooling_v2_forward(plan->pd);
    return std::shared_ptr<const Plan>(std::move(plan));
  }

  // oneDNN divides by the whole kernel size; ONNX divides by the part of the
  // window inside the explicitly padded input. Returns the factor per output
  // spatial position (row-major).
  static std::vector<float> IncludePadRescale(const WindowGeometry& g, const Dims& in) {
    const size_t rank = in.size();
    std::vector<std::vector<int64_t>> counted(rank);
    int64_t total = 1, kernel_size = 1;
    for (size_t i = 0; i < rank; ++i) {
      total *= g.output[i];
      kernel_size *= g.kernel[i];
      const int64_t lo = -g.pad_begin[i], hi = in[i] + g.pad_end[i];
      for (int64_t o = 0; o < g.output[i]; ++o) {
        const int64_t start = o * g.strides[i] - g.pad_begin[i];
        int64_t n = 0;
        for (int64_t t = 0; t < g.kernel[i]; ++t) {
          const int64_t pos = start + t * g.dilations[i];
          n += pos >= lo && pos < hi;
        }
        counted[i].push_back(n);
      }
    }
    std::vector<float> rescale(static_cast<size_t>(total));
    Dims idx(rank, 0);
    for (int64_t p = 0; p < total; ++p) {
      int64_t n = 1;
      for (size_t i = 0; i < rank; ++i) n *= counted[i][static_cast<size_t>(idx[i])];
      rescale[static_cast<size_t>(p)] = n > 0 ? static_cast<float>(kernel_size) / static_cast<float>(n) : 0.0f;
      for (size_t i = rank; i-- > 0;) {
        if (++idx[i] < g.output[i]) break;
        idx[i] = 0;
      }
    }
    return rescale;
  }

  PoolKind kind_;
  WindowAttrs attrs_;
  bool ceil_mode_;
  bool count_include_pad_;
  bool channels_last_;
  ShapeCache<Plan> cache_;
};

// GlobalAveragePool / GlobalMaxPool: one reduction per (n, c) plane.
class GlobalPoolKernel final : public OpKernel {
 public:
  GlobalPoolKernel(PoolKind kind, bool channels_last) : kind_(kind), channels_last_(channels_last) {}

  Status Compute(KernelContext& ctx) const override {
    const char* op = kind_ == PoolKind::kMax ? "GlobalMaxPool" : "GlobalAveragePool";
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument(op, ": X is required");
    if (x->dtype() != DType::kFloat32)
      return Unsupported(op, ": only float32 is supported, got ", DTypeName(x->dtype()));
    if (x->rank() < 3) return InvalidArgument(op, ": X must have rank >= 3, got ", DimsToString(x->dims()));
    if (channels_last_) return ComputeChannelsLast(ctx, *x, op);
    Dims out_dims(static_cast<size_t>(x->rank()), 1);
    out_dims[0] = x->dim(0);
    out_dims[1] = x->dim(1);
    int64_t plane = 1;
    for (int64_t i = 2; i < x->rank(); ++i) plane *= x->dim(i);
    const int64_t planes = x->dim(0) * x->dim(1);
    if (plane == 0 && planes > 0) return InvalidArgument(op, ": X ", DimsToString(x->dims()), " has an empty plane");
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kFloat32, out_dims));
    const float* in = x->data<float>();
    float* out = y->data<float>();
    const bool is_max = kind_ == PoolKind::kMax;
    // Input elements per parallel chunk (128 KiB of floats): enough work to
    // pay for handing a chunk to another thread.
    constexpr int64_t kChunkElements = int64_t{1} << 15;
    const int64_t grain = std::max<int64_t>(1, kChunkElements / std::max<int64_t>(plane, 1));
    ctx.parallel().For(planes, grain, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float* src = in + p * plane;
        if (is_max) {
          float m = src[0];
          for (int64_t i = 1; i < plane; ++i) m = std::max(m, src[i]);
          out[p] = m;
        } else {
          // Several partial sums keep the loop vectorizable and more accurate.
          float acc[8] = {};
          int64_t i = 0;
          for (; i + 8 <= plane; i += 8) {
            for (int j = 0; j < 8; ++j) acc[j] += src[i + j];
          }
          float sum = 0.0f;
          for (; i < plane; ++i) sum += src[i];
          for (int j = 0; j < 8; ++j) sum += acc[j];
          out[p] = sum / static_cast<float>(plane);
        }
      }
    });
    return Status::Ok();
  }

 private:
  // X [N, H, W, C] -> Y [N, 1, 1, C]: eight channels at a time are summed
  // (or maxed) in a register down all the pixels of one image.
  Status ComputeChannelsLast(KernelContext& ctx, const Tensor& x, const char* op) const {
    if (x.rank() != 4) return InvalidArgument(op, ": a channels-last X must have rank 4, got ", DimsToString(x.dims()));
    const int64_t batch = x.dim(0), pixels = x.dim(1) * x.dim(2), channels = x.dim(3);
    if (pixels == 0 && batch * channels > 0) {
      return InvalidArgument(op, ": X ", DimsToString(x.dims()), " has an empty plane");
    }
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kFloat32, {batch, 1, 1, channels}));
    const bool is_max = kind_ == PoolKind::kMax;
    const float inv = 1.0f / static_cast<float>(std::max<int64_t>(pixels, 1));
    ctx.parallel().For(batch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const float* src = x.data<float>() + n * pixels * channels;
        float* out = y->data<float>() + n * channels;
        // Eight channels at a time in a register, down all the pixels.
        constexpr int64_t kLanes = 8;
        int64_t ch = 0;
        for (; ch + kLanes <= channels; ch += kLanes) {
          __m256 acc = _mm256_loadu_ps(src + ch);
          for (int64_t p = 1; p < pixels; ++p) {
            const __m256 v = _mm256_loadu_ps(src + p * channels + ch);
            // max(v, acc) keeps acc when v is NaN, like std::max(acc, v).
            acc = is_max ? _mm256_max_ps(v, acc) : _mm256_add_ps(acc, v);
          }
          _mm256_storeu_ps(out + ch, is_max ? acc : _mm256_mul_ps(acc, _mm256_set1_ps(inv)));
        }
        for (; ch < channels; ++ch) {
          float acc = src[ch];
          for (int64_t p = 1; p < pixels; ++p) {
            acc = is_max ? std::max(acc, src[p * channels + ch]) : acc + src[p * channels + ch];
          }
          out[ch] = is_max ? acc : acc * inv;
        }
      }
    });
    return Status::Ok();
  }

  PoolKind kind_;
  bool channels_last_;
};

// The kiln-domain pooling ops are the channels-last ones.
bool IsChannelsLast(const graph::Node& node) { return node.domain == graph::kKilnDomain; }

StatusOr<std::unique_ptr<OpKernel>> CreatePool(const graph::Node& node, PoolKind kind) {
  const char* op = kind == PoolKind::kMax ? "MaxPool" : "AveragePool";
  KILN_ASSIGN_OR_RETURN(WindowAttrs attrs, ParseWindowAttrs(node, op));
  if (attrs.kernel_shape.empty()) return InvalidModel(op, ": kernel_shape is required");
  KILN_ASSIGN_OR_RETURN(int64_t ceil_mode, node.GetInt("ceil_mode", 0));
  KILN_ASSIGN_OR_RETURN(int64_t count_include_pad, node.GetInt("count_include_pad", 0));
  if (kind == PoolKind::kMax) {
    size_t live = 0;
    for (graph::ValueId v : node.outputs) live += v != graph::kNoValue;
    if (live > 1) return Unsupported(op, ": the Indices output is not supported");
  } else if (!attrs.dilations.empty()) {
    for (int64_t d : attrs.dilations) {
      if (d != 1) return Unsupported(op, ": dilations are not supported");
    }
  }
  return std::unique_ptr<OpKernel>(
      new PoolKernel(kind, std::move(attrs), ceil_mode != 0, count_include_pad != 0, IsChannelsLast(node)));
}

}  // namespace

StatusOr<std::unique_ptr<OpKernel>> CreateMaxPoolKernel(const graph::Node& node) {
  return CreatePool(node, PoolKind::kMax);
}
StatusOr<std::unique_ptr<OpKernel>> CreateAveragePoolKernel(const graph::Node& node) {
  return CreatePool(node, PoolKind::kAverage);
}
StatusOr<std::unique_ptr<OpKernel>> CreateGlobalAveragePoolKernel(const graph::Node& node) {
  return std::unique_ptr<OpKernel>(new GlobalPoolKernel(PoolKind::kAverage, IsChannelsLast(node)));
}
StatusOr<std::unique_ptr<OpKernel>> CreateGlobalMaxPoolKernel(const graph::Node& node) {
  return std::unique_ptr<OpKernel>(new GlobalPoolKernel(PoolKind::kMax, IsChannelsLast(node)));
}

}  // namespace kiln::kernels
