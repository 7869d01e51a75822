// The elementwise code generator against scalar references: every op,
// broadcasting patterns, guard bands, split row ranges and error cases.
#include "jit/elementwise_codegen.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "test/jit/jit_test_util.h"

namespace kiln::jit {
namespace {

using testing::CheckRegion;
using testing::FloatAttr;
using testing::Linspace;
using testing::RegionBuilder;
using testing::StringAttr;
using Args = std::vector<double>;

float F(double v) { return static_cast<float>(v); }

TEST(ElementwiseCodegen, BiasScaleReluWithChannelBroadcast) {
  // [N, C, H, W] + [C, 1, 1], times a scalar constant, then Relu: the bias
  // pattern leaves rows of H*W = 20 (two full AVX2 vectors and a tail).
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, {2, 3, 4, 5});
  auto bias = rb.Input("bias", DType::kFloat32, {3, 1, 1});
  auto scale = rb.Constant("scale", {}, {2.5f});
  auto a = rb.Node("Add", {x, bias}, "a");
  auto m = rb.Node("Mul", {a, scale}, "m");
  rb.Output(rb.Node("Relu", {m}, "y"));
  CheckRegion(rb, {Linspace(-3, 3, 120), {-1.f, 0.5f, 2.f}, {}},
              [](const Args& v) { return std::max(0.f, F(v[0] + v[1]) * 2.5f); });
  auto compiled = rb.Compile();
  ASSERT_TRUE(compiled.ok());
  EXPECT_EQ((*compiled)->num_rows(), 6);
  EXPECT_EQ((*compiled)->row_len(), 20);
  EXPECT_TRUE((*compiled)->is_input_baked(2));
  EXPECT_FALSE((*compiled)->is_input_baked(0));
}

TEST(ElementwiseCodegen, OuterProductBroadcast) {
  // [1, C] * [N, 1] - [1, C]: each input broadcasts along a different dim.
  RegionBuilder rb;
  auto a = rb.Input("a", DType::kFloat32, {1, 37});
  auto b = rb.Input("b", DType::kFloat32, {11, 1});
  auto m = rb.Node("Mul", {a, b}, "m");
  rb.Output(rb.Node("Sub", {m, a}, "y"));
  CheckRegion(rb, {Linspace(-2, 2, 37), Linspace(0.5, 5, 11)}, [](const Args& v) { return F(F(v[0] * v[1]) - v[0]); });
  auto compiled = rb.Compile();
  ASSERT_TRUE(compiled.ok());
  EXPECT_EQ((*compiled)->num_rows(), 11);
  EXPECT_EQ((*compiled)->row_len(), 37);
}

TEST(ElementwiseCodegen, TrailingDimsCollapseIntoLongRows) {
  // [3, 4, 250] + [4, 250]: the bias broadcasts only along dim 0, so the
  // row is 4 * 250 = 1000 elements.
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, {3, 4, 250});
  auto b = rb.Input("b", DType::kFloat32, {4, 250});
  auto s = rb.Node("Add", {x, b}, "s");
  rb.Output(rb.Node("Div", {s, b}, "y"));
  CheckRegion(rb, {Linspace(-5, 5, 3000), Linspace(0.25, 7, 1000)},
              [](const Args& v) { return F(F(v[0] + v[1]) / v[1]); });
  auto compiled = rb.Compile();
  ASSERT_TRUE(compiled.ok());
  EXPECT_EQ((*compiled)->num_rows(), 3);
  EXPECT_EQ((*compiled)->row_len(), 1000);
}

