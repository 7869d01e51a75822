// Row-reduction code generation: each model is loaded as exported (no graph
// pipeline, so decomposed forms stay decomposed), partitioned, compiled for
// its input dims and run over guarded buffers in several row ranges; the
// outputs must match the interpreter's kernels run node by node.
#include "jit/row_reduction_codegen.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/onnx_loader.h"
#include "graph/partitioner.h"
#include "test/jit/jit_test_util.h"
#include "test/model_builder.h"
#include "test/runtime/reference_run_util.h"

namespace kiln::jit {
namespace {

using kiln::testing::ElementCount;
using kiln::testing::OnnxModelBuilder;
using testing::IsClose;
using testing::OutputBuffer;
using testing::SharedCompiler;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;
constexpr int64_t kRowLens[] = {1, 7, 64, 1000};

// Compiles the single region of `b` (graph inputs of `input_dims`) and
// compares the region output named like the graph's first output with the
// reference, for the whole row range and for 2 and 3 pieces; then the same
// for the region's shape-generic code. That code is planned on these dims,
// or, when `generic_slot` already holds code (planned on another call's
// dims, e.g. another row length), it is that code run on these dims.
void CheckModel(const OnnxModelBuilder& b, const std::map<std::string, Dims>& input_dims, size_t expected_nodes,
                double rel = 1e-5, double abs = 1e-6, std::unique_ptr<CompiledRegion>* generic_slot = nullptr) {
  const std::string bytes = b.Serialize();
  StatusOr<graph::Graph> loaded = graph::LoadOnnxModel(bytes.data(), bytes.size(), {});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const graph::Graph& g = *loaded;
  graph::PartitionOptions options;
  options.min_region_nodes = 1;
  StatusOr<std::vector<graph::Region>> regions = graph::PartitionGraph(g, options);
  ASSERT_TRUE(regions.ok()) << regions.status().ToString();
  ASSERT_EQ(regions->size(), 1u);
  const graph::Region& region = (*regions)[0];
  ASSERT_EQ(region.kind, graph::RegionKind::kRowReduction) << region.reason;
  EXPECT_EQ(region.nodes.size(), expected_nodes) << region.reason;

  // Random data per graph input; region inputs are graph inputs or constants.
  std::map<std::string, Tensor> feeds;
  unsigned seed = 1;
  for (const auto& [name, dims] : input_dims) {
    std::vector<float> data = kiln::testing::RandomFloats(ElementCount(dims), seed++, 2.0f, 0.5f);
    StatusOr<Tensor> t = Tensor::Allocate(DType::kFloat32, dims);
    ASSERT_TRUE(t.ok());
    std::memcpy(t->data<float>(), data.data(), data.size() * sizeof(float));
    feeds[name] = *t;
  }
  std::vector<Dims> dims;
  std::vector<const void*> ptrs;
  for (graph::ValueId in : region.inputs) {
    const graph::Value& v = g.value(in);
    if (v.constant) {
      dims.push_back(v.constant->dims());
      ptrs.push_back(v.constant->raw_data());
    } else {
      ASSERT_TRUE(feeds.count(v.name)) << "region input '" << v.name << "' is not a graph input";
      dims.push_back(feeds[v.name].dims());
      ptrs.push_back(feeds[v.name].raw_data());
    }
  }
  StatusOr<std::unique_ptr<CompiledRegion>> compiled = CompileRowReductionRegion(SharedCompiler(), g, region, dims);
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  const CompiledRegion& c = **compiled;
  std::printf("[compile] %s: %.2f ms, %zu code bytes, %lld rows x %lld\n", c.name().c_str(), c.compile_ms(),
              c.code_bytes(), static_cast<long long>(c.num_rows()), static_cast<long long>(c.row_len()));

  StatusOr<Tensor> want = kiln::testing::RunUnoptimizedReference(bytes, feeds);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  const std::string& out_name = g.value(g.outputs()[0]).name;
  size_t checked = region.outputs.size();
  for (size_t o = 0; o < region.outputs.size(); ++o) {
    if (g.value(region.outputs[o]).name == out_name) checked = o;
  }
  ASSERT_LT(checked, region.outputs.size()) << "the graph output is not a region output";
  ASSERT_EQ(c.output_dims().size(), region.outputs.size());
  EXPECT_EQ(c.output_dims()[checked], want->dims());

  // Runs `run` over [0, rows) in 1, 2 and 3 pieces into fresh buffers of
  // `output_dims` and compares the checked output with the reference.
  using RowsFn = std::function<void(void* const* outs, int64_t begin, int64_t end)>;
  auto run_and_compare = [&](const RowsFn& run, int64_t rows, const std::vector<Dims>& output_dims) {
    for (int splits : {1, 2, 3}) {
      std::vector<OutputBuffer> outs;
      for (size_t o = 0; o < region.outputs.size(); ++o) {
        outs.emplace_back(g.value(region.outputs[o]).dtype == DType::kBool, ElementCount(output_dims[o]));
      }
      std::vector<void*> out_ptrs;
      for (OutputBuffer& o : outs) out_ptrs.push_back(o.data());
      for (int s = 0; s < splits; ++s) run(out_ptrs.data(), rows * s / splits, rows * (s + 1) / splits);
      for (const OutputBuffer& o : outs) EXPECT_TRUE(o.GuardsIntact()) << "write outside an output buffer";
      const OutputBuffer& got = outs[checked];
      ASSERT_EQ(got.n, want->num_elements());
      int failures = 0;
      for (int64_t e = 0; e < got.n && failures < 10; ++e) {
        const double w = want->data<float>()[e];
        if (!IsClose(got.at(e), w, rel, abs)) {
          ++failures;
          ADD_FAILURE() << "element " << e << " of " << DimsToString(want->dims()) << " (splits " << splits << "): got "
                        << got.at(e) << ", want " << w;
        }
      }
    }
  };
  {
    SCOPED_TRACE("specialized");
    run_and_compare([&](void* const* outs, int64_t begin, int64_t end) { c.Run(ptrs.data(), outs, begin, end); },
                    c.num_rows(), c.output_dims());
  }

  std::unique_ptr<CompiledRegion> local;
  std::unique_ptr<CompiledRegion>& generic = generic_slot != nullptr ? *generic_slot : local;
  if (!generic) {
    StatusOr<std::unique_ptr<CompiledRegion>> planned =
        CompileRowReductionRegionGeneric(SharedCompiler(), g, region, dims);
    if (!planned.ok()) {
      // Only layouts the generic code does not read (partial broadcasts
      // along the leading dims) may be refused.
      EXPECT_EQ(planned.status().code(), StatusCode::kUnsupported) << planned.status().ToString();
      std::printf("[generic] not compiled: %s\n", planned.status().ToString().c_str());
      return;
    }
    generic = std::move(*planned);
  }
  std::vector<int64_t> params;
  std::vector<Dims> output_dims;
  Status prepared = PrepareGenericRowReductionCall(*generic, g, region, dims, params, output_dims);
  if (prepared.code() == StatusCode::kUnsupported && generic_slot != nullptr) {
    // Code planned on other dims that lay the region out differently (e.g.
    // a one-element gamma is baked in): plan again on these, for the calls
    // that follow.
    std::printf("[generic] %s does not serve these dims: %s\n", generic->name().c_str(), prepared.ToString().c_str());
    generic.reset();
    CheckModel(b, input_dims, expected_nodes, rel, abs, generic_slot);
    return;
  }
  ASSERT_TRUE(prepared.ok()) << prepared.ToString();
  EXPECT_EQ(output_dims, c.output_dims());
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0], c.num_rows());
  SCOPED_TRACE("generic " + generic->name());
  run_and_compare([&](void* const* outs, int64_t begin,
                      int64_t end) { generic->RunGeneric(ptrs.data(), outs, begin, end, params.data()); },
                  params[0], output_dims);
}

