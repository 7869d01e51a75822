// Shape-generic elementwise code: one compile per region run on many
// shapes, against the scalar reference and the specialized code, with
// guard bands, split and clamped row ranges, each inner-loop version
// (contiguous, splat, gather, flat), and error cases.
#include "jit/generic_codegen.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "jit/elementwise_codegen.h"
#include "test/jit/jit_test_util.h"

namespace kiln::jit {
namespace {

using testing::BroadcastSource;
using testing::ElementCount;
using testing::Linspace;
using testing::OutputBuffer;
using testing::RegionBuilder;
using Args = std::vector<double>;

float F(double v) { return static_cast<float>(v); }

// Rows of the generic [rows, row_len] view of `domain`.
int64_t GenericRows(const Dims& domain) {
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < domain.size(); ++d) rows *= domain[d];
  return rows;
}

// Runs generic code over [0, rows) in `splits` pieces, then once more over
// a range wider than [0, rows) (clamped by the code), with guarded outputs.
std::vector<OutputBuffer> RunGeneric(const CompiledRegion& c, const std::vector<const void*>& inputs,
                                     const std::vector<int64_t>& params, const Dims& domain,
                                     const std::vector<bool>& output_is_bool, int splits, bool overshoot = false) {
  std::vector<OutputBuffer> outs;
  const int64_t n = ElementCount(domain);
  for (bool is_bool : output_is_bool) outs.emplace_back(is_bool, n);
  std::vector<void*> out_ptrs;
  for (OutputBuffer& o : outs) out_ptrs.push_back(o.data());
  const int64_t rows = GenericRows(domain);
  if (overshoot) {
    c.RunGeneric(inputs.data(), out_ptrs.data(), -3, rows + 5, params.data());
  } else {
    for (int s = 0; s < splits; ++s) {
      c.RunGeneric(inputs.data(), out_ptrs.data(), rows * s / splits, rows * (s + 1) / splits, params.data());
    }
  }
  return outs;
}

bool SameValue(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

// Checks generic code `c` (compiled from any builder of the same region
// structure) on the shapes of `rb`: against `ref` for output 0 and, for
// every output, bit for bit against the specialized code for those shapes.
void CheckGeneric(const CompiledRegion& c, const RegionBuilder& rb, const std::vector<std::vector<float>>& data,
                  const std::function<double(const Args&)>& ref, const std::vector<bool>& output_is_bool = {false},
                  double rel = 1e-5, double abs = 1e-30) {
  ASSERT_TRUE(c.is_generic());
  std::vector<int64_t> params;
  Dims domain;
  Status filled = FillGenericParams(rb.input_dims, c.domain_rank(), params, domain);
  ASSERT_TRUE(filled.ok()) << filled.ToString();
  const int64_t n = ElementCount(domain);
  std::vector<const void*> ptrs;
  for (size_t i = 0; i < rb.region.inputs.size(); ++i) {
    ptrs.push_back(c.is_input_baked(i) ? nullptr : static_cast<const void*>(data[i].data()));
  }

  auto specialized = rb.Compile();
  ASSERT_TRUE(specialized.ok()) << specialized.status().ToString();
  std::vector<OutputBuffer> want = testing::Run(**specialized, ptrs, output_is_bool, n, 1);

  Args args(rb.region.inputs.size());
  for (int variant = 0; variant < 5; ++variant) {
    const int splits = variant < 4 ? std::vector<int>{1, 2, 3, 7}[static_cast<size_t>(variant)] : 1;
    SCOPED_TRACE(variant < 4 ? "splits " + std::to_string(splits) : std::string("overshooting range"));
    std::vector<OutputBuffer> outs = RunGeneric(c, ptrs, params, domain, output_is_bool, splits, variant == 4);
    int failures = 0;
    for (size_t k = 0; k < outs.size(); ++k) {
      EXPECT_TRUE(outs[k].GuardsIntact()) << "output " << k << ": write outside the buffer";
      for (int64_t e = 0; e < n && failures < 10; ++e) {
        if (!SameValue(outs[k].at(e), want[k].at(e))) {
          ++failures;
          ADD_FAILURE() << "output " << k << " element " << e << ": generic " << outs[k].at(e) << ", specialized "
                        << want[k].at(e);
        }
      }
    }
    for (int64_t e = 0; e < n && failures < 10; ++e) {
      for (size_t i = 0; i < args.size(); ++i) {
        const graph::Value& v = rb.graph.value(rb.region.inputs[i]);
        const int64_t src = BroadcastSource(domain, rb.input_dims[i], e);
        args[i] = v.constant ? v.constant->data<float>()[src] : data[i][static_cast<size_t>(src)];
      }
      const double w = ref(args);
      if (!testing::IsClose(outs[0].at(e), w, rel, abs)) {
        ++failures;
        ADD_FAILURE() << "element " << e << ": got " << outs[0].at(e) << ", reference " << w;
      }
    }
  }
}

// y = Sigmoid(x * 2.5 + b) and a bool output x > b: two loaded inputs, a
// baked constant and outputs of both kinds.
RegionBuilder SigmoidRegion(const Dims& x_dims, const Dims& b_dims) {
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, x_dims);
  auto b = rb.Input("b", DType::kFloat32, b_dims);
  auto s = rb.Constant("s", {}, {2.5f});
  auto m = rb.Node("Mul", {x, s}, "m");
  auto a = rb.Node("Add", {m, b}, "a");
  rb.Output(rb.Node("Sigmoid", {a}, "y"));
  rb.Output(rb.Node("Greater", {x, b}, "g", DType::kBool));
  return rb;
}

double SigmoidRef(const Args& v) { return 1 / (1 + std::exp(-static_cast<double>(F(F(v[0] * 2.5) + v[1])))); }

TEST(GenericCodegen, OneCompileRunsManyShapesOfOneRank) {
  RegionBuilder proto = SigmoidRegion({2, 64}, {2, 64});
  auto generic = CompileElementwiseRegionGeneric(testing::SharedCompiler(), proto.graph, proto.region, 2);
  ASSERT_TRUE(generic.ok()) << generic.status().ToString();
  const CompiledRegion& c = **generic;
  std::printf("[compile] %s: %.2f ms, %zu code bytes\n", c.name().c_str(), c.compile_ms(), c.code_bytes());
  EXPECT_EQ(c.domain_rank(), 2);
  EXPECT_FALSE(c.is_input_baked(0));
  EXPECT_FALSE(c.is_input_baked(1));
  EXPECT_TRUE(c.is_input_baked(2));

  // Same shapes, then broadcasting ones (row splat, column splat, scalar).
  const std::vector<std::pair<Dims, Dims>> shapes = {
      {{2, 64}, {2, 64}}, {{7, 3}, {7, 3}},  {{1, 1}, {1, 1}}, {{0, 5}, {0, 5}},   {{5, 0}, {5, 0}},
      {{9, 37}, {37}},    {{9, 37}, {9, 1}}, {{4, 19}, {}},    {{1, 100}, {3, 1}}, {{33, 1}, {33, 1}}};
  for (const auto& [xd, bd] : shapes) {
    SCOPED_TRACE(DimsToString(xd) + " and " + DimsToString(bd));
    RegionBuilder rb = SigmoidRegion(xd, bd);
    CheckGeneric(c, rb,
                 {Linspace(-4, 4, std::max<int64_t>(2, ElementCount(xd))),
                  Linspace(-1, 1.5f, std::max<int64_t>(2, ElementCount(bd))),
                  {}},
                 SigmoidRef, {false, true});
  }
}

TEST(GenericCodegen, ChannelBiasBroadcastAtTwoSizes) {
  // [N, C, H, W] + [C, 1, 1], times a runtime scalar, Relu: rows of W with
  // the bias splatted per row and the scalar splatted everywhere.
  auto build = [](const Dims& x_dims, int64_t c) {
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, x_dims);
    auto bias = rb.Input("bias", DType::kFloat32, {c, 1, 1});
    auto scale = rb.Input("scale", DType::kFloat32, {});
    auto a = rb.Node("Add", {x, bias}, "a");
    auto m = rb.Node("Mul", {a, scale}, "m");
    rb.Output(rb.Node("Relu", {m}, "y"));
    return rb;
  };
  RegionBuilder proto = build({2, 3, 4, 5}, 3);
  auto generic = CompileElementwiseRegionGeneric(testing::SharedCompiler(), proto.graph, proto.region, 4);
  ASSERT_TRUE(generic.ok()) << generic.status().ToString();
  std::printf("[compile] %s: %.2f ms, %zu code bytes\n", (*generic)->name().c_str(), (*generic)->compile_ms(),
              (*generic)->code_bytes());
  for (const Dims& xd : std::vector<Dims>{{2, 3, 4, 5}, {3, 16, 7, 33}}) {
    SCOPED_TRACE(DimsToString(xd));
    RegionBuilder rb = build(xd, xd[1]);
    CheckGeneric(**generic, rb, {Linspace(-3, 3, ElementCount(xd)), Linspace(-1, 2, xd[1]), {0.75f}},
                 [](const Args& v) { return std::max(0.f, F(F(v[0] + v[1]) * v[2])); });
  }
}

