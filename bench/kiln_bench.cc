// kiln's benchmark harness (Google Benchmark, real time, named arguments).
//
// Five groups, so that every kiln number can be read against a roof:
//  - machine roofs: STREAM-style triad bandwidth and a vector FMA peak;
//  - kernels and regions: a fused elementwise chain and a decomposed
//    LayerNorm + GELU, each interpreted and JIT-compiled (the pair is what
//    the report turns into a speedup), and a 512^3 MatMul in FLOP/s;
//  - GEMM with a constant weight on one thread: the JIT's generated GEMM,
//    the interpreter's packed kernel and oneDNN (gemm_bench.h), with an
//    AVX-512 FMA peak;
//  - whole models from `--models_dir` (the //tools:demo_models outputs):
//    steady-state runs per tier and thread count, and cold start;
//  - the benchmark model zoo from `--zoo_dir` (//bench/models:zoo), see
//    zoo_bench.h, checked against ONNX Runtime's outputs in `--ort_outputs`,
//    and the request latency while the zoo's models tier up
//    (tier_up_latency.h).
//
// Every interp/jit pair runs both tiers once before timing and compares the
// outputs; a pair that disagrees is reported as an error, not a time.
//
// Usage: kiln_bench --models_dir=DIR [--zoo_dir=DIR [--ort_outputs=DIR]]
//                   [--benchmark_* flags]
// (`bench/run` builds it, runs it and writes the report.)

#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "bench/concurrent_requests.h"
#include "bench/gemm_bench.h"
#include "bench/shape_stream.h"
#include "bench/tier_up_latency.h"
#include "bench/tier_up_under_load.h"
#include "bench/zoo_bench.h"
#include "kiln/session.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "test/model_builder.h"
#include "test/tensors.h"
#include "tools/npy.h"

namespace kiln::bench {
namespace {

using kiln::testing::OnnxModelBuilder;
using kiln::testing::RandomFloats;
using kiln::testing::RandomTensor;

constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

// Largest relative difference between tiers we accept before timing. The
// JIT contracts multiply-adds and uses its own polynomial approximations, so
// bit equality is not expected; 1e-4 catches real miscompiles.
constexpr double kMaxRelDiff = 1e-4;
// Elements smaller than this fraction of the tensor's largest magnitude are
// compared against that fraction instead of their own size: after a MatMul
// or a mean, values near zero come from cancellation, and a last-bit
// difference in the summands is a large relative error for them that says
// nothing about correctness (seen in transformer_tiny: |diff| 2e-7 on
// values of 2e-3 in an output whose scale is 0.1).
constexpr double kRelDiffScaleFloor = 0.1;

// ---------------------------------------------------------------------------
// Small helpers

// Max over elements of |a - b| / max(|a|, |b|, kRelDiffScaleFloor * scale),
// where scale is the largest finite magnitude in either tensor; +inf when the
// tensors do not have the same dtype and shape, or one side has a NaN where
// the other does not.
double MaxRelDiff(const Tensor& a, const Tensor& b) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  if (a.dtype() != b.dtype() || a.dims() != b.dims()) return kInf;
  if (a.dtype() != DType::kFloat32) {
    return std::memcmp(a.raw_data(), b.raw_data(), a.byte_size()) == 0 ? 0.0 : kInf;
  }
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  double scale = 0;
  for (int64_t i = 0; i < a.num_elements(); ++i) {
    for (const double v : {std::fabs(double{pa[i]}), std::fabs(double{pb[i]})}) {
      if (std::isfinite(v)) scale = std::max(scale, v);
    }
  }
  const double abs_floor = std::max(kRelDiffScaleFloor * scale, std::numeric_limits<double>::min());
  double worst = 0;
  for (int64_t i = 0; i < a.num_elements(); ++i) {
    const double x = pa[i], y = pb[i];
    if (std::isnan(x) || std::isnan(y)) {
      if (std::isnan(x) != std::isnan(y)) return kInf;
      continue;
    }
    if (x == y) continue;  // also equal infinities
    if (std::isinf(x) || std::isinf(y)) return kInf;
    const double denom = std::max({std::fabs(x), std::fabs(y), abs_floor});
    worst = std::max(worst, std::fabs(x - y) / denom);
  }
  return worst;
}

SessionOptions TierOptions(TierPolicy tier, int threads) {
  SessionOptions options;
  options.tier = tier;
  options.intra_op_threads = threads;
  return options;
}

// ---------------------------------------------------------------------------
// Machine roofs

// a[i] = b[i] + s * c[i] over three float arrays of `mib`/3 MiB each, counted
// as STREAM does: 3 * 4 bytes per element (write-allocate traffic not
// counted). With ->Threads(k) each thread streams its own arrays, so the
// reported rate is the machine's aggregate bandwidth.
void BM_StreamTriad(benchmark::State& state, int64_t mib) {
  const size_t total_bytes = static_cast<size_t>(mib) << 20;
  const size_t n = total_bytes / (3 * sizeof(float)) / 8 * 8;
  // Value-initialised by this thread: every page is touched (and placed)
  // before timing starts.
  std::vector<float> a(n, 0.0f), b(n, 1.0f), c(n, 2.0f);
  const __m256 s = _mm256_set1_ps(3.0f);
  for (auto _ : state) {
    float* __restrict pa = a.data();
    const float* __restrict pb = b.data();
    const float* __restrict pc = c.data();
    for (size_t i = 0; i < n; i += 8) {
      _mm256_storeu_ps(pa + i, _mm256_fmadd_ps(s, _mm256_loadu_ps(pc + i), _mm256_loadu_ps(pb + i)));
    }
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(a[n / 2]);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(3 * n * sizeof(float)));
}

// Read-only bandwidth: the sum of one float array of `mib` MiB, with eight
// accumulators so the adds never wait on each other. This is the roof of a
// GEMV whose weight no cache holds, which only reads: the triad's mix of
// reads and writes (and write-allocate traffic) is a different roof.
void BM_StreamRead(benchmark::State& state, int64_t mib) {
  const size_t n = (static_cast<size_t>(mib) << 20) / sizeof(float) / 64 * 64;
  std::vector<float> a(n, 1.0f);  // touched (and placed) by this thread
  for (auto _ : state) {
    const float* __restrict p = a.data();
    __m256 s[8];
    for (__m256& v : s) v = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 64) {
      for (int j = 0; j < 8; ++j) s[j] = _mm256_add_ps(s[j], _mm256_loadu_ps(p + i + 8 * j));
    }
    for (int j = 1; j < 8; ++j) s[0] = _mm256_add_ps(s[0], s[j]);
    benchmark::DoNotOptimize(s[0]);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n * sizeof(float)));
}

