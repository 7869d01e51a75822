#include "bench/gemm_bench.h"

#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "jit/gemm_codegen.h"
#include "jit/jit_compiler.h"
#include "kernels/kernel.h"
#include "kernels/packed_sgemm.h"

namespace kiln::bench {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Independent 512-bit FMA chains: 16 accumulators cover a 4-cycle latency
// on 2 FMA ports with room to spare. The timing loop itself is compiled for
// AVX-512 whatever the build's baseline; callers skip hosts without it.
__attribute__((target("avx512f"))) void FmaPeakAvx512Loop(benchmark::State& state) {
  constexpr int kInner = 1024;
  constexpr int kAccumulators = 16;
  volatile float seed = 1.0f;  // opaque: the chains cannot be folded at compile time
  const __m512 mul = _mm512_set1_ps(0.9999999f);
  const __m512 add = _mm512_set1_ps(1e-7f);
  __m512 acc[kAccumulators];
  for (__m512& a : acc) a = _mm512_set1_ps(seed);
  for (auto _ : state) {
    for (int i = 0; i < kInner; ++i) {
#pragma GCC unroll 16
      for (int j = 0; j < kAccumulators; ++j) acc[j] = _mm512_fmadd_ps(acc[j], mul, add);
    }
  }
  __m512 sum = acc[0];
  for (int j = 1; j < kAccumulators; ++j) sum = _mm512_add_ps(sum, acc[j]);
  float total = _mm512_reduce_add_ps(sum);
  benchmark::DoNotOptimize(total);
  const double flops_per_iter = 2.0 * 16 * kAccumulators * kInner;
  state.counters["flops"] =
      benchmark::Counter(flops_per_iter * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_FmaPeakAvx512(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512f")) {
    state.SkipWithError("the host has no AVX-512");
    return;
  }
  FmaPeakAvx512Loop(state);
}

enum class Impl { kJit, kPacked, kOneDnn };

const char* ImplName(Impl impl) {
  switch (impl) {
    case Impl::kJit: return "jit";
    case Impl::kPacked: return "packed";
    case Impl::kOneDnn: return "onednn";
  }
  return "?";
}

jit::JitCompiler* SharedJit(std::string& error) {
  static StatusOr<std::unique_ptr<jit::JitCompiler>> compiler = jit::JitCompiler::CreateOrStatus();
  if (!compiler.ok()) {
    error = compiler.status().ToString();
    return nullptr;
  }
  return compiler->get();
}

void SetRates(benchmark::State& state, int64_t m, int64_t n) {
  const double iters = static_cast<double>(state.iterations());
  state.counters["flops"] =
      benchmark::Counter(2.0 * static_cast<double>(m * n * n) * iters, benchmark::Counter::kIsRate);
  if (m == 1) {
    // A GEMV reads the whole weight once per run.
    state.counters["weight_bytes_per_second"] =
        benchmark::Counter(4.0 * static_cast<double>(n * n) * iters, benchmark::Counter::kIsRate);
  }
}

// C [m, n] = A [m, n] * W [n, n].
void BM_Gemm(benchmark::State& state, Impl impl, int64_t m, int64_t n) {
  const int64_t k = n;
  const std::vector<float> a = Random(static_cast<size_t>(m * k), 1);
  const std::vector<float> w = Random(static_cast<size_t>(k * n), 2);
  std::vector<float> c(static_cast<size_t>(m * n), 0.0f);  // touched before timing

  if (impl == Impl::kJit) {
    std::string error;
    jit::JitCompiler* compiler = SharedJit(error);
    if (compiler == nullptr) {
      state.SkipWithError(error.c_str());
      return;
    }
    jit::GemmProblem problem;
    problem.m = m;
    problem.n = n;
    problem.k = k;
    StatusOr<std::unique_ptr<jit::CompiledGemm>> gemm = jit::CompileGemm(*compiler, problem, w.data(), false);
    if (!gemm.ok()) {
      state.SkipWithError(gemm.status().ToString().c_str());
      return;
    }
    const jit::CompiledGemm& g = **gemm;
    state.SetLabel(g.label() + " kc=" + std::to_string(g.kc()) + " compile=" + std::to_string(g.compile_ms()) + "ms");
    for (int i = 0; i < 3; ++i) g.Run(a.data(), k, m, c.data(), n, nullptr, nullptr, 0, 0, m);
    for (auto _ : state) {
      g.Run(a.data(), k, m, c.data(), n, nullptr, nullptr, 0, 0, m);
      benchmark::ClobberMemory();
    }
  } else if (impl == Impl::kPacked) {
    StatusOr<std::shared_ptr<const kernels::PackedMatrixB>> packed =
        kernels::PackedMatrixB::Pack(w.data(), k, n, n, false);
    if (!packed.ok()) {
      state.SkipWithError(packed.status().ToString().c_str());
      return;
    }
    const kernels::SerialRunner serial;
    state.SetLabel("avx2 6x16");
    for (int i = 0; i < 3; ++i) kernels::PackedSgemm(a.data(), k, m, **packed, c.data(), n, serial, nullptr);
    for (auto _ : state) {
      kernels::PackedSgemm(a.data(), k, m, **packed, c.data(), n, serial, nullptr);
      benchmark::ClobberMemory();
    }
  } else {
    // One thread, as for the others; restored afterwards for the rest of
    // the harness.
    const int threads_before = omp_get_max_threads();
    omp_set_num_threads(1);
    try {
      dnnl::engine engine(dnnl::engine::kind::cpu, 0);
      dnnl::stream stream(engine);
      using tag = dnnl::memory::format_tag;
      using dt = dnnl::memory::data_type;
      const dnnl::memory::desc a_md({m, k}, dt::f32, tag::ab);
      const dnnl::memory::desc w_any({k, n}, dt::f32, tag::any);
      const dnnl::memory::desc w_plain({k, n}, dt::f32, tag::ab);
      const dnnl::memory::desc c_md({m, n}, dt::f32, tag::ab);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, w_any, c_md), engine);
      dnnl::matmul matmul(pd);
      dnnl::memory a_mem(a_md, engine, const_cast<float*>(a.data()));
      dnnl::memory c_mem(c_md, engine, c.data());
      dnnl::memory w_user(w_plain, engine, const_cast<float*>(w.data()));
      // The weight reordered once into the layout the primitive prefers, as
      // a runtime would at load time.
      dnnl::memory w_mem(pd.weights_desc(), engine);
      dnnl::reorder(w_user, w_mem).execute(stream, w_user, w_mem);
      stream.wait();
      state.SetLabel(pd.impl_info_str());
      const std::unordered_map<int, dnnl::memory> args = {
          {DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, w_mem}, {DNNL_ARG_DST, c_mem}};
      for (int i = 0; i < 3; ++i) matmul.execute(stream, args);
      stream.wait();
      for (auto _ : state) {
        matmul.execute(stream, args);
        stream.wait();
      }
    } catch (const dnnl::error& e) {
      state.SkipWithError(e.what());
    }
    omp_set_num_threads(threads_before);
  }
  benchmark::DoNotOptimize(c.data());
  SetRates(state, m, n);
}

