// Resize (opsets 10-19) and Upsample (opsets 7-9).
//
// Supported: modes nearest, linear and cubic (N-dimensional, over any axes);
// coordinate transformations half_pixel, half_pixel_symmetric,
// pytorch_half_pixel, align_corners, asymmetric and tf_half_pixel_for_nn;
// nearest modes round_prefer_floor, round_prefer_ceil, floor and ceil; output
// size from scales or sizes, optionally for a subset of axes (opset 18).
// Not supported (kUnsupported): tf_crop_and_resize (the only mode that reads
// roi), antialias, and keep_aspect_ratio_policy other than stretch.
//
// Each axis gets a table built once per call: for nearest the source index
// of every output index; for linear and cubic the K = 2 or 4 source indices
// and weights. Nearest is one gather over all axes (any dtype, copied by
// element size). Linear and cubic interpolation is a tensor product of 1-D
// filters, so it runs as one 1-D pass per resized axis; every pass but the
// innermost combines whole contiguous rows and vectorises.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels/reduction_common.h"

namespace kiln::kernels {
namespace {

enum class Mode { kNearest, kLinear, kCubic };
enum class Coord { kHalfPixel, kHalfPixelSymmetric, kPytorchHalfPixel, kAlignCorners, kAsymmetric, kTfHalfPixelForNn };
// kLegacy is opset < 11 (no nearest_mode): floor when upsampling an axis,
// ceil when downsampling it, which is what those opsets' reference outputs
// and ONNX Runtime compute.
enum class Nearest { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kLegacy };
// Where scales and sizes come from.
enum class Variant { kUpsample7, kScalesInput1, kResize11 };

struct Options {
  Variant variant = Variant::kResize11;
  const char* name = "Resize";
  Mode mode = Mode::kNearest;
  Coord coord = Coord::kHalfPixel;
  Nearest nearest = Nearest::kRoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  std::vector<float> scales_attr;  // Upsample-7
  std::vector<int64_t> axes;       // opset 18; empty = all
};

// The source coordinate of output index j along an axis.
double SourceCoordinate(Coord coord, double j, double scale, int64_t in_len, int64_t out_len) {
  switch (coord) {
    case Coord::kHalfPixel: return (j + 0.5) / scale - 0.5;
    case Coord::kHalfPixelSymmetric: {
      const double adjustment = static_cast<double>(out_len) / (scale * static_cast<double>(in_len));
      const double center = static_cast<double>(in_len) / 2.0;
      return center * (1.0 - adjustment) + (j + 0.5) / scale - 0.5;
    }
    case Coord::kPytorchHalfPixel: return out_len > 1 ? (j + 0.5) / scale - 0.5 : 0.0;
    case Coord::kAlignCorners: {
      // The resized length here is in_len * scale before flooring, as the
      // ONNX reference defines it; with `sizes` the two agree.
      const double resized = scale * static_cast<double>(in_len);
      return resized == 1.0 ? 0.0 : j * static_cast<double>(in_len - 1) / (resized - 1.0);
    }
    case Coord::kAsymmetric: return j / scale;
    case Coord::kTfHalfPixelForNn: return (j + 0.5) / scale;
  }
  return 0.0;
}

int64_t RoundNearest(Nearest mode, double x, double scale) {
  const double f = std::floor(x);
  switch (mode) {
    case Nearest::kRoundPreferFloor: return static_cast<int64_t>(x - f == 0.5 ? f : std::round(x));
    case Nearest::kRoundPreferCeil: return static_cast<int64_t>(x - f == 0.5 ? f + 1.0 : std::round(x));
    case Nearest::kFloor: return static_cast<int64_t>(f);
    case Nearest::kCeil: return static_cast<int64_t>(std::ceil(x));
    case Nearest::kLegacy: return static_cast<int64_t>(scale < 1.0 ? std::ceil(x) : f);
  }
  return 0;
}

int64_t ClampIndex(int64_t i, int64_t n) { return i < 0 ? 0 : (i >= n ? n - 1 : i); }

// K source indices and weights per output index of one axis.
struct AxisFilter {
  int64_t in_len = 0;
  int64_t out_len = 0;
  int taps = 1;
  std::vector<int64_t> index;  // out_len * taps, clamped to [0, in_len)
  std::vector<double> weight;  // out_len * taps (empty for nearest)
  // True when output j is exactly input j: the pass can be skipped.
  bool identity = false;
};

AxisFilter BuildFilter(const Options& o, int64_t in_len, int64_t out_len, double scale) {
  AxisFilter f;
  f.in_len = in_len;
  f.out_len = out_len;
  f.taps = o.mode == Mode::kNearest ? 1 : (o.mode == Mode::kLinear ? 2 : 4);
  const size_t k = static_cast<size_t>(f.taps);
  f.index.resize(static_cast<size_t>(out_len) * k);
  if (o.mode != Mode::kNearest) f.weight.resize(f.index.size());
  f.identity = in_len == out_len;
  for (int64_t j = 0; j < out_len; ++j) {
    const double x = SourceCoordinate(o.coord, static_cast<double>(j), scale, in_len, out_len);
    int64_t* idx = &f.index[static_cast<size_t>(j) * k];
    if (o.mode == Mode::kNearest) {
      idx[0] = ClampIndex(RoundNearest(o.nearest, x, scale), in_len);
      f.identity = f.identity && idx[0] == j;
      continue;
    }
    double* w = &f.weight[static_cast<size_t>(j) * k];
    const double x0 = std::floor(x);
    const double r = x - x0;
    const int64_t i0 = static_cast<int64_t>(x0);
    if (o.mode == Mode::kLinear) {
      idx[0] = i0;
      idx[1] = i0 + 1;
      w[0] = 1.0 - r;
      w[1] = r;
    } else {
      // Keys' cubic convolution kernel with parameter A at distances 1 + r,
      // r, 1 - r and 2 - r.
      const double a = o.cubic_a;
      const double d0 = 1.0 + r, d1 = r, d2 = 1.0 - r, d3 = 2.0 - r;
      w[0] = ((a * d0 - 5.0 * a) * d0 + 8.0 * a) * d0 - 4.0 * a;
      w[1] = ((a + 2.0) * d1 - (a + 3.0)) * d1 * d1 + 1.0;
      w[2] = ((a + 2.0) * d2 - (a + 3.0)) * d2 * d2 + 1.0;
      w[3] = ((a * d3 - 5.0 * a) * d3 + 8.0 * a) * d3 - 4.0 * a;
      for (int t = 0; t < 4; ++t) idx[t] = i0 - 1 + t;
      if (o.exclude_outside) {
        double sum = 0.0;
        for (int t = 0; t < 4; ++t) {
          if (idx[t] < 0 || idx[t] >= in_len) w[t] = 0.0;
          sum += w[t];
        }
        if (sum != 0.0) {
          for (int t = 0; t < 4; ++t) w[t] /= sum;
        }
      }
    }
    // Taps beyond the edge repeat the edge element.
    for (size_t t = 0; t < k; ++t) {
      idx[t] = ClampIndex(idx[t], in_len);
      const bool on_self = idx[t] == j;
      f.identity = f.identity && (w[t] == 0.0 || (on_self && w[t] == 1.0));
    }
  }
  return f;
}

// Nearest: one gather over all axes, row by row (the innermost axis).
void GatherNearest(const ParallelRunner& parallel, const Tensor& x, Tensor& y, const std::vector<AxisFilter>& f) {
  const int64_t rank = x.rank();
  const size_t esize = DTypeSize(x.dtype());
  const auto* in = static_cast<const uint8_t*>(x.raw_data());
  auto* out = static_cast<uint8_t*>(y.raw_data());
  if (rank == 0) {
    std::memcpy(out, in, esize);
    return;
  }
  std::vector<int64_t> in_stride(static_cast<size_t>(rank));
  int64_t s = 1;
  for (int64_t i = rank; i-- > 0;) {
    in_stride[static_cast<size_t>(i)] = s;
    s *= x.dim(i);
  }
  const AxisFilter& last = f.back();
  const int64_t row_len = last.out_len;
  const int64_t rows = y.num_elements() / row_len;
  ParallelItems(parallel, rows, row_len, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t base = 0;
      int64_t rest = r;
      for (int64_t i = rank - 1; i-- > 0;) {
        const AxisFilter& a = f[static_cast<size_t>(i)];
        base += a.index[static_cast<size_t>(rest % a.out_len)] * in_stride[static_cast<size_t>(i)];
        rest /= a.out_len;
      }
      const uint8_t* src = in + static_cast<size_t>(base) * esize;
      uint8_t* dst = out + static_cast<size_t>(r * row_len) * esize;
      const int64_t* idx = last.index.data();
      switch (esize) {
        case 1:
          for (int64_t j = 0; j < row_len; ++j) dst[j] = src[idx[j]];
          break;
        case 4:
          for (int64_t j = 0; j < row_len; ++j) std::memcpy(dst + 4 * j, src + 4 * idx[j], 4);
          break;
        case 8:
          for (int64_t j = 0; j < row_len; ++j) std::memcpy(dst + 8 * j, src + 8 * idx[j], 8);
          break;
        default:
          for (int64_t j = 0; j < row_len; ++j) {
            std::memcpy(dst + esize * static_cast<size_t>(j), src + esize * static_cast<size_t>(idx[j]), esize);
          }
      }
    }
  });
}