// Independent 256-bit FMA chains: enough accumulators (12) to cover FMA
// latency (4-5 cycles) times the FMA ports (2 on current x86 cores), so the
// loop is throughput bound. 2 FLOP per lane per FMA.
void BM_FmaPeak(benchmark::State& state) {
  constexpr int kInner = 1024;
  constexpr int kAccumulators = 12;
  const __m256 mul = _mm256_set1_ps(0.9999999f);
  const __m256 add = _mm256_set1_ps(1e-7f);
  __m256 a0 = _mm256_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
  __m256 a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
  for (auto _ : state) {
    for (int i = 0; i < kInner; ++i) {
      a0 = _mm256_fmadd_ps(a0, mul, add);
      a1 = _mm256_fmadd_ps(a1, mul, add);
      a2 = _mm256_fmadd_ps(a2, mul, add);
      a3 = _mm256_fmadd_ps(a3, mul, add);
      a4 = _mm256_fmadd_ps(a4, mul, add);
      a5 = _mm256_fmadd_ps(a5, mul, add);
      a6 = _mm256_fmadd_ps(a6, mul, add);
      a7 = _mm256_fmadd_ps(a7, mul, add);
      a8 = _mm256_fmadd_ps(a8, mul, add);
      a9 = _mm256_fmadd_ps(a9, mul, add);
      a10 = _mm256_fmadd_ps(a10, mul, add);
      a11 = _mm256_fmadd_ps(a11, mul, add);
    }
  }
  __m256 sum = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  sum = _mm256_add_ps(sum, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float lanes[8];
  _mm256_storeu_ps(lanes, sum);
  benchmark::DoNotOptimize(lanes[0]);
  const double flops_per_iter = 2.0 * 8 * kAccumulators * kInner;
  state.counters["flops"] =
      benchmark::Counter(flops_per_iter * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// ---------------------------------------------------------------------------
// Interp/JIT pairs

// One model with an interpreted and a JIT session over the same inputs,
// built once per benchmark family member and kept for all its repetitions.
struct TierPair {
  std::string error;  // non-empty: setup failed or the tiers disagree
  std::shared_ptr<const Model> model;
  std::unique_ptr<Session> interp;
  std::unique_ptr<Session> jit;
  std::vector<NamedTensor> inputs;
  int64_t io_bytes = 0;  // inputs + outputs of one run
  double max_rel_diff = 0;
};

StatusOr<std::vector<NamedTensor>> RunWarm(const Session& session, const std::vector<NamedTensor>& inputs, int runs) {
  StatusOr<std::vector<NamedTensor>> outputs = Internal("no run");
  for (int i = 0; i < runs; ++i) {
    outputs = session.Run(inputs);
    if (!outputs.ok()) return outputs.status();
  }
  return outputs;
}

// Builds both sessions, warms them up (the kJit session compiles every
// region on its first run) and compares their outputs.
Status PreparePair(std::shared_ptr<const Model> model, std::vector<NamedTensor> inputs, int threads, TierPair& pair) {
  pair.model = std::move(model);
  pair.inputs = std::move(inputs);
  KILN_ASSIGN_OR_RETURN(pair.interp, Session::Create(pair.model, TierOptions(TierPolicy::kInterpreter, threads)));
  KILN_ASSIGN_OR_RETURN(pair.jit, Session::Create(pair.model, TierOptions(TierPolicy::kJit, threads)));
  constexpr int kWarmupRuns = 3;
  KILN_ASSIGN_OR_RETURN(std::vector<NamedTensor> interp_out, RunWarm(*pair.interp, pair.inputs, kWarmupRuns));
  KILN_ASSIGN_OR_RETURN(std::vector<NamedTensor> jit_out, RunWarm(*pair.jit, pair.inputs, 1));
  pair.jit->WaitForCompiles();
  KILN_ASSIGN_OR_RETURN(jit_out, RunWarm(*pair.jit, pair.inputs, kWarmupRuns));

  pair.io_bytes = 0;
  for (const NamedTensor& in : pair.inputs) pair.io_bytes += static_cast<int64_t>(in.tensor.byte_size());
  for (const NamedTensor& out : interp_out) pair.io_bytes += static_cast<int64_t>(out.tensor.byte_size());

  if (interp_out.size() != jit_out.size()) {
    return Internal("outputs differ: interp has ", interp_out.size(), " outputs, jit ", jit_out.size());
  }
  std::string worst_name;
  for (size_t i = 0; i < interp_out.size(); ++i) {
    const double diff = MaxRelDiff(interp_out[i].tensor, jit_out[i].tensor);
    if (diff >= pair.max_rel_diff) {
      pair.max_rel_diff = diff;
      worst_name = interp_out[i].name;
    }
  }
  if (!(pair.max_rel_diff <= kMaxRelDiff)) {
    return Internal("outputs differ: max relative diff ", pair.max_rel_diff, " in '", worst_name,
                    "' (interp vs jit, limit ", kMaxRelDiff, ")");
  }
  return Status();
}

// Pairs by key, created on first use so that a --benchmark_filter only
// builds what it runs. Benchmarks run one at a time; the mutex is for
// safety, not contention.
TierPair& GetPair(const std::string& key, const std::function<Status(TierPair&)>& prepare) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<TierPair>> pairs;
  std::lock_guard<std::mutex> lock(mu);
  std::unique_ptr<TierPair>& slot = pairs[key];
  if (!slot) {
    slot = std::make_unique<TierPair>();
    Status status = prepare(*slot);
    if (!status.ok()) slot->error = status.message() + " [" + key + "]";
  }
  return *slot;
}

// Times `pair`'s session for one tier. Counters: bytes_per_second (inputs +
// outputs per run), the tier comparison, and for the JIT side how many
// regions were compiled and what that cost (reported apart from run time).
void TimeTier(benchmark::State& state, TierPair& pair, bool jit) {
  if (!pair.error.empty()) {
    state.SkipWithError(pair.error.c_str());
    return;
  }
  const Session& session = jit ? *pair.jit : *pair.interp;
  for (auto _ : state) {
    StatusOr<std::vector<NamedTensor>> outputs = session.Run(pair.inputs);
    if (!outputs.ok()) {
      state.SkipWithError(outputs.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(outputs->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * pair.io_bytes);
  state.counters["max_rel_diff"] = pair.max_rel_diff;
  const SessionStats stats = pair.jit->stats();
  double compile_ms = 0;
  int compiled = 0;
  for (const RegionStats& region : stats.regions) {
    compile_ms += region.compile_ms;
    if (region.specializations > 0) ++compiled;
  }
  state.counters["regions"] = static_cast<double>(stats.regions.size());
  state.counters["regions_compiled"] = jit ? compiled : 0;
  state.counters["compile_ms"] = jit ? compile_ms : 0;
  if (jit && compiled == 0 && !stats.regions.empty()) state.SetLabel("JIT compiled no region: timing is interpreted");
}

// Session threads for the region microbenchmarks: one, so that the numbers
// compare with the single-thread triad and FMA roofs.
constexpr int kMicroThreads = 1;

std::shared_ptr<const Model> LoadBuilt(const OnnxModelBuilder& builder, Status& status,
                                       const LoadOptions& options = {}) {
  const std::string bytes = builder.Serialize();
  StatusOr<std::shared_ptr<const Model>> model = Model::LoadFromBytes(bytes.data(), bytes.size(), "", options);
  if (!model.ok()) {
    status = model.status();
    return nullptr;
  }
  return *model;
}

Status PrepareBuilt(const OnnxModelBuilder& builder, const Dims& input_dims, TierPair& pair,
                    const LoadOptions& options = {}) {
  Status status;
  std::shared_ptr<const Model> model = LoadBuilt(builder, status, options);
  KILN_RETURN_IF_ERROR(status);
  KILN_ASSIGN_OR_RETURN(Tensor x, RandomTensor(input_dims, 7, -2.0f, 2.0f));
  return PreparePair(std::move(model), {{"x", std::move(x)}}, kMicroThreads, pair);
}

// A 7-op elementwise chain on [n, 1024], the shape of an MLP activation
// block: t = x * a + b; SiLU(t) = t * Sigmoid(t); + x (residual); Relu; * d.
// a, b, d are per-channel [1024] constants (broadcast along rows).
OnnxModelBuilder ElementwiseChainModel(int64_t n) {
  constexpr int64_t kChannels = 1024;
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {n, kChannels});
  b.FloatInit("a", {kChannels}, RandomFloats(kChannels, 1, 0.5f, 1.5f));
  b.FloatInit("b", {kChannels}, RandomFloats(kChannels, 2, -0.5f, 0.5f));
  b.FloatInit("d", {kChannels}, RandomFloats(kChannels, 3, 0.5f, 1.5f));
  b.Node("Mul", {"x", "a"}, {"t0"});
  b.Node("Add", {"t0", "b"}, {"t1"});
  b.Node("Sigmoid", {"t1"}, {"t2"});
  b.Node("Mul", {"t1", "t2"}, {"t3"});
  b.Node("Add", {"t3", "x"}, {"t4"});
  b.Node("Relu", {"t4"}, {"t5"});
  b.Node("Mul", {"t5", "d"}, {"y"});
  b.Output("y");
  return b;
}

// LayerNorm over the last axis and exact GELU, decomposed the way PyTorch's
// exporter writes them (opset 17, ReduceMean axes as an attribute):
//   LN:   mean, x - mean, ^2, mean, + eps, sqrt, /, * gamma, + beta
//   GELU: / sqrt(2), Erf, + 1, * x, * 0.5
OnnxModelBuilder LayerNormGeluModel(const Dims& dims, const std::vector<std::string>& dim_names = {}) {
  const int64_t channels = dims.back();
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, dims, dim_names);
  b.FloatInit("gamma", {channels}, RandomFloats(channels, 4, 0.5f, 1.5f));
  b.FloatInit("beta", {channels}, RandomFloats(channels, 5, -0.5f, 0.5f));
  b.FloatInit("two", {}, {2.0f});
  b.FloatInit("eps", {}, {1e-5f});
  b.FloatInit("sqrt2", {}, {1.4142135f});
  b.FloatInit("one", {}, {1.0f});
  b.FloatInit("half", {}, {0.5f});
  OnnxModelBuilder::IntsAttr(b.Node("ReduceMean", {"x"}, {"mean"}), "axes", {-1});
  b.Node("Sub", {"x", "mean"}, {"centered"});
  b.Node("Pow", {"centered", "two"}, {"squared"});
  OnnxModelBuilder::IntsAttr(b.Node("ReduceMean", {"squared"}, {"var"}), "axes", {-1});
  b.Node("Add", {"var", "eps"}, {"var_eps"});
  b.Node("Sqrt", {"var_eps"}, {"stddev"});
  b.Node("Div", {"centered", "stddev"}, {"normed"});
  b.Node("Mul", {"normed", "gamma"}, {"scaled"});
  b.Node("Add", {"scaled", "beta"}, {"ln"});
  b.Node("Div", {"ln", "sqrt2"}, {"g0"});
  b.Node("Erf", {"g0"}, {"g1"});
  b.Node("Add", {"g1", "one"}, {"g2"});
  b.Node("Mul", {"ln", "g2"}, {"g3"});
  b.Node("Mul", {"g3", "half"}, {"y"});
  b.Output("y");
  return b;
}

// Attention probabilities, as a transformer computes them per head: scores
// [b, q, k] scaled by 1/sqrt(64), plus an additive key mask [b, 1, k] (0, or
// -1e4 for the last eighth of the keys: padding), then Softmax over the keys
// (opset 13). One row-reduction region: scale and mask are recomputed in
// both of Softmax's passes instead of going through memory.
OnnxModelBuilder SoftmaxAttentionModel(const Dims& dims) {
  const int64_t batch = dims[0];
  const int64_t keys = dims[2];
  std::vector<float> mask(static_cast<size_t>(batch * keys), 0.0f);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t k = keys - keys / 8; k < keys; ++k) mask[static_cast<size_t>(b * keys + k)] = -1e4f;
  }
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, dims);
  b.FloatInit("scale", {}, {0.125f});
  b.FloatInit("mask", {batch, 1, keys}, mask);
  b.Node("Mul", {"x", "scale"}, {"scaled"});
  b.Node("Add", {"scaled", "mask"}, {"masked"});
  b.Node("Softmax", {"masked"}, {"y"});
  b.Output("y");
  return b;
}