std::vector<float> Ramp(int64_t n, float lo, float hi) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = lo + (hi - lo) * static_cast<float>(i) / std::max<int64_t>(1, n);
  return v;
}

TEST(RowReductionCodegen, LayerNormalizationWithGelu) {
  std::unique_ptr<CompiledRegion> generic;  // planned on one row length, run on the next
  for (int64_t len : kRowLens) {
    SCOPED_TRACE("row_len " + std::to_string(len));
    OnnxModelBuilder b(17);
    b.Input("x", kFloat, {3, 2, len})
        .FloatInit("gamma", {len}, Ramp(len, 0.5f, 1.5f))
        .FloatInit("beta", {len}, Ramp(len, -0.5f, 0.5f))
        .FloatInit("sqrt2", {}, {1.41421356f})
        .FloatInit("one", {}, {1.f})
        .FloatInit("half", {}, {0.5f})
        .Output("y");
    b.Node("LayerNormalization", {"x", "gamma", "beta"}, {"ln"});
    b.Node("Div", {"ln", "sqrt2"}, {"d"});
    b.Node("Erf", {"d"}, {"e"});
    b.Node("Add", {"e", "one"}, {"a"});
    b.Node("Mul", {"ln", "a"}, {"m"});
    b.Node("Mul", {"m", "half"}, {"y"});
    CheckModel(b, {{"x", {3, 2, len}}}, 6, 1e-5, 1e-6, &generic);
  }
}