// One 1-D filter pass along an axis: [outer, in_len, inner] -> [outer,
// out_len, inner].
template <int K, typename T>
void FilterPass(const ParallelRunner& parallel, const T* src, T* dst, int64_t outer, int64_t inner, const AxisFilter& f,
                const std::vector<T>& weight) {
  const int64_t out_len = f.out_len;
  const int64_t in_len = f.in_len;
  ParallelItems(parallel, outer * out_len, inner * K, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t o = row / out_len;
      const int64_t j = row % out_len;
      const int64_t* idx = &f.index[static_cast<size_t>(j * K)];
      const T* w = &weight[static_cast<size_t>(j * K)];
      const T* plane = src + o * in_len * inner;
      if (inner == 1) {
        T acc = T(0);
        for (int t = 0; t < K; ++t) acc += w[t] * plane[idx[t]];
        dst[row] = acc;
        continue;
      }
      const T* __restrict s[K];
      for (int t = 0; t < K; ++t) s[t] = plane + idx[t] * inner;
      T* __restrict d = dst + row * inner;
      if constexpr (K == 2) {
        const T w0 = w[0], w1 = w[1];
#pragma omp simd
        for (int64_t i = 0; i < inner; ++i) d[i] = w0 * s[0][i] + w1 * s[1][i];
      } else {
        const T w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
#pragma omp simd
        for (int64_t i = 0; i < inner; ++i) d[i] = w0 * s[0][i] + w1 * s[1][i] + w2 * s[2][i] + w3 * s[3][i];
      }
    }
  });
}

