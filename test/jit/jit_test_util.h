// Helpers for JIT tests: build a region by hand, run its compiled entry
// over guarded buffers and compare with a scalar reference.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "graph/region.h"
#include "jit/compiled_region.h"
#include "jit/elementwise_codegen.h"
#include "jit/jit_compiler.h"
#include "kiln/tensor.h"
#include "test/attributes.h"
#include "test/tensors.h"
#include "test/tolerance.h"

namespace kiln::jit::testing {

// One JIT for a whole test binary, as the runtime would have.
inline JitCompiler& SharedCompiler() {
  static std::unique_ptr<JitCompiler> compiler = [] {
    StatusOr<std::unique_ptr<JitCompiler>> c = JitCompiler::CreateOrStatus();
    if (!c.ok()) {
      ADD_FAILURE() << c.status().ToString();
      std::abort();
    }
    return std::move(*c);
  }();
  return *compiler;
}

// The shared helpers, under the names these tests have always used.
using kiln::testing::ElementCount;
using kiln::testing::FloatAttr;
using kiln::testing::IsClose;
using kiln::testing::StringAttr;

// Builds a Graph and the Region covering every node added, in order.
class RegionBuilder {
 public:
  // A runtime input of the region.
  graph::ValueId Input(const std::string& name, DType dtype, const Dims& dims) {
    graph::ValueId id = kiln::testing::ValueOrAbort(graph.AddValue(name, dtype, graph::ShapeInfo::FromDims(dims)));
    graph.AddInput(id);
    region.inputs.push_back(id);
    input_dims.push_back(dims);
    return id;
  }
  // A constant (initializer) input of the region.
  graph::ValueId Constant(const std::string& name, const Dims& dims, const std::vector<float>& values) {
    graph::ValueId id =
        kiln::testing::ValueOrAbort(graph.AddValue(name, DType::kFloat32, graph::ShapeInfo::FromDims(dims)));
    Tensor t = kiln::testing::ValueOrAbort(Tensor::Allocate(DType::kFloat32, dims));
    std::memcpy(t.data<float>(), values.data(), values.size() * sizeof(float));
    graph.value(id).constant = t;
    region.inputs.push_back(id);
    input_dims.push_back(dims);
    return id;
  }
  graph::ValueId Constant64(const std::string& name, int64_t v) {
    graph::ValueId id =
        kiln::testing::ValueOrAbort(graph.AddValue(name, DType::kInt64, graph::ShapeInfo::FromDims({})));
    Tensor t = kiln::testing::ValueOrAbort(Tensor::Allocate(DType::kInt64, {}));
    *t.data<int64_t>() = v;
    graph.value(id).constant = t;
    region.inputs.push_back(id);
    input_dims.push_back({});
    return id;
  }
  // A node with one output `out` of `dtype`; its shape is not needed by
  // the code generator (it recomputes shapes from the input dims).
  graph::ValueId Node(const std::string& op, const std::vector<graph::ValueId>& inputs, const std::string& out,
                      DType dtype = DType::kFloat32, std::map<std::string, graph::Attribute> attrs = {},
                      int opset = 17) {
    graph::ValueId id = kiln::testing::ValueOrAbort(graph.AddValue(out, dtype));
    graph::Node n;
    n.name = out + "_node";
    n.op_type = op;
    n.opset = opset;
    n.inputs = inputs;
    n.outputs = {id};
    n.attributes = std::move(attrs);
    region.nodes.push_back(kiln::testing::ValueOrAbort(graph.AddNode(std::move(n))));
    return id;
  }
  void Output(graph::ValueId id) {
    graph.AddOutput(id);
    region.outputs.push_back(id);
  }

  StatusOr<std::unique_ptr<CompiledRegion>> Compile(JitCompiler& compiler = SharedCompiler()) const {
    return CompileElementwiseRegion(compiler, graph, region, input_dims);
  }

  graph::Graph graph;
  graph::Region region;
  std::vector<Dims> input_dims;
};

inline Dims BroadcastDims(const std::vector<Dims>& all) {
  size_t rank = 0;
  for (const Dims& d : all) rank = std::max(rank, d.size());
  Dims out(rank, 1);
  for (const Dims& d : all) {
    for (size_t k = 0; k < d.size(); ++k) {
      int64_t& o = out[rank - d.size() + k];
      if (d[k] != 1) o = d[k];
    }
  }
  return out;
}

// Flat index into an input of `dims` for domain element `flat`.
inline int64_t BroadcastSource(const Dims& domain, const Dims& dims, int64_t flat) {
  int64_t src = 0;
  int64_t stride = 1;
  const size_t rank = domain.size();
  for (size_t k = rank; k-- > 0;) {
    const int64_t idx = flat % domain[k];
    flat /= domain[k];
    const size_t off = rank - dims.size();
    if (k >= off) {
      const int64_t d = dims[k - off];
      if (d != 1) src += idx * stride;
      stride *= d;
    }
  }
  return src;
}

// Float and bool buffers with sentinel guard bands on both sides.
constexpr int64_t kGuard = 64;
constexpr float kSentinel = -12345.5f;
constexpr uint8_t kByteSentinel = 0xA5;

struct OutputBuffer {
  bool is_bool = false;
  std::vector<float> f;
  std::vector<uint8_t> b;
  int64_t n = 0;