// Multi-head self-attention as torch.onnx exports it, from the per-head
// views of the projections on: q, k, v [1, seq, heads, 64], Transposes to
// [1, heads, seq, 64] (K to [1, heads, 64, seq]), MatMul(Q, K^T), Div by
// sqrt(64), Softmax, MatMul(., V), Transpose back. The JIT compiles it as
// one attention region; the interpreter runs the nodes one by one.
OnnxModelBuilder AttentionRegionModel(int64_t heads, int64_t seq) {
  constexpr int64_t kHeadDim = 64;
  OnnxModelBuilder b(17);
  for (const char* x : {"q", "k", "v"}) b.Input(x, kFloat, {1, seq, heads, kHeadDim});
  b.FloatInit("root", {}, {8.0f});
  OnnxModelBuilder::IntsAttr(b.Node("Transpose", {"q"}, {"qh"}), "perm", {0, 2, 1, 3});
  OnnxModelBuilder::IntsAttr(b.Node("Transpose", {"k"}, {"kt"}), "perm", {0, 2, 3, 1});
  OnnxModelBuilder::IntsAttr(b.Node("Transpose", {"v"}, {"vh"}), "perm", {0, 2, 1, 3});
  b.Node("MatMul", {"qh", "kt"}, {"scores"});
  b.Node("Div", {"scores", "root"}, {"scaled"});
  OnnxModelBuilder::IntAttr(b.Node("Softmax", {"scaled"}, {"probs"}), "axis", -1);
  b.Node("MatMul", {"probs", "vh"}, {"ctx"});
  OnnxModelBuilder::IntsAttr(b.Node("Transpose", {"ctx"}, {"y"}), "perm", {0, 2, 1, 3});
  b.Output("y");
  return b;
}