template <typename T>
void Interpolate(const ParallelRunner& parallel, const Tensor& x, Tensor& y, const std::vector<AxisFilter>& f) {
  const int64_t rank = x.rank();
  std::vector<int> passes;
  for (int64_t i = rank; i-- > 0;) {
    if (!f[static_cast<size_t>(i)].identity) passes.push_back(static_cast<int>(i));
  }
  if (passes.empty()) {
    std::memcpy(y.raw_data(), x.raw_data(), x.byte_size());
    return;
  }
  Dims dims = x.dims();
  const T* src = x.data<T>();
  std::vector<T> buffers[2];
  for (size_t p = 0; p < passes.size(); ++p) {
    const int a = passes[p];
    const AxisFilter& af = f[static_cast<size_t>(a)];
    const AxisView v = MakeAxisView(dims, a, a + 1);
    dims[static_cast<size_t>(a)] = af.out_len;
    T* dst;
    if (p + 1 == passes.size()) {
      dst = y.data<T>();
    } else {
      std::vector<T>& buf = buffers[p % 2];
      buf.resize(static_cast<size_t>(v.outer * af.out_len * v.inner));
      dst = buf.data();
    }
    std::vector<T> weight(af.weight.begin(), af.weight.end());
    if (af.taps == 2) {
      FilterPass<2, T>(parallel, src, dst, v.outer, v.inner, af, weight);
    } else {
      FilterPass<4, T>(parallel, src, dst, v.outer, v.inner, af, weight);
    }
    src = dst;
  }
}

class ResizeKernel final : public OpKernel {
 public:
  explicit ResizeKernel(Options o) : o_(std::move(o)) {}

  Status Compute(KernelContext& ctx) const override {
    const char* name = o_.name;
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument(name, ": missing input");
    const int64_t rank = x->rank();

    // The axes that scales/sizes describe.
    std::vector<int64_t> axes;
    if (o_.axes.empty()) {
      for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
    } else {
      std::vector<bool> seen(static_cast<size_t>(rank), false);
      for (int64_t a : o_.axes) {
        KILN_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(name, a, rank));
        if (seen[static_cast<size_t>(axis)]) return InvalidArgument(name, ": axis ", a, " is repeated in axes");
        seen[static_cast<size_t>(axis)] = true;
        axes.push_back(axis);
      }
    }