  OutputBuffer(bool as_bool, int64_t count) : is_bool(as_bool), n(count) {
    if (is_bool) {
      b.assign(static_cast<size_t>(count + 2 * kGuard), kByteSentinel);
    } else {
      f.assign(static_cast<size_t>(count + 2 * kGuard), kSentinel);
    }
  }
  void* data() { return is_bool ? static_cast<void*>(b.data() + kGuard) : static_cast<void*>(f.data() + kGuard); }
  double at(int64_t i) const {
    return is_bool ? b[static_cast<size_t>(kGuard + i)] : f[static_cast<size_t>(kGuard + i)];
  }
  bool GuardsIntact() const {
    for (int64_t i = 0; i < kGuard; ++i) {
      if (is_bool) {
        if (b[static_cast<size_t>(i)] != kByteSentinel || b[static_cast<size_t>(kGuard + n + i)] != kByteSentinel) {
          return false;
        }
      } else if (f[static_cast<size_t>(i)] != kSentinel || f[static_cast<size_t>(kGuard + n + i)] != kSentinel) {
        return false;
      }
    }
    return true;
  }
};

// Runs `compiled` over [0, rows) in `splits` pieces (as a thread pool
// would), with fresh guarded output buffers.
inline std::vector<OutputBuffer> Run(const CompiledRegion& compiled, const std::vector<const void*>& inputs,
                                     const std::vector<bool>& output_is_bool, int64_t output_elements, int splits = 1) {
  std::vector<OutputBuffer> outs;
  for (bool is_bool : output_is_bool) outs.emplace_back(is_bool, output_elements);
  std::vector<void*> out_ptrs;
  for (OutputBuffer& o : outs) out_ptrs.push_back(o.data());
  const int64_t rows = compiled.num_rows();
  for (int s = 0; s < splits; ++s) {
    compiled.Run(inputs.data(), out_ptrs.data(), rows * s / splits, rows * (s + 1) / splits);
  }
  return outs;
}

// Reference over the domain: fn(values of each input at this element).
using Reference = std::function<double(const std::vector<double>&)>;

// Compiles and checks a single-output float or bool region against `ref`
// for whole-range and split runs. `inputs` holds the data of each runtime
// (non-baked) input, in region input order; baked inputs get nullptr.
inline void CheckRegion(const RegionBuilder& rb, const std::vector<std::vector<float>>& inputs, const Reference& ref,
                        double rel = 1e-5, double abs = 1e-30, bool bool_output = false) {
  StatusOr<std::unique_ptr<CompiledRegion>> compiled = rb.Compile();
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  const CompiledRegion& c = **compiled;
  std::printf("[compile] %s: %.2f ms, %zu code bytes, %lld rows x %lld\n", c.name().c_str(), c.compile_ms(),
              c.code_bytes(), static_cast<long long>(c.num_rows()), static_cast<long long>(c.row_len()));
  const Dims domain = BroadcastDims(rb.input_dims);
  const int64_t n = ElementCount(domain);
  EXPECT_EQ(c.num_rows() * c.row_len(), n);

  std::vector<const void*> ptrs;
  for (size_t i = 0; i < rb.region.inputs.size(); ++i) {
    ptrs.push_back(c.is_input_baked(i) ? nullptr : static_cast<const void*>(inputs[i].data()));
  }
  std::vector<double> args(rb.region.inputs.size());
  for (int splits : {1, 2, 3}) {
    std::vector<OutputBuffer> outs = Run(c, ptrs, {bool_output}, n, splits);
    EXPECT_TRUE(outs[0].GuardsIntact()) << "write outside the output buffer";
    int failures = 0;
    for (int64_t e = 0; e < n && failures < 10; ++e) {
      for (size_t i = 0; i < args.size(); ++i) {
        const graph::Value& v = rb.graph.value(rb.region.inputs[i]);
        const int64_t src = BroadcastSource(domain, rb.input_dims[i], e);
        if (v.constant) {
          args[i] = v.constant->dtype() == DType::kInt64 ? static_cast<double>(v.constant->data<int64_t>()[src])
                                                         : v.constant->data<float>()[src];
        } else {
          args[i] = inputs[i][static_cast<size_t>(src)];
        }
      }
      const double want = ref(args);
      const double got = outs[0].at(e);
      if (!IsClose(got, want, rel, abs)) {
        ++failures;
        ADD_FAILURE() << "element " << e << " (splits " << splits << "): got " << got << ", want " << want
                      << " for input0=" << args[0];
      }
    }
  }
}

// -range..range in `n` evenly spaced floats.
inline std::vector<float> Linspace(float lo, float hi, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = lo + (hi - lo) * static_cast<float>(i) / (n - 1);
  return v;
}

}  // namespace kiln::jit::testing