TEST(GenericCodegen, RankZeroAndLowerRankInputs) {
  auto build = [](const Dims& a_dims, const Dims& b_dims) {
    RegionBuilder rb;
    auto a = rb.Input("a", DType::kFloat32, a_dims);
    auto b = rb.Input("b", DType::kFloat32, b_dims);
    rb.Output(rb.Node("Sub", {a, b}, "y"));
    return rb;
  };
  RegionBuilder r0 = build({}, {});
  auto rank0 = CompileElementwiseRegionGeneric(testing::SharedCompiler(), r0.graph, r0.region, 0);
  ASSERT_TRUE(rank0.ok()) << rank0.status().ToString();
  CheckGeneric(**rank0, r0, {{5.f}, {1.5f}}, [](const Args& v) { return F(v[0] - v[1]); });

  // Rank 3 code on inputs of rank 0, 1 and 2 (right-aligned).
  RegionBuilder proto = build({2, 3, 4}, {4});
  auto rank3 = CompileElementwiseRegionGeneric(testing::SharedCompiler(), proto.graph, proto.region, 3);
  ASSERT_TRUE(rank3.ok()) << rank3.status().ToString();
  for (const auto& [ad, bd] :
       std::vector<std::pair<Dims, Dims>>{{{}, {}}, {{5}, {}}, {{3, 1}, {17}}, {{2, 3, 4}, {4}}}) {
    SCOPED_TRACE(DimsToString(ad) + " and " + DimsToString(bd));
    RegionBuilder rb = build(ad, bd);
    CheckGeneric(**rank3, rb,
                 {Linspace(-2, 2, std::max<int64_t>(2, ElementCount(ad))),
                  Linspace(0, 1, std::max<int64_t>(2, ElementCount(bd)))},
                 [](const Args& v) { return F(v[0] - v[1]); });
  }
}

