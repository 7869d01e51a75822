#include "runtime/output_comparison.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>

#include <spdlog/fmt/fmt.h>

namespace kiln::runtime {
namespace {

// See VerificationTolerance in the header for what each covers.
constexpr double kArithmeticTolerance = 1e-4;
constexpr double kTranscendentalTolerance = 1e-3;
constexpr double kAccumulationTolerance = 1e-5;  // times sqrt(terms summed)

// Ops whose value each tier approximates its own way, with the fused ops
// (kernels whose interpreter version computes one of them inside).
bool IsTranscendental(std::string_view op) {
  static constexpr std::string_view kOps[] = {
      "Elu",     "Erf",     "Exp",      "Gelu", "HardSwish", "LayerNormalization", "Log",        "LogSoftmax", "Pow",
      "Sigmoid", "Softmax", "Softplus", "Sqrt", "Tanh",      "Reciprocal",         "ReduceMean",
  };
  return std::find(std::begin(kOps), std::end(kOps), op) != std::end(kOps);
}

int64_t Product(const Dims& dims, size_t from) {
  int64_t product = 1;
  for (size_t d = from; d < dims.size(); ++d) product *= dims[d];
  return product;
}

}  // namespace

int64_t AccumulationLength(const graph::Graph& graph, const graph::Region& region, const ShapeSignature& signature) {
  switch (region.kind) {
    case graph::RegionKind::kElementwise: return 1;
    case graph::RegionKind::kRowReduction: {
      // The rows are the domain's dims from row_axis on; the widest input
      // of full rank has them.
      int64_t longest = 1;
      for (const Dims& dims : signature.dims) {
        if (region.row_axis >= 0 && dims.size() > static_cast<size_t>(region.row_axis)) {
          longest = std::max(longest, Product(dims, static_cast<size_t>(region.row_axis)));
        }
      }
      return longest;
    }
    case graph::RegionKind::kGemm:
      // A [.., M, K]: region input 0.
      return signature.dims.empty() || signature.dims[0].empty() ? 1 : signature.dims[0].back();
    case graph::RegionKind::kDepthwiseConv: {
      // The weight [C, 1, KH, KW] sums KH * KW taps per output element.
      if (region.nodes.empty()) return 1;
      const graph::Node& conv = graph.node(region.nodes[0]);
      if (conv.inputs.size() < 2) return 1;
      const graph::ShapeInfo& weight = graph.value(conv.inputs[1]).shape;
      if (!weight.is_concrete()) return 1;
      const Dims dims = weight.ConcreteDims();
      return dims.size() >= 2 ? Product(dims, 2) : 1;
    }
    case graph::RegionKind::kAttention: {
      // Scores sum over the head dim, outputs over the keys: the longest
      // operand dim bounds both.
      int64_t longest = 1;
      for (const Dims& dims : signature.dims) {
        for (int64_t d : dims) longest = std::max(longest, d);
      }
      return longest;
    }
    case graph::RegionKind::kLstm: {
      // Each gate sums input + hidden products per step (X [seq, batch,
      // input] is region input 0); the gates' sigmoids and tanh damp what
      // earlier steps' rounding carries into the state.
      if (region.nodes.empty() || signature.dims.empty() || signature.dims[0].size() != 3) return 1;
      const graph::Node& lstm = graph.node(region.nodes[0]);
      StatusOr<int64_t> hidden = lstm.GetInt("hidden_size", 0);
      return signature.dims[0][2] + (hidden.ok() ? *hidden : 0);
    }
  }
  return 1;
}

double VerificationTolerance(const graph::Graph& graph, const graph::Region& region, const ShapeSignature& signature) {
  bool transcendental = region.kind == graph::RegionKind::kRowReduction;  // Softmax, LayerNorm: exp, rsqrt
  for (graph::NodeId id : region.nodes) transcendental = transcendental || IsTranscendental(graph.node(id).op_type);
  // Fused epilogues (a GEMM's or convolution's GELU, sigmoid) are attributes
  // of one node, not nodes: such regions may approximate too.
  if (region.kind == graph::RegionKind::kGemm || region.kind == graph::RegionKind::kDepthwiseConv ||
      region.kind == graph::RegionKind::kAttention || region.kind == graph::RegionKind::kLstm) {
    transcendental = true;
  }
  const double terms = static_cast<double>(std::max<int64_t>(1, AccumulationLength(graph, region, signature)));
  return (transcendental ? kTranscendentalTolerance : kArithmeticTolerance) + kAccumulationTolerance * std::sqrt(terms);
}

std::string OutputComparison::ToString(double tolerance) const {
  if (!problem.empty()) return problem;
  return fmt::format(
      "largest difference {:g} at output {} element {} (compiled {:g}, interpreted {:g}, tolerance {:g})",
      largest_difference, output, element, compiled, interpreted, tolerance);
}

namespace {

// |got - want| in units of max(1, |want|): NaN matches NaN, an infinity
// only itself, and anything else against NaN or an infinity is infinitely
// far.
double ScaledDifference(double got, double want, double& absolute) {
  if (std::isnan(got) || std::isnan(want)) {
    absolute = std::isnan(got) && std::isnan(want) ? 0 : std::numeric_limits<double>::infinity();
    return absolute;
  }
  if (std::isinf(got) || std::isinf(want)) {
    absolute = got == want ? 0 : std::numeric_limits<double>::infinity();
    return absolute;
  }
  absolute = std::fabs(got - want);
  return absolute / std::max(1.0, std::fabs(want));
}

#ifdef __AVX2__
// Whether all 8 elements at `got` and `want` are finite on the `want` side
// and no worse than `worst` (scaled as ScaledDifference does). Float
// arithmetic rounds, so the test is made against worst * (1 - 1e-5): a
// passing element is then strictly better than `worst` in double too, and
// a doubtful one fails and takes the exact path.
bool BlockNoWorse(const float* got, const float* want, double worst) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 g = _mm256_loadu_ps(got);
  const __m256 w = _mm256_loadu_ps(want);
  const __m256 difference = _mm256_and_ps(_mm256_sub_ps(g, w), abs_mask);
  const __m256 magnitude = _mm256_and_ps(w, abs_mask);
  const __m256 limit = _mm256_mul_ps(_mm256_set1_ps(static_cast<float>(worst * (1 - 1e-5))),
                                     _mm256_max_ps(_mm256_set1_ps(1.f), magnitude));
  const __m256 finite = _mm256_cmp_ps(magnitude, _mm256_set1_ps(std::numeric_limits<float>::infinity()), _CMP_LT_OQ);
  const __m256 ok = _mm256_and_ps(_mm256_cmp_ps(difference, limit, _CMP_LE_OQ), finite);
  return _mm256_movemask_ps(ok) == 0xff;
}
#endif

}  // namespace