TEST(ElementwiseCodegen, VeryLongRowsAreCutForParallelism) {
  // Everything collapses into 100000 contiguous elements; the row is cut
  // at 4000 (a divisor that is a multiple of 16) to give 25 rows.
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, {2, 50000});
  auto s = rb.Input("s", DType::kFloat32, {1});
  auto m = rb.Node("Mul", {x, s}, "m");
  rb.Output(rb.Node("Sigmoid", {m}, "y"));
  CheckRegion(rb, {Linspace(-8, 8, 100000), {0.75f}},
              [](const Args& v) { return 1 / (1 + std::exp(-static_cast<double>(F(v[0] * v[1])))); });
  auto compiled = rb.Compile();
  ASSERT_TRUE(compiled.ok());
  EXPECT_EQ((*compiled)->num_rows(), 25);
  EXPECT_EQ((*compiled)->row_len(), 4000);

  // A prime length cannot be cut: one row.
  RegionBuilder prime;
  auto p = prime.Input("p", DType::kFloat32, {10007});
  auto a = prime.Node("Abs", {p}, "a");
  prime.Output(prime.Node("Sqrt", {a}, "y"));
  CheckRegion(prime, {Linspace(-8, 8, 10007)}, [](const Args& v) { return std::sqrt(std::fabs(v[0])); });
}

TEST(ElementwiseCodegen, ScalarDomainAndShortRows) {
  for (const Dims& dims : std::vector<Dims>{{}, {1}, {3}, {1, 1, 7}, {8}, {17}}) {
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, dims);
    auto n = rb.Node("Neg", {x}, "n");
    rb.Output(rb.Node("Abs", {n}, "y"));
    CheckRegion(rb, {Linspace(-1, 1, std::max<int64_t>(2, testing::ElementCount(dims)))},
                [](const Args& v) { return std::fabs(v[0]); });
  }
}

TEST(ElementwiseCodegen, EmptyDomainRunsNothing) {
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, {4, 0, 3});
  rb.Output(rb.Node("Exp", {x}, "y"));
  auto compiled = rb.Compile();
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  EXPECT_EQ((*compiled)->num_rows(), 0);
  std::vector<testing::OutputBuffer> outs = testing::Run(**compiled, {nullptr}, {false}, 0);
  EXPECT_TRUE(outs[0].GuardsIntact());
}

struct UnaryCase {
  const char* op;
  std::map<std::string, graph::Attribute> attrs;
  float lo, hi;
  std::function<double(double)> ref;
  double abs = 1e-30;
};

TEST(ElementwiseCodegen, UnaryOps) {
  std::vector<UnaryCase> cases = {
      {"Neg", {}, -5, 5, [](double x) { return -x; }},
      {"Abs", {}, -5, 5, [](double x) { return std::fabs(x); }},
      {"Sqrt", {}, 0, 100, [](double x) { return std::sqrt(x); }},
      {"Reciprocal", {}, 0.01f, 10, [](double x) { return 1.0 / x; }},
      {"Exp", {}, -80, 80, [](double x) { return std::exp(x); }},
      {"Log", {}, 1e-6f, 1e6f, [](double x) { return std::log(x); }},
      {"Relu", {}, -5, 5, [](double x) { return std::max(0.0, x); }},
      {"LeakyRelu", {{"alpha", FloatAttr(0.1f)}}, -5, 5, [](double x) { return x < 0 ? F(0.1) * x : x; }},
      {"LeakyRelu", {}, -5, 5, [](double x) { return x < 0 ? F(0.01) * x : x; }},
      {"Sigmoid", {}, -30, 30, [](double x) { return 1 / (1 + std::exp(-x)); }},
      {"Tanh", {}, -10, 10, [](double x) { return std::tanh(x); }},
      {"HardSigmoid",
       {{"alpha", FloatAttr(0.25f)}, {"beta", FloatAttr(0.4f)}},
       -5,
       5,
       [](double x) { return std::clamp(F(0.25) * x + F(0.4), 0.0, 1.0); },
       1e-7},
      {"HardSwish", {}, -5, 5, [](double x) { return x * std::clamp(x / 6 + 0.5, 0.0, 1.0); }, 1e-7},
      {"Erf", {}, -5, 5, [](double x) { return std::erf(x); }},
      // 0.5 x (1 + erf(x / sqrt 2)) and 0.5 x (1 + tanh(...)) cancel in
      // float for x < -4 (as in any float implementation of the formulas):
      // absolute 1e-6 there.
      {"Gelu", {}, -6, 6, [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }, 1e-6},
      {"Gelu",
       {{"approximate", StringAttr("tanh")}},
       -6,
       6,
       [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); },
       1e-6},
      {"Softplus", {}, -20, 20, [](double x) { return std::log1p(std::exp(x)); }},
      {"Elu", {}, -5, 5, [](double x) { return x < 0 ? std::expm1(x) : x; }},
      {"Elu", {{"alpha", FloatAttr(0.5f)}}, -5, 5, [](double x) { return x < 0 ? F(0.5) * std::expm1(x) : x; }},
      {"Floor", {}, -5, 5, [](double x) { return std::floor(x); }},
      {"Ceil", {}, -5, 5, [](double x) { return std::ceil(x); }},
      {"Identity", {}, -5, 5, [](double x) { return x; }},
  };
  for (const UnaryCase& c : cases) {
    SCOPED_TRACE(c.op);
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {3, 333});
    rb.Output(rb.Node(c.op, {x}, "y", DType::kFloat32, c.attrs));
    std::vector<float> data = Linspace(c.lo, c.hi, 999);
    CheckRegion(
        rb, {data}, [&](const Args& v) { return c.ref(v[0]); }, 1e-5, c.abs);
  }
  // Special values: NaN propagates; infinities and zeros follow std::.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> specials = {nan, inf, -inf, 0.f, -0.f, 1e-40f, -1e-40f, 100.f, -100.f, 1.f};
  std::vector<std::pair<const char*, std::function<double(double)>>> special_refs = {
      {"Exp", [](double x) { return static_cast<double>(std::exp(F(x))); }},
      {"Log", [](double x) { return static_cast<double>(std::log(F(x))); }},
      {"Tanh", [](double x) { return std::tanh(x); }},
      {"Sigmoid", [](double x) { return static_cast<double>(F(1 / (1 + std::exp(-x)))); }},
      {"Erf", [](double x) { return std::erf(x); }},
      {"Softplus", [&](double x) { return x > 50 ? x : std::log1p(std::exp(x)); }},
  };
  for (const auto& [op, ref] : special_refs) {
    SCOPED_TRACE(std::string(op) + " specials");
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {static_cast<int64_t>(specials.size())});
    rb.Output(rb.Node(op, {x}, "y"));
    CheckRegion(
        rb, {specials}, [&](const Args& v) { return ref(v[0]); }, 1e-5, 1e-44);
  }
}