TEST(RowReductionCodegen, LayerNormalizationOfComputedInput) {
  // SiLU before the LayerNorm: rows up to 4096 keep x * sigmoid(x) from the
  // mean pass for the variance and output passes; the 5000-element row
  // computes it again in each pass.
  std::unique_ptr<CompiledRegion> generic;  // planned on one row length, run on the next
  for (int64_t len : {int64_t{1}, int64_t{7}, int64_t{1000}, int64_t{5000}}) {
    SCOPED_TRACE("row_len " + std::to_string(len));
    OnnxModelBuilder b(17);
    b.Input("x", kFloat, {3, len}).FloatInit("gamma", {len}, Ramp(len, 0.5f, 1.5f)).Output("y");
    b.Node("Sigmoid", {"x"}, {"s"});
    b.Node("Mul", {"x", "s"}, {"silu"});
    b.Node("LayerNormalization", {"silu", "gamma"}, {"ln"});
    b.Node("Relu", {"ln"}, {"y"});
    CheckModel(b, {{"x", {3, len}}}, 4, 1e-5, 1e-6, &generic);
  }
}

TEST(RowReductionCodegen, LayerNormalizationOverTwoAxesWithoutBias) {
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {5, 4, 25}).FloatInit("gamma", {4, 25}, Ramp(100, 0.5f, 1.5f)).Output("y");
  auto& ln = b.Node("LayerNormalization", {"x", "gamma"}, {"y"});
  OnnxModelBuilder::IntAttr(ln, "axis", 1);
  OnnxModelBuilder::FloatAttr(ln, "epsilon", 1e-3f);
  CheckModel(b, {{"x", {5, 4, 25}}}, 1);
}

TEST(RowReductionCodegen, DecomposedLayerNorm) {
  // As exported before opset 17; the graph pipeline is not run, so this
  // stays nine nodes with two chained ReduceMeans.
  std::unique_ptr<CompiledRegion> generic;  // planned on one row length, run on the next
  for (int64_t len : kRowLens) {
    SCOPED_TRACE("row_len " + std::to_string(len));
    OnnxModelBuilder b(17);
    b.Input("x", kFloat, {4, len})
        .FloatInit("two", {}, {2.f})
        .FloatInit("eps", {}, {1e-5f})
        .FloatInit("gamma", {len}, Ramp(len, 0.5f, 1.5f))
        .FloatInit("beta", {len}, Ramp(len, -0.5f, 0.5f))
        .Output("y");
    OnnxModelBuilder::IntsAttr(b.Node("ReduceMean", {"x"}, {"mean"}), "axes", {-1});
    b.Node("Sub", {"x", "mean"}, {"d"});
    b.Node("Pow", {"d", "two"}, {"sq"});
    OnnxModelBuilder::IntsAttr(b.Node("ReduceMean", {"sq"}, {"var"}), "axes", {-1});
    b.Node("Add", {"var", "eps"}, {"ve"});
    b.Node("Sqrt", {"ve"}, {"sd"});
    b.Node("Div", {"d", "sd"}, {"n"});
    b.Node("Mul", {"n", "gamma"}, {"s"});
    b.Node("Add", {"s", "beta"}, {"y"});
    CheckModel(b, {{"x", {4, len}}}, 9, 1e-5, 1e-6, &generic);
  }
}

TEST(RowReductionCodegen, SoftmaxWithScaleAndMask) {
  std::unique_ptr<CompiledRegion> generic;  // planned on one row length, run on the next
  for (int64_t len : kRowLens) {
    SCOPED_TRACE("row_len " + std::to_string(len));
    OnnxModelBuilder b(13);
    b.Input("scores", kFloat, {2, 3, len}).Input("mask", kFloat, {2, 1, len}).FloatInit("scale", {}, {3.f});
    b.Output("y");
    b.Node("Mul", {"scores", "scale"}, {"scaled"});
    b.Node("Add", {"scaled", "mask"}, {"masked"});
    b.Node("Softmax", {"masked"}, {"y"});
    CheckModel(b, {{"scores", {2, 3, len}}, {"mask", {2, 1, len}}}, 3, 1e-5, 1e-6, &generic);
  }
}