TEST(GenericCodegen, ManyInputsUseTheContiguousOrTheGatherVersion) {
  // Four loaded inputs (above kMaxVersionedInputs): all dense runs the
  // contiguous version, any broadcast the gather version.
  static_assert(kMaxVersionedInputs < 4);
  auto build = [](const std::vector<Dims>& d) {
    RegionBuilder rb;
    auto a = rb.Input("a", DType::kFloat32, d[0]);
    auto b = rb.Input("b", DType::kFloat32, d[1]);
    auto c = rb.Input("c", DType::kFloat32, d[2]);
    auto e = rb.Input("e", DType::kFloat32, d[3]);
    auto ab = rb.Node("Mul", {a, b}, "ab");
    auto ce = rb.Node("Sub", {c, e}, "ce");
    rb.Output(rb.Node("Add", {ab, ce}, "y"));
    return rb;
  };
  RegionBuilder proto = build({{4, 4}, {4, 4}, {4, 4}, {4, 4}});
  auto generic = CompileElementwiseRegionGeneric(testing::SharedCompiler(), proto.graph, proto.region, 2);
  ASSERT_TRUE(generic.ok()) << generic.status().ToString();
  for (const std::vector<Dims>& d : std::vector<std::vector<Dims>>{
           {{6, 29}, {6, 29}, {6, 29}, {6, 29}}, {{6, 29}, {29}, {6, 1}, {}}, {{1, 29}, {6, 1}, {6, 29}, {1}}}) {
    RegionBuilder rb = build(d);
    std::vector<std::vector<float>> data;
    for (size_t i = 0; i < 4; ++i) {
      data.push_back(Linspace(-1.f - static_cast<float>(i), 2, std::max<int64_t>(2, ElementCount(d[i]))));
    }
    CheckGeneric(**generic, rb, data, [](const Args& v) { return F(F(v[0] * v[1]) + F(v[2] - v[3])); });
  }
}