void CompareOutput(size_t output, const Tensor& compiled, const Tensor& interpreted, double tolerance,
                   OutputComparison& into) {
  if (compiled.dtype() != interpreted.dtype() || compiled.dims() != interpreted.dims()) {
    into.equal = false;
    into.output = output;
    into.problem =
        fmt::format("output {} is {} {} compiled but {} {} interpreted", output, DTypeName(compiled.dtype()),
                    DimsToString(compiled.dims()), DTypeName(interpreted.dtype()), DimsToString(interpreted.dims()));
    return;
  }
  if (compiled.dtype() != DType::kFloat32) {
    if (std::memcmp(compiled.raw_data(), interpreted.raw_data(), compiled.byte_size()) == 0) return;
    into.equal = false;
    into.output = output;
    into.problem = fmt::format("output {} ({}) differs bitwise between the tiers", output, DTypeName(compiled.dtype()));
    return;
  }
  const float* got = compiled.data<float>();
  const float* want = interpreted.data<float>();
  if (tolerance == kBitwise) {
    for (int64_t i = 0; i < compiled.num_elements(); ++i) {
      if (std::memcmp(got + i, want + i, sizeof(float)) == 0) continue;
      into.equal = false;
      into.output = output;
      into.element = i;
      into.compiled = got[i];
      into.interpreted = want[i];
      double absolute = 0;
      ScaledDifference(got[i], want[i], absolute);
      into.largest_difference = absolute;
      into.problem = fmt::format("output {} element {} differs in its bits (compiled {:a}, interpreted {:a})", output,
                                 i, got[i], want[i]);
      return;
    }
    return;
  }
  // The worst element over all outputs is kept in `into`; its scaled
  // difference is recomputed rather than stored, a division per output.
  double worst = 0;
  if (into.largest_difference > 0) {
    double unused = 0;
    worst = ScaledDifference(into.compiled, into.interpreted, unused);
  }
  // This runs on the request that verifies, over every element of every
  // output, so the common case takes no division: an element no worse than
  // the worst so far changes nothing (if it is past the tolerance, so is
  // the worst, and `equal` is already false). NaN and infinities take the
  // exact path (an infinite `want` would make any difference look small).
  const int64_t n = compiled.num_elements();
  for (int64_t i = 0; i < n; ++i) {
#ifdef __AVX2__
    // Eight at a time while they are all no worse.
    while (i % 8 == 0 && n - i >= 8 && BlockNoWorse(got + i, want + i, worst)) i += 8;
    if (i == n) break;
#endif
    const double got_i = got[i];
    const double want_i = want[i];
    const double want_magnitude = std::fabs(want_i);
    if (want_magnitude < std::numeric_limits<double>::infinity() &&
        std::fabs(got_i - want_i) <= worst * std::max(1.0, want_magnitude)) {
      continue;
    }
    double absolute = 0;
    const double scaled = ScaledDifference(got_i, want_i, absolute);
    if (scaled > tolerance) into.equal = false;
    if (scaled > worst) {
      worst = scaled;
      into.output = output;
      into.element = i;
      into.compiled = got[i];
      into.interpreted = want[i];
      into.largest_difference = absolute;
    }
  }
}

}  // namespace kiln::runtime