// N = K = 4096: a 64 MiB float weight.
constexpr int64_t kOutOfCacheN = 4096;

}  // namespace

void RegisterGemm() {
  benchmark::RegisterBenchmark("BM_FmaPeakAvx512", BM_FmaPeakAvx512)->UseRealTime();
  for (Impl impl : {Impl::kJit, Impl::kPacked, Impl::kOneDnn}) {
    for (int64_t m : {1, 32, 128}) {
      for (int64_t n : {512, 1024, 2048}) {
        const std::string name =
            std::string("BM_Gemm/impl:") + ImplName(impl) + "/m:" + std::to_string(m) + "/n:" + std::to_string(n);
        benchmark::RegisterBenchmark(name.c_str(), BM_Gemm, impl, m, n)->UseRealTime();
      }
    }
    // A GEMV whose 64 MiB weight no last-level cache holds: streamed from
    // memory, to hold against BM_StreamTriad's bandwidth.
    const std::string gemv = std::string("BM_Gemm/impl:") + ImplName(impl) + "/m:1/n:" + std::to_string(kOutOfCacheN);
    benchmark::RegisterBenchmark(gemv.c_str(), BM_Gemm, impl, int64_t{1}, kOutOfCacheN)->UseRealTime();
  }
}

}  // namespace kiln::bench