Status PrepareAttention(int64_t heads, int64_t seq, TierPair& pair) {
  Status status;
  std::shared_ptr<const Model> model = LoadBuilt(AttentionRegionModel(heads, seq), status);
  KILN_RETURN_IF_ERROR(status);
  std::vector<NamedTensor> inputs;
  uint32_t seed = 11;
  for (const char* x : {"q", "k", "v"}) {
    KILN_ASSIGN_OR_RETURN(Tensor t, RandomTensor({1, seq, heads, 64}, seed++, -2.0f, 2.0f));
    inputs.push_back({x, std::move(t)});
  }
  return PreparePair(std::move(model), std::move(inputs), kMicroThreads, pair);
}

// A single [m, k] x [k, n] MatMul with constant weights.
OnnxModelBuilder MatMulModel(int64_t m, int64_t n, int64_t k) {
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {m, k});
  b.FloatInit("w", {k, n}, RandomFloats(k * n, 6, -1.0f, 1.0f));
  b.Node("MatMul", {"x", "w"}, {"y"});
  b.Output("y");
  return b;
}

void BM_MatMul(benchmark::State& state, int64_t m, int64_t n, int64_t k, int threads) {
  Status status;
  std::shared_ptr<const Model> model = LoadBuilt(MatMulModel(m, n, k), status);
  StatusOr<std::unique_ptr<Session>> session = Internal("not created");
  StatusOr<Tensor> x = RandomTensor({m, k}, 8, -2.0f, 2.0f);
  if (status.ok()) session = Session::Create(model, TierOptions(TierPolicy::kInterpreter, threads));
  if (!status.ok() || !session.ok() || !x.ok()) {
    const Status& error = !status.ok() ? status : !session.ok() ? session.status() : x.status();
    state.SkipWithError(error.ToString().c_str());
    return;
  }
  const std::vector<NamedTensor> inputs = {{"x", *x}};
  for (int i = 0; i < 2; ++i) (void)(*session)->Run(inputs);  // warm up (packs the weight once)
  for (auto _ : state) {
    StatusOr<std::vector<NamedTensor>> outputs = (*session)->Run(inputs);
    if (!outputs.ok()) {
      state.SkipWithError(outputs.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(outputs->data());
  }
  state.counters["flops"] = benchmark::Counter(
      2.0 * static_cast<double>(m * n * k) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// ---------------------------------------------------------------------------
// Demo models

struct ModelFile {
  std::string path;
  std::string input_path;
};

ModelFile DemoModel(const std::string& dir, const std::string& name) {
  return {dir + "/" + name + ".onnx", dir + "/" + name + "_input_0.npy"};
}

// The model and its reference input, with the input named as the model
// declares it.
Status LoadModelAndInput(const ModelFile& file, const LoadOptions& options, std::shared_ptr<const Model>& model,
                         std::vector<NamedTensor>& inputs) {
  KILN_ASSIGN_OR_RETURN(model, Model::Load(file.path, options));
  if (model->inputs().size() != 1) {
    return Unsupported(file.path, ": the benchmark feeds one input, the model has ", model->inputs().size());
  }
  KILN_ASSIGN_OR_RETURN(Tensor x, tools::ReadNpy(file.input_path));
  inputs = {{model->inputs()[0].name, std::move(x)}};
  return Status();
}

Status PrepareModelPair(const ModelFile& file, int threads, TierPair& pair, const LoadOptions& options = {}) {
  std::shared_ptr<const Model> model;
  std::vector<NamedTensor> inputs;
  KILN_RETURN_IF_ERROR(LoadModelAndInput(file, options, model, inputs));
  return PreparePair(std::move(model), std::move(inputs), threads, pair);
}

// Load + Create + first Run, as a process that serves one request would see
// it (interpreter tier, default threads).
void BM_ColdStart(benchmark::State& state, const ModelFile& file) {
  StatusOr<Tensor> input = tools::ReadNpy(file.input_path);
  if (!input.ok()) {
    state.SkipWithError(input.status().ToString().c_str());
    return;
  }
  SessionOptions options;
  options.tier = TierPolicy::kInterpreter;
  for (auto _ : state) {
    StatusOr<std::shared_ptr<const Model>> model = Model::Load(file.path);
    if (!model.ok()) {
      state.SkipWithError(model.status().ToString().c_str());
      break;
    }
    StatusOr<std::unique_ptr<Session>> session = Session::Create(*model, options);
    if (!session.ok()) {
      state.SkipWithError(session.status().ToString().c_str());
      break;
    }
    StatusOr<std::vector<NamedTensor>> outputs = (*session)->Run({{(*model)->inputs()[0].name, *input}});
    if (!outputs.ok()) {
      state.SkipWithError(outputs.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(outputs->data());
  }
}

// ---------------------------------------------------------------------------
// Registration

const char* TierArg(bool jit) { return jit ? "jit" : "interp"; }

// "tier:opbyop" rows time the interpreter on the model loaded with
// GraphOptimization::kBasic, where every node is one of the model's ops.
constexpr const char* kOpByOpTier = "opbyop";

LoadOptions BasicGraph() {
  LoadOptions options;
  options.graph_optimization = GraphOptimization::kBasic;
  return options;
}

void RegisterRoofs() {
  for (int threads : {1, 2}) {
    benchmark::RegisterBenchmark("BM_StreamTriad/MiB:64", BM_StreamTriad, 64)->Threads(threads)->UseRealTime();
    benchmark::RegisterBenchmark("BM_StreamRead/MiB:64", BM_StreamRead, 64)->Threads(threads)->UseRealTime();
    benchmark::RegisterBenchmark("BM_FmaPeak", BM_FmaPeak)->Threads(threads)->UseRealTime();
  }
}

void RegisterRegions() {
  for (int64_t n : {64, 256, 1024}) {
    for (bool jit : {false, true}) {
      const std::string name = std::string("BM_ElementwiseRegion/tier:") + TierArg(jit) + "/n:" + std::to_string(n);
      benchmark::RegisterBenchmark(name.c_str(), [n, jit](benchmark::State& state) {
        TierPair& pair = GetPair("elementwise/n:" + std::to_string(n), [n](TierPair& p) {
          return PrepareBuilt(ElementwiseChainModel(n), {n, 1024}, p);
        });
        TimeTier(state, pair, jit);
      })->UseRealTime();
    }
  }
  const std::vector<Dims> shapes = {{1, 128, 256}, {1, 1024, 1024}};
  for (const Dims& dims : shapes) {
    std::string shape;
    for (int64_t d : dims) shape += (shape.empty() ? "" : "x") + std::to_string(d);
    for (bool jit : {false, true}) {
      const std::string name = std::string("BM_LayerNormGelu/tier:") + TierArg(jit) + "/shape:" + shape;
      benchmark::RegisterBenchmark(name.c_str(), [dims, shape, jit](benchmark::State& state) {
        TierPair& pair = GetPair("layernorm_gelu/" + shape,
                                 [dims](TierPair& p) { return PrepareBuilt(LayerNormGeluModel(dims), dims, p); });
        TimeTier(state, pair, jit);
      })->UseRealTime();
    }
    // The same block interpreted op by op (no load-time LayerNorm/GELU
    // fusion): the baseline the "compiled vs interpreted" goal
    // names.
    const std::string name = std::string("BM_LayerNormGelu/tier:") + kOpByOpTier + "/shape:" + shape;
    benchmark::RegisterBenchmark(name.c_str(), [dims, shape](benchmark::State& state) {
      TierPair& pair = GetPair("layernorm_gelu_basic/" + shape, [dims](TierPair& p) {
        return PrepareBuilt(LayerNormGeluModel(dims), dims, p, BasicGraph());
      });
      TimeTier(state, pair, /*jit=*/false);
    })->UseRealTime();
  }
  const std::vector<Dims> attention_shapes = {{4, 128, 128}, {12, 384, 384}};
  for (const Dims& dims : attention_shapes) {
    std::string shape;
    for (int64_t d : dims) shape += (shape.empty() ? "" : "x") + std::to_string(d);
    for (bool jit : {false, true}) {
      const std::string name = std::string("BM_SoftmaxAttention/tier:") + TierArg(jit) + "/shape:" + shape;
      benchmark::RegisterBenchmark(name.c_str(), [dims, shape, jit](benchmark::State& state) {
        TierPair& pair = GetPair("softmax_attention/" + shape,
                                 [dims](TierPair& p) { return PrepareBuilt(SoftmaxAttentionModel(dims), dims, p); });
        TimeTier(state, pair, jit);
      })->UseRealTime();
    }
  }
  // Attention at 4 and 12 heads, seq 128 and 384, head dim 64. Counter
  // flops: the two products' 4 * heads * seq^2 * 64 per run, as a rate.
  for (int64_t heads : {4, 12}) {
    for (int64_t seq : {128, 384}) {
      for (bool jit : {false, true}) {
        const std::string shape = "/heads:" + std::to_string(heads) + "/seq:" + std::to_string(seq);
        const std::string name = std::string("BM_AttentionRegion/tier:") + TierArg(jit) + shape;
        benchmark::RegisterBenchmark(name.c_str(), [heads, seq, shape, jit](benchmark::State& state) {
          TierPair& pair = GetPair("attention_region" + shape,
                                   [heads, seq](TierPair& p) { return PrepareAttention(heads, seq, p); });
          TimeTier(state, pair, jit);
          const double flops = 4.0 * static_cast<double>(heads * seq * seq * 64);
          state.counters["flops"] =
              benchmark::Counter(flops * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
        })->UseRealTime();
      }
    }
  }
  for (int threads : {1, 2}) {
    const std::string name = "BM_MatMul/m:512/n:512/k:512/threads:" + std::to_string(threads);
    benchmark::RegisterBenchmark(name.c_str(), BM_MatMul, 512, 512, 512, threads)->UseRealTime();
  }
}

void RegisterModels(const std::string& dir) {
  for (const char* name : {"cnn_small", "transformer_tiny", "mlp"}) {
    const ModelFile file = DemoModel(dir, name);
    for (int threads : {1, 2}) {
      for (bool jit : {false, true}) {
        const std::string bench_name =
            std::string("BM_Model/model:") + name + "/tier:" + TierArg(jit) + "/threads:" + std::to_string(threads);
        const std::string key = std::string("model:") + name + "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(bench_name.c_str(), [file, key, threads, jit](benchmark::State& state) {
          TierPair& pair = GetPair(key, [&](TierPair& p) { return PrepareModelPair(file, threads, p); });
          TimeTier(state, pair, jit);
        })->UseRealTime();
      }
      if (threads == 1) {
        const std::string bench_name = std::string("BM_Model/model:") + name + "/tier:" + kOpByOpTier + "/threads:1";
        benchmark::RegisterBenchmark(bench_name.c_str(), [file, name](benchmark::State& state) {
          TierPair& pair = GetPair(std::string("model_basic:") + name,
                                   [&](TierPair& p) { return PrepareModelPair(file, 1, p, BasicGraph()); });
          TimeTier(state, pair, /*jit=*/false);
        })->UseRealTime();
      }
    }
  }
  for (const char* name : {"cnn_small", "transformer_tiny", "mlp"}) {
    benchmark::RegisterBenchmark((std::string("BM_ColdStart/model:") + name).c_str(), BM_ColdStart,
                                 DemoModel(dir, name))
        ->UseRealTime();
  }
}

// "model name" and the SIMD flags that matter for kiln, for the report.
void AddMachineContext() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model, flags;
  while (std::getline(cpuinfo, line) && (model.empty() || flags.empty())) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && model.empty()) model = value;
    if (key == "flags" && flags.empty()) flags = value;
  }
  std::string simd;
  std::istringstream words(flags);
  for (std::string flag; words >> flag;) {
    if (flag == "avx2" || flag == "fma" || flag == "avx512f" || flag == "avx512bw" || flag == "avx512_vnni" ||
        flag == "avx512_bf16" || flag == "amx_tile") {
      simd += (simd.empty() ? "" : " ") + flag;
    }
  }
  benchmark::AddCustomContext("cpu_model", model.empty() ? "unknown" : model);
  benchmark::AddCustomContext("cpu_simd_flags", simd);
  std::ifstream loadavg("/proc/loadavg");
  std::string load;
  std::getline(loadavg, load);
  benchmark::AddCustomContext("loadavg_at_start", load);
}

}  // namespace
}  // namespace kiln::bench