TEST(GenericCodegen, StridedInputsUseTheGatherVersion) {
  // x seen as [N, C] but stored transposed ([C, N]): inner stride N, so
  // neither vector loads nor splats apply. Params are written by hand.
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, {5, 19});
  auto b = rb.Input("b", DType::kFloat32, {19});
  rb.Output(rb.Node("Add", {x, b}, "y"));
  auto generic = CompileElementwiseRegionGeneric(testing::SharedCompiler(), rb.graph, rb.region, 2);
  ASSERT_TRUE(generic.ok()) << generic.status().ToString();
  const int64_t n = 5, c = 19;
  std::vector<float> xt = Linspace(-3, 3, n * c);  // xt[j * n + i] = x[i, j]
  std::vector<float> bias = Linspace(0, 1, c);
  const std::vector<int64_t> params = {n, c, /*x*/ 1, n, /*b*/ 0, 1};
  for (int splits : {1, 2, 5}) {
    std::vector<OutputBuffer> outs = RunGeneric(**generic, {xt.data(), bias.data()}, params, {n, c}, {false}, splits);
    EXPECT_TRUE(outs[0].GuardsIntact());
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < c; ++j) {
        EXPECT_EQ(outs[0].at(i * c + j), F(xt[static_cast<size_t>(j * n + i)] + bias[static_cast<size_t>(j)]))
            << i << "," << j;
      }
    }
  }
}

TEST(GenericCodegen, InPlaceOnTheFirstInput) {
  RegionBuilder rb = SigmoidRegion({3, 50}, {50});
  auto generic = CompileElementwiseRegionGeneric(testing::SharedCompiler(), rb.graph, rb.region, 2);
  ASSERT_TRUE(generic.ok());
  std::vector<float> x = Linspace(-4, 4, 150);
  const std::vector<float> original = x;
  std::vector<float> b = Linspace(-1, 1, 50);
  std::vector<uint8_t> g(150);
  std::vector<int64_t> params;
  Dims domain;
  ASSERT_TRUE(FillGenericParams(rb.input_dims, 2, params, domain).ok());
  const void* ins[] = {x.data(), b.data(), nullptr};
  void* outs[] = {x.data(), g.data()};
  (*generic)->RunGeneric(ins, outs, 0, 3, params.data());
  for (size_t e = 0; e < 150; ++e) {
    const double want = SigmoidRef({original[e], b[e % 50]});
    EXPECT_TRUE(testing::IsClose(x[e], want, 1e-5, 0)) << e;
  }
}