TEST(ElementwiseCodegen, PowConstantAndTensorExponents) {
  const std::vector<float> base = Linspace(-3, 3, 61);
  for (float e : {1.f, 2.f, 3.f, 4.f, 0.f, -1.f, 0.5f, 1.7f, -2.f}) {
    SCOPED_TRACE(e);
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {61});
    auto y = rb.Constant("e", {}, {e});
    rb.Output(rb.Node("Pow", {x, y}, "p"));
    CheckRegion(
        rb, {base, {}}, [&](const Args& v) { return std::pow(v[0], static_cast<double>(e)); }, 1e-5, 1e-30);
  }
  {
    // int64 exponent (opset 12+ allows it), baked as an immediate.
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {61});
    auto y = rb.Constant64("e", 3);
    rb.Output(rb.Node("Pow", {x, y}, "p"));
    CheckRegion(rb, {base, {}}, [](const Args& v) { return F(F(v[0] * v[0]) * v[0]); });
  }
  {
    // Elementwise exponents, including negative bases with integer and
    // non-integer exponents.
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {4, 61});
    auto y = rb.Input("y", DType::kFloat32, {4, 1});
    rb.Output(rb.Node("Pow", {x, y}, "p"));
    std::vector<float> xs;
    for (int r = 0; r < 4; ++r) xs.insert(xs.end(), base.begin(), base.end());
    CheckRegion(
        rb, {xs, {2.f, 3.f, -1.5f, 0.25f}}, [](const Args& v) { return std::pow(v[0], v[1]); }, 1e-5, 1e-30);
  }
}