int main(int argc, char** argv) {
  // --models_dir, --zoo_dir and --ort_outputs are ours: take them out before
  // Google Benchmark sees (and rejects) them.
  std::string models_dir, zoo_dir, ort_outputs;
  const std::pair<const char*, std::string*> own_flags[] = {
      {"--models_dir=", &models_dir}, {"--zoo_dir=", &zoo_dir}, {"--ort_outputs=", &ort_outputs}};
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    bool own = false;
    for (const auto& [prefix, value] : own_flags) {
      if (i > 0 && std::strncmp(argv[i], prefix, std::strlen(prefix)) == 0) {
        *value = argv[i] + std::strlen(prefix);
        own = true;
      }
    }
    if (!own) args.push_back(argv[i]);
  }
  int bench_argc = static_cast<int>(args.size());
  args.push_back(nullptr);

  kiln::bench::RegisterRoofs();
  kiln::bench::RegisterRegions();
  kiln::bench::RegisterGemm();
  if (models_dir.empty()) {
    std::fprintf(stderr, "kiln_bench: no --models_dir=DIR, skipping the model benchmarks\n");
  } else {
    kiln::bench::RegisterModels(models_dir);
  }
  if (!zoo_dir.empty()) {
    kiln::bench::RegisterZoo(zoo_dir, ort_outputs);
    kiln::bench::RegisterTierUpLatency(zoo_dir);
    kiln::bench::RegisterTierUpUnderLoad(zoo_dir);
    kiln::bench::RegisterConcurrentRequests(zoo_dir);
    kiln::bench::RegisterShapeStream(zoo_dir);
  }
  // Row regions past the specialization limit: [rows, 1024] with 12 row
  // counts in turn.
  kiln::bench::RegisterShapeStream("layernorm_gelu_rows",
                                   kiln::bench::LayerNormGeluModel({-1, 1024}, {"rows", ""}).Serialize());

  benchmark::Initialize(&bench_argc, args.data());
  if (benchmark::ReportUnrecognizedArguments(bench_argc, args.data())) return 1;
  kiln::bench::AddMachineContext();
  benchmark::AddCustomContext("kiln_models_dir", models_dir.empty() ? "(none)" : models_dir);
  benchmark::AddCustomContext("kiln_zoo_dir", zoo_dir.empty() ? "(none)" : zoo_dir);
  benchmark::AddCustomContext("kiln_ort_outputs", ort_outputs.empty() ? "(none)" : ort_outputs);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