    const Tensor* scales_t = nullptr;
    const Tensor* sizes_t = nullptr;
    std::vector<float> scales_given = o_.scales_attr;
    if (o_.variant == Variant::kScalesInput1) {
      scales_t = ctx.input(1);
      if (scales_t == nullptr) return InvalidArgument(name, ": missing scales input");
    } else if (o_.variant == Variant::kResize11) {
      scales_t = ctx.input(2);
      sizes_t = ctx.input(3);
      if (scales_t != nullptr && scales_t->num_elements() == 0) scales_t = nullptr;
      if (sizes_t != nullptr && sizes_t->num_elements() == 0) sizes_t = nullptr;
      if ((scales_t == nullptr) == (sizes_t == nullptr)) {
        return InvalidArgument(name, ": exactly one of scales and sizes must be given");
      }
    }
    if (scales_t != nullptr) {
      if (scales_t->dtype() != DType::kFloat32 || scales_t->rank() != 1) {
        return InvalidArgument(name, ": scales must be a 1-D float32 tensor, got ", DTypeName(scales_t->dtype()), " ",
                               DimsToString(scales_t->dims()));
      }
      scales_given.assign(scales_t->data<float>(), scales_t->data<float>() + scales_t->num_elements());
    }

    std::vector<double> scale(static_cast<size_t>(rank), 1.0);
    Dims out_dims = x->dims();
    if (sizes_t != nullptr) {
      KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, ReadInt64List(name, "sizes", *sizes_t));
      if (sizes.size() != axes.size()) {
        return InvalidArgument(name, ": sizes has ", sizes.size(), " values for ", axes.size(), " axes");
      }
      for (size_t k = 0; k < axes.size(); ++k) {
        const size_t a = static_cast<size_t>(axes[k]);
        if (sizes[k] < 0) return InvalidArgument(name, ": negative size ", sizes[k], " for axis ", axes[k]);
        out_dims[a] = sizes[k];
        scale[a] = x->dims()[a] == 0 ? 1.0 : static_cast<double>(sizes[k]) / static_cast<double>(x->dims()[a]);
      }
    } else {
      if (scales_given.size() != axes.size()) {
        return InvalidArgument(name, ": scales has ", scales_given.size(), " values for ", axes.size(), " axes");
      }
      for (size_t k = 0; k < axes.size(); ++k) {
        const size_t a = static_cast<size_t>(axes[k]);
        const double s = scales_given[k];
        if (!(s > 0.0) || !std::isfinite(s)) {
          return InvalidArgument(name, ": scale ", scales_given[k], " for axis ", axes[k], " must be positive");
        }
        const double size = std::floor(s * static_cast<double>(x->dims()[a]));
        if (size > static_cast<double>(int64_t{1} << 40)) {
          return InvalidArgument(name, ": scale ", scales_given[k], " makes axis ", axes[k], " too large");
        }
        out_dims[a] = static_cast<int64_t>(size);
        scale[a] = s;
      }
    }
    for (int64_t i = 0; i < rank; ++i) {
      if (x->dim(i) == 0 && out_dims[static_cast<size_t>(i)] > 0) {
        return InvalidArgument(name, ": cannot resize the empty axis ", i, " to ", out_dims[static_cast<size_t>(i)]);
      }
    }
    if (o_.mode != Mode::kNearest && x->dtype() != DType::kFloat32 && x->dtype() != DType::kFloat64) {
      return Unsupported(name, ": dtype ", DTypeName(x->dtype()), " is not supported for linear or cubic mode");
    }
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x->dtype(), out_dims));
    if (y->num_elements() == 0) return Status::Ok();

    std::vector<AxisFilter> filters;
    filters.reserve(static_cast<size_t>(rank));
    for (int64_t i = 0; i < rank; ++i) {
      filters.push_back(BuildFilter(o_, x->dim(i), out_dims[static_cast<size_t>(i)], scale[static_cast<size_t>(i)]));
    }
    if (o_.mode == Mode::kNearest) {
      GatherNearest(ctx.parallel(), *x, *y, filters);
      return Status::Ok();
    }
    if (x->dtype() == DType::kFloat32) {
      Interpolate<float>(ctx.parallel(), *x, *y, filters);
    } else {
      Interpolate<double>(ctx.parallel(), *x, *y, filters);
    }
    return Status::Ok();
  }

 private:
  Options o_;
};