TEST(RowReductionCodegen, SoftmaxOfLongRowsRecomputesTheExponentials) {
  // Past 4096 elements a row's exp(x - max) is not kept on the stack: the
  // output pass recomputes it from the inputs.
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {3, 5000}).FloatInit("scale", {}, {2.f}).Output("y");
  b.Node("Mul", {"x", "scale"}, {"scaled"});
  b.Node("Softmax", {"scaled"}, {"y"});
  CheckModel(b, {{"x", {3, 5000}}}, 2);
}

TEST(RowReductionCodegen, LogSoftmax) {
  std::unique_ptr<CompiledRegion> generic;  // planned on one row length, run on the next
  for (int64_t len : kRowLens) {
    SCOPED_TRACE("row_len " + std::to_string(len));
    OnnxModelBuilder b(13);
    b.Input("x", kFloat, {5, len}).Output("y");
    b.Node("LogSoftmax", {"x"}, {"y"});
    CheckModel(b, {{"x", {5, len}}}, 1, 1e-5, 1e-6, &generic);
  }
}

TEST(RowReductionCodegen, SoftmaxBeforeOpset13NormalisesTheSuffix) {
  // Opset 11 with axis=1 normalises each [3, len] block as one row.
  OnnxModelBuilder b(11);
  b.Input("x", kFloat, {2, 3, 7}).Output("y");
  OnnxModelBuilder::IntAttr(b.Node("Softmax", {"x"}, {"s"}), "axis", 1);
  b.Node("Neg", {"s"}, {"y"});
  CheckModel(b, {{"x", {2, 3, 7}}}, 2);
}

TEST(RowReductionCodegen, ReduceMeanKeepdimsRowShapedConsumer) {
  std::unique_ptr<CompiledRegion> generic;  // planned on one row length, run on the next
  for (int64_t len : kRowLens) {
    SCOPED_TRACE("row_len " + std::to_string(len));
    OnnxModelBuilder b(17);
    b.Input("x", kFloat, {6, len}).Output("y");
    OnnxModelBuilder::IntsAttr(b.Node("ReduceMean", {"x"}, {"mean"}), "axes", {1});
    b.Node("Sub", {"x", "mean"}, {"y"});
    CheckModel(b, {{"x", {6, len}}}, 2, 1e-5, 1e-6, &generic);
  }
}

TEST(RowReductionCodegen, ReduceSumPerRowOutput) {
  // Opset 13: axes come from a constant input.
  std::unique_ptr<CompiledRegion> generic;  // planned on one row length, run on the next
  for (int64_t len : kRowLens) {
    SCOPED_TRACE("row_len " + std::to_string(len));
    OnnxModelBuilder b(13);
    b.Input("x", kFloat, {3, 2, len}).Int64Init("axes", {1}, {-1}).FloatInit("k", {}, {0.25f}).Output("y");
    b.Node("Mul", {"x", "x"}, {"sq"});
    b.Node("ReduceSum", {"sq", "axes"}, {"sum"});
    b.Node("Mul", {"sum", "k"}, {"y"});
    CheckModel(b, {{"x", {3, 2, len}}}, 3, 1e-5, 1e-6, &generic);
  }
}

TEST(RowReductionCodegen, ReduceSumOverTwoTrailingAxes) {
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {3, 4, 9}).Int64Init("axes", {2}, {2, 1}).Output("y");
  b.Node("ReduceSum", {"x", "axes"}, {"s"});
  b.Node("Sqrt", {"s"}, {"y"});
  CheckModel(b, {{"x", {3, 4, 9}}}, 2);
}

TEST(RowReductionCodegen, ReduceMaxKeepdims) {
  std::unique_ptr<CompiledRegion> generic;  // planned on one row length, run on the next
  for (int64_t len : kRowLens) {
    SCOPED_TRACE("row_len " + std::to_string(len));
    OnnxModelBuilder b(17);
    b.Input("x", kFloat, {5, len}).Output("y");
    OnnxModelBuilder::IntsAttr(b.Node("ReduceMax", {"x"}, {"max"}), "axes", {-1});
    b.Node("Sub", {"x", "max"}, {"d"});
    b.Node("Exp", {"d"}, {"y"});
    CheckModel(b, {{"x", {5, len}}}, 3, 1e-5, 1e-6, &generic);
  }
}