TEST(GenericCodegen, FillGenericParamsLayoutAndErrors) {
  std::vector<int64_t> params;
  Dims domain;
  ASSERT_TRUE(FillGenericParams({{2, 3, 4, 5}, {3, 1, 1}, {}}, 4, params, domain).ok());
  EXPECT_EQ(domain, (Dims{2, 3, 4, 5}));
  EXPECT_EQ(params, (std::vector<int64_t>{2, 3, 4, 5, /*x*/ 60, 20, 5, 1, /*bias*/ 0, 1, 0, 0, /*scalar*/ 0, 0, 0, 0}));
  ASSERT_TRUE(FillGenericParams({{7}}, 3, params, domain).ok());
  EXPECT_EQ(domain, (Dims{1, 1, 7}));
  EXPECT_EQ(params, (std::vector<int64_t>{1, 1, 7, 0, 0, 1}));

  // Failures leave both outputs as they were.
  const std::vector<int64_t> kept_params = params;
  const Dims kept_domain = domain;
  auto expect_invalid = [&](const std::vector<Dims>& dims, int rank, const std::string& needle) {
    Status s = FillGenericParams(dims, rank, params, domain);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
    EXPECT_EQ(params, kept_params);
    EXPECT_EQ(domain, kept_domain);
  };
  expect_invalid({{3, 4}, {5}}, 2, "broadcast");
  expect_invalid({{2, 3, 4}}, 2, "rank");
  expect_invalid({{-1, 4}}, 2, "negative");
  expect_invalid({{4}}, -1, "rank");
  expect_invalid({{4}}, kMaxGenericRank + 1, "rank");
}

TEST(GenericCodegen, CompileErrors) {
  RegionBuilder rb = SigmoidRegion({4}, {4});
  auto bad_rank = CompileElementwiseRegionGeneric(testing::SharedCompiler(), rb.graph, rb.region, -1);
  ASSERT_FALSE(bad_rank.ok());
  EXPECT_EQ(bad_rank.status().code(), StatusCode::kInvalidArgument);

  {
    // t = Exp(small) is an output that does not depend on `big`.
    RegionBuilder partial;
    auto small = partial.Input("small", DType::kFloat32, {4});
    auto big = partial.Input("big", DType::kFloat32, {3, 4});
    auto t = partial.Node("Exp", {small}, "t");
    partial.Output(t);
    partial.Output(partial.Node("Add", {t, big}, "y"));
    auto compiled = CompileElementwiseRegionGeneric(testing::SharedCompiler(), partial.graph, partial.region, 2);
    ASSERT_FALSE(compiled.ok());
    EXPECT_EQ(compiled.status().code(), StatusCode::kUnsupported);
    EXPECT_NE(compiled.status().message().find("big"), std::string::npos) << compiled.status().message();
  }
  {
    RegionBuilder unsupported;
    auto x = unsupported.Input("x", DType::kFloat32, {8});
    unsupported.Output(unsupported.Node("Sin", {x}, "y"));
    auto compiled =
        CompileElementwiseRegionGeneric(testing::SharedCompiler(), unsupported.graph, unsupported.region, 1);
    ASSERT_FALSE(compiled.ok());
    EXPECT_EQ(compiled.status().code(), StatusCode::kUnsupported);
    EXPECT_NE(compiled.status().message().find("Sin"), std::string::npos);
  }
}