TEST(ElementwiseCodegen, ClipBoundsFromInputsAndAttributes) {
  {
    // Opset 13: min/max are constant inputs.
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {50});
    auto lo = rb.Constant("lo", {}, {-1.f});
    auto hi = rb.Constant("hi", {}, {2.f});
    rb.Output(rb.Node("Clip", {x, lo, hi}, "y", DType::kFloat32, {}, 13));
    CheckRegion(rb, {Linspace(-5, 5, 50), {}, {}}, [](const Args& v) { return std::clamp(v[0], -1.0, 2.0); });
  }
  {
    // Opset 13 with only max (min omitted): unbounded below.
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {50});
    auto hi = rb.Constant("hi", {}, {6.f});
    rb.Output(rb.Node("Clip", {x, graph::kNoValue, hi}, "y", DType::kFloat32, {}, 13));
    CheckRegion(rb, {Linspace(-10, 10, 50), {}}, [](const Args& v) { return std::min(v[0], 6.0); });
  }
  {
    // Opset 13 with a runtime (non-constant) scalar bound.
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {50});
    auto lo = rb.Input("lo", DType::kFloat32, {});
    rb.Output(rb.Node("Clip", {x, lo}, "y", DType::kFloat32, {}, 13));
    CheckRegion(rb, {Linspace(-10, 10, 50), {0.5f}}, [](const Args& v) { return std::max(v[0], 0.5); });
  }
  {
    // Opset 6: attributes.
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {50});
    rb.Output(rb.Node("Clip", {x}, "y", DType::kFloat32, {{"min", FloatAttr(0.f)}, {"max", FloatAttr(6.f)}}, 6));
    CheckRegion(rb, {Linspace(-10, 10, 50)}, [](const Args& v) { return std::clamp(v[0], 0.0, 6.0); });
  }
}

TEST(ElementwiseCodegen, VariadicMinMax) {
  RegionBuilder rb;
  auto a = rb.Input("a", DType::kFloat32, {5, 20});
  auto b = rb.Input("b", DType::kFloat32, {20});
  auto c = rb.Input("c", DType::kFloat32, {5, 1});
  auto mx = rb.Node("Max", {a, b, c}, "mx");
  auto mn = rb.Node("Min", {a, b}, "mn");
  rb.Output(rb.Node("Sub", {mx, mn}, "y"));
  CheckRegion(rb, {Linspace(-3, 3, 100), Linspace(-2, 2, 20), {-1, 0, 1, 2, 3}}, [](const Args& v) {
    return F(std::max({v[0], v[1], v[2]}) - std::min(v[0], v[1]));
  });
}

TEST(ElementwiseCodegen, ComparisonsAndWhere) {
  // y = Where(x < t, x * 2, Where(x > u, u, x)); also Equal as a bool output.
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, {4, 30});
  auto t = rb.Constant("t", {}, {-1.f});
  auto u = rb.Input("u", DType::kFloat32, {4, 1});
  auto two = rb.Constant("two", {}, {2.f});
  auto less = rb.Node("Less", {x, t}, "less", DType::kBool);
  auto greater = rb.Node("Greater", {x, u}, "greater", DType::kBool);
  auto x2 = rb.Node("Mul", {x, two}, "x2");
  auto inner = rb.Node("Where", {greater, u, x}, "inner");
  rb.Output(rb.Node("Where", {less, x2, inner}, "y"));
  std::vector<float> xs = Linspace(-3, 3, 120);
  std::vector<float> us = {0.f, 0.5f, 1.f, 2.f};
  CheckRegion(rb, {xs, {}, us, {}}, [](const Args& v) {
    if (v[0] < -1) return v[0] * 2;
    return v[0] > v[2] ? v[2] : v[0];
  });

  RegionBuilder eq;
  auto a = eq.Input("a", DType::kFloat32, {40});
  auto b = eq.Input("b", DType::kFloat32, {40});
  auto floor_a = eq.Node("Floor", {a}, "fa");
  eq.Output(eq.Node("Equal", {floor_a, b}, "eq", DType::kBool));
  std::vector<float> bs(40);
  for (int i = 0; i < 40; ++i) bs[static_cast<size_t>(i)] = static_cast<float>(i % 3 - 1);
  CheckRegion(
      eq, {Linspace(-2, 2, 40), bs}, [](const Args& v) { return std::floor(v[0]) == v[1] ? 1.0 : 0.0; }, 0, 0,
      /*bool_output=*/true);
}