TEST(RowReductionCodegen, ReduceMaxPerRowOutput) {
  OnnxModelBuilder b(18);
  b.Input("x", kFloat, {4, 3, 37}).Int64Init("axes", {1}, {2}).Output("y");
  b.Node("Neg", {"x"}, {"n"});
  b.Node("ReduceMax", {"n", "axes"}, {"y"});
  CheckModel(b, {{"x", {4, 3, 37}}}, 2);
}

TEST(RowReductionCodegen, GlobalAveragePoolWithGate) {
  // Planes of 1, 7, 64 and 1000 elements.
  const Dims planes[] = {{1, 1}, {7, 1}, {8, 8}, {25, 40}};
  for (const Dims& hw : planes) {
    SCOPED_TRACE("plane " + DimsToString(hw));
    const Dims dims = {2, 3, hw[0], hw[1]};
    OnnxModelBuilder b(13);
    b.Input("x", kFloat, dims).Output("y");
    b.Node("GlobalAveragePool", {"x"}, {"pooled"});
    b.Node("Sigmoid", {"pooled"}, {"gate"});
    b.Node("Mul", {"x", "gate"}, {"y"});
    CheckModel(b, {{"x", dims}}, 3);
  }
}

TEST(RowReductionCodegen, GlobalAveragePoolPerPlaneOutput) {
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {2, 5, 9, 9}).Output("y");
  b.Node("GlobalAveragePool", {"x"}, {"pooled"});
  b.Node("Relu", {"pooled"}, {"y"});
  CheckModel(b, {{"x", {2, 5, 9, 9}}}, 2);
}

TEST(RowReductionCodegen, LayerNormThenSoftmaxChainsFourPasses) {
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {3, 50}).FloatInit("gamma", {50}, Ramp(50, 0.5f, 1.5f)).Output("y");
  b.Node("LayerNormalization", {"x", "gamma"}, {"ln"});
  b.Node("Softmax", {"ln"}, {"y"});
  CheckModel(b, {{"x", {3, 50}}}, 2);
}

TEST(RowReductionCodegen, RejectsElementwiseRegions) {
  testing::RegionBuilder rb;
  graph::ValueId x = rb.Input("x", DType::kFloat32, {4, 8});
  rb.Output(rb.Node("Relu", {x}, "y"));
  auto compiled = CompileRowReductionRegion(SharedCompiler(), rb.graph, rb.region, rb.input_dims);
  ASSERT_FALSE(compiled.ok());
  EXPECT_EQ(compiled.status().code(), StatusCode::kUnsupported);
}

TEST(RowReductionCodegen, RejectsAnInputBroadcastAlongPartOfTheRow) {
  // The region was formed for other dims; at these dims B covers only part
  // of the row, which the generator reports instead of miscomputing.
  OnnxModelBuilder b(17);
  b.Input("x", kFloat, {2, 8, 16}).Input("bias", kFloat, {8, 16}).FloatInit("gamma", {8, 16}, Ramp(128, 0.5f, 1.f));
  b.Output("y");
  OnnxModelBuilder::IntAttr(b.Node("LayerNormalization", {"x", "gamma", "bias"}, {"ln"}), "axis", 1);
  b.Node("Relu", {"ln"}, {"y"});
  const std::string bytes = b.Serialize();
  StatusOr<graph::Graph> g = graph::LoadOnnxModel(bytes.data(), bytes.size(), {});
  ASSERT_TRUE(g.ok());
  auto regions = graph::PartitionGraph(*g);
  ASSERT_TRUE(regions.ok());
  ASSERT_EQ(regions->size(), 1u);
  std::vector<Dims> dims;
  for (graph::ValueId in : (*regions)[0].inputs) {
    dims.push_back(g->value(in).name == "bias" ? Dims{1, 16} : g->value(in).shape.ConcreteDims());
  }
  auto compiled = CompileRowReductionRegion(SharedCompiler(), *g, (*regions)[0], dims);
  ASSERT_FALSE(compiled.ok());
  EXPECT_EQ(compiled.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(compiled.status().message().find("part of the row"), std::string::npos) << compiled.status().ToString();
}

}  // namespace
}  // namespace kiln::jit