StatusOr<Mode> ParseMode(const char* name, const std::string& s) {
  if (s == "nearest") return Mode::kNearest;
  if (s == "linear" || s == "bilinear") return Mode::kLinear;
  if (s == "cubic") return Mode::kCubic;
  return Unsupported(name, ": mode '", s, "' is not supported");
}

KernelFactory ResizeFactory(int since) {
  return [since](const graph::Node& node) -> StatusOr<std::unique_ptr<OpKernel>> {
    Options o;
    const bool upsample = node.op_type == "Upsample";
    o.name = upsample ? "Upsample" : "Resize";
    KILN_ASSIGN_OR_RETURN(std::string mode, node.GetString("mode", "nearest"));
    KILN_ASSIGN_OR_RETURN(o.mode, ParseMode(o.name, mode));
    if (since < 11) {
      // Upsample and Resize-10: asymmetric coordinates, legacy rounding.
      if (o.mode == Mode::kCubic) return Unsupported(o.name, ": mode 'cubic' needs opset 11");
      o.coord = Coord::kAsymmetric;
      o.nearest = Nearest::kLegacy;
      if (since == 7) {
        o.variant = Variant::kUpsample7;
        KILN_ASSIGN_OR_RETURN(o.scales_attr, node.GetFloats("scales"));
      } else {
        o.variant = Variant::kScalesInput1;
      }
      return std::unique_ptr<OpKernel>(new ResizeKernel(std::move(o)));
    }
    o.variant = Variant::kResize11;
    KILN_ASSIGN_OR_RETURN(std::string coord, node.GetString("coordinate_transformation_mode", "half_pixel"));
    if (coord == "half_pixel") {
      o.coord = Coord::kHalfPixel;
    } else if (coord == "half_pixel_symmetric") {
      o.coord = Coord::kHalfPixelSymmetric;
    } else if (coord == "pytorch_half_pixel") {
      o.coord = Coord::kPytorchHalfPixel;
    } else if (coord == "align_corners") {
      o.coord = Coord::kAlignCorners;
    } else if (coord == "asymmetric") {
      o.coord = Coord::kAsymmetric;
    } else if (coord == "tf_half_pixel_for_nn") {
      o.coord = Coord::kTfHalfPixelForNn;
    } else {
      return Unsupported("Resize: coordinate_transformation_mode '", coord, "' is not supported");
    }
    KILN_ASSIGN_OR_RETURN(std::string nearest, node.GetString("nearest_mode", "round_prefer_floor"));
    if (nearest == "round_prefer_floor") {
      o.nearest = Nearest::kRoundPreferFloor;
    } else if (nearest == "round_prefer_ceil") {
      o.nearest = Nearest::kRoundPreferCeil;
    } else if (nearest == "floor") {
      o.nearest = Nearest::kFloor;
    } else if (nearest == "ceil") {
      o.nearest = Nearest::kCeil;
    } else {
      return Unsupported("Resize: nearest_mode '", nearest, "' is not supported");
    }
    KILN_ASSIGN_OR_RETURN(float cubic_a, node.GetFloat("cubic_coeff_a", -0.75f));
    o.cubic_a = cubic_a;
    KILN_ASSIGN_OR_RETURN(int64_t exclude, node.GetInt("exclude_outside", 0));
    o.exclude_outside = exclude != 0;
    KILN_ASSIGN_OR_RETURN(int64_t antialias, node.GetInt("antialias", 0));
    if (antialias != 0) return Unsupported("Resize: antialias is not supported");
    KILN_ASSIGN_OR_RETURN(std::string policy, node.GetString("keep_aspect_ratio_policy", "stretch"));
    if (policy != "stretch") return Unsupported("Resize: keep_aspect_ratio_policy '", policy, "' is not supported");
    KILN_ASSIGN_OR_RETURN(o.axes, node.GetInts("axes"));
    return std::unique_ptr<OpKernel>(new ResizeKernel(std::move(o)));
  };
}

}  // namespace

void RegisterResizeOps(KernelRegistry& r) {
  r.Register(KernelDef{"Upsample", "", 7, 8, ResizeFactory(7)});
  r.Register(KernelDef{"Upsample", "", 9, 9, ResizeFactory(9)});
  r.Register(KernelDef{"Resize", "", 10, 10, ResizeFactory(10)});
  r.Register(KernelDef{"Resize", "", 11, kNoMaxOpset, ResizeFactory(11)});
}

}  // namespace kiln::kernels