TEST(ElementwiseCodegen, BoolInputAndSeveralOutputs) {
  // A bool condition from outside the region, and two outputs of one loop.
  RegionBuilder rb;
  auto cond = rb.Input("cond", DType::kBool, {3, 1});
  auto x = rb.Input("x", DType::kFloat32, {3, 21});
  auto neg = rb.Node("Neg", {x}, "neg");
  auto sel = rb.Node("Where", {cond, x, neg}, "sel");
  auto e = rb.Node("Exp", {sel}, "e");
  rb.Output(sel);
  rb.Output(e);
  auto compiled = rb.Compile();
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  const bool conds[3] = {true, false, true};
  std::vector<float> xs = Linspace(-2, 2, 63);
  for (int splits : {1, 2}) {
    auto outs = testing::Run(**compiled, {conds, xs.data()}, {false, false}, 63, splits);
    for (int64_t i = 0; i < 63; ++i) {
      const float want = conds[i / 21] ? xs[static_cast<size_t>(i)] : -xs[static_cast<size_t>(i)];
      EXPECT_EQ(outs[0].at(i), want);
      EXPECT_TRUE(testing::IsClose(outs[1].at(i), std::exp(static_cast<double>(want)), 1e-5, 0));
    }
    EXPECT_TRUE(outs[0].GuardsIntact());
    EXPECT_TRUE(outs[1].GuardsIntact());
  }
}

TEST(ElementwiseCodegen, UnsupportedOpNamesTheOp) {
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, {8});
  auto s = rb.Node("Sin", {x}, "s");
  rb.Output(rb.Node("Relu", {s}, "y"));
  auto compiled = rb.Compile();
  ASSERT_FALSE(compiled.ok());
  EXPECT_EQ(compiled.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(compiled.status().message().find("Sin"), std::string::npos) << compiled.status().message();
}

TEST(ElementwiseCodegen, UnsupportedDTypeAndAttribute) {
  {
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kInt64, {8});
    rb.Output(rb.Node("Add", {x, x}, "y", DType::kInt64));
    auto compiled = rb.Compile();
    ASSERT_FALSE(compiled.ok());
    EXPECT_EQ(compiled.status().code(), StatusCode::kUnsupported);
    EXPECT_NE(compiled.status().message().find("int64"), std::string::npos) << compiled.status().message();
  }
  {
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {8});
    rb.Output(rb.Node("Gelu", {x}, "y", DType::kFloat32, {{"approximate", StringAttr("cubic")}}));
    auto compiled = rb.Compile();
    ASSERT_FALSE(compiled.ok());
    EXPECT_EQ(compiled.status().code(), StatusCode::kUnsupported);
    EXPECT_NE(compiled.status().message().find("cubic"), std::string::npos);
  }
}

TEST(ElementwiseCodegen, BadDimsAreInvalidArgument) {
  RegionBuilder rb;
  auto a = rb.Input("a", DType::kFloat32, {3, 4});
  auto b = rb.Input("b", DType::kFloat32, {5});
  rb.Output(rb.Node("Add", {a, b}, "y"));
  auto compiled = rb.Compile();
  ASSERT_FALSE(compiled.ok());
  EXPECT_EQ(compiled.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(compiled.status().message().find("broadcast"), std::string::npos);

  auto wrong_count = CompileElementwiseRegion(testing::SharedCompiler(), rb.graph, rb.region, {{3, 4}});
  ASSERT_FALSE(wrong_count.ok());
  EXPECT_EQ(wrong_count.status().code(), StatusCode::kInvalidArgument);
}

TEST(ElementwiseCodegen, OutputSmallerThanDomainIsUnsupported) {
  // t = Exp(small) is an output of [4] while the domain is [3, 4].
  RegionBuilder rb;
  auto small = rb.Input("small", DType::kFloat32, {4});
  auto big = rb.Input("big", DType::kFloat32, {3, 4});
  auto t = rb.Node("Exp", {small}, "t");
  rb.Output(t);
  rb.Output(rb.Node("Add", {t, big}, "y"));
  auto compiled = rb.Compile();
  ASSERT_FALSE(compiled.ok());
  EXPECT_EQ(compiled.status().code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kiln::jit