// Rough timing, printed only: compile time of each flavour and run time of
// generic vs specialized code on the same [rows, cols] shapes.
void TimeGenericVsSpecialized(const RegionBuilder& rb, const std::vector<std::vector<float>>& data) {
  auto specialized = rb.Compile();
  ASSERT_TRUE(specialized.ok()) << specialized.status().ToString();
  const int rank = static_cast<int>(testing::BroadcastDims(rb.input_dims).size());
  auto generic = CompileElementwiseRegionGeneric(testing::SharedCompiler(), rb.graph, rb.region, rank);
  ASSERT_TRUE(generic.ok()) << generic.status().ToString();
  std::vector<int64_t> params;
  Dims domain;
  ASSERT_TRUE(FillGenericParams(rb.input_dims, rank, params, domain).ok());
  const int64_t n = ElementCount(domain);
  std::vector<const void*> ins;
  for (const auto& d : data) ins.push_back(d.data());
  std::vector<float> out(static_cast<size_t>(n));
  void* outs[] = {out.data()};
  const CompiledRegion& s = **specialized;
  const CompiledRegion& g = **generic;
  const int64_t g_rows = GenericRows(domain);
  auto time_ns = [&](const std::function<void()>& run) {
    run();  // warm up
    double best = std::numeric_limits<double>::infinity();
    for (int rep = 0; rep < 5; ++rep) {
      const auto start = std::chrono::steady_clock::now();
      for (int it = 0; it < 20; ++it) run();
      best = std::min(best,
                      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / 20);
    }
    return best;
  };
  const double t_spec = time_ns([&] { s.Run(ins.data(), outs, 0, s.num_rows()); });
  const double t_gen = time_ns([&] { g.RunGeneric(ins.data(), outs, 0, g_rows, params.data()); });
  // Row by row, as a thread pool handing out single rows would call it.
  const double t_gen_rows = time_ns([&] {
    for (int64_t r = 0; r < g_rows; ++r) g.RunGeneric(ins.data(), outs, r, r + 1, params.data());
  });
  std::printf(
      "[timing] domain %s: compile specialized %.2f ms (%zu B), generic %.2f ms (%zu B); run specialized %.1f us "
      "(%.3f ns/elem), generic %.1f us (%.3f ns/elem, x%.2f), generic row-by-row %.1f us (x%.2f)\n",
      DimsToString(domain).c_str(), s.compile_ms(), s.code_bytes(), g.compile_ms(), g.code_bytes(), t_spec / 1e3,
      t_spec / static_cast<double>(n), t_gen / 1e3, t_gen / static_cast<double>(n), t_gen / t_spec, t_gen_rows / 1e3,
      t_gen_rows / t_spec);
}

TEST(GenericCodegen, TimingAgainstSpecialized) {
  {
    // [256, 1024]: y = Sigmoid(x * 2.5 + b) with a row bias b [1024], and
    // the bool x > b.
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {256, 1024});
    auto b = rb.Input("b", DType::kFloat32, {1024});
    auto s = rb.Constant("s", {}, {2.5f});
    auto m = rb.Node("Mul", {x, s}, "m");
    auto a = rb.Node("Add", {m, b}, "a");
    rb.Output(rb.Node("Sigmoid", {a}, "y"));
    TimeGenericVsSpecialized(rb, {Linspace(-4, 4, 256 * 1024), Linspace(-1, 1, 1024), {}});
  }
  {
    // [256, 1024], same shapes: y = Relu(x + z) (flat: one long row).
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {256, 1024});
    auto z = rb.Input("z", DType::kFloat32, {256, 1024});
    rb.Output(rb.Node("Relu", {rb.Node("Add", {x, z}, "a")}, "y"));
    TimeGenericVsSpecialized(rb, {Linspace(-4, 4, 256 * 1024), Linspace(-1, 1, 256 * 1024)});
  }
  {
    // Short rows: [8, 64, 28, 28] + [64, 1, 1] (rows of 28).
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {8, 64, 28, 28});
    auto bias = rb.Input("bias", DType::kFloat32, {64, 1, 1});
    rb.Output(rb.Node("Relu", {rb.Node("Add", {x, bias}, "a")}, "y"));
    TimeGenericVsSpecialized(rb, {Linspace(-4, 4, 8 * 64 * 28 * 28), Linspace(-1, 1, 64)});
  }
}

}  // namespace
}  // namespace kiln::jit
