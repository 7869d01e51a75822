// The attention generator (jit/attention_codegen.h): code compiled for this
// host runs over guarded buffers and must match a scalar softmax(QK^T)V in
// double on awkward shapes (one query, sequence lengths off the key block,
// head dims off the vector width, the exporters' [b, s, h, d] layout, masks
// of every broadcast form, -inf masks that hide whole key blocks), split
// into units of work as threads would; and its machine code for CPUs this
// host may not have: AVX-512 code uses zmm registers, FMAs and mask
// registers, AVX2 code ymm only.
#include "jit/attention_codegen.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "jit/codegen_target.h"
#include "jit/region_ops.h"
#include "test/jit/jit_test_util.h"

namespace kiln::jit {
namespace {

using testing::kGuard;
using testing::kSentinel;
using testing::OutputBuffer;
using testing::SharedCompiler;

struct MaskCase {
  Dims dims;                // broadcasting into [b, h, sq, sk]; empty: no mask
  bool causal_inf = false;  // -inf above the diagonal instead of random values
};

struct AttentionCase {
  int64_t batch, heads, queries, keys, head_dim;
  bool exporter_layout;  // operands [b, s, h, d] (the Transposes folded) instead of [b, h, s, d]
  MaskCase mask;
};

std::string Describe(const AttentionCase& c) {
  return "b" + std::to_string(c.batch) + " h" + std::to_string(c.heads) + " sq" + std::to_string(c.queries) + " sk" +
         std::to_string(c.keys) + " d" + std::to_string(c.head_dim) + (c.exporter_layout ? " bshd" : " bhsd") +
         " mask " + DimsToString(c.mask.dims) + (c.mask.causal_inf ? " causal" : "");
}

// Logical [b, h, s, d] -> the operand's dims under `axes`.
Dims Physical(const Dims& logical, const std::array<int, 4>& axes) {
  Dims d(4);
  for (size_t l = 0; l < 4; ++l) d[static_cast<size_t>(axes[l])] = logical[l];
  return d;
}

int64_t Offset(const Dims& dims, const std::array<int, 4>& axes, const std::array<int64_t, 4>& logical_index) {
  std::array<int64_t, 4> index{};
  for (size_t l = 0; l < 4; ++l) index[static_cast<size_t>(axes[l])] = logical_index[l];
  int64_t offset = 0;
  for (size_t i = 0; i < 4; ++i) offset = offset * dims[i] + index[i];
  return offset;
}

class AttentionCodegen : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionCodegen, MatchesScalarReference) {
  const AttentionCase& c = GetParam();
  SCOPED_TRACE(Describe(c));
  JitCompiler& compiler = SharedCompiler();
  llvm::Expected<std::unique_ptr<llvm::TargetMachine>> tm =
      internal::MakeTargetMachine(compiler.target_triple(), compiler.cpu_name(), compiler.cpu_features());
  ASSERT_TRUE(static_cast<bool>(tm));
  const int lanes = internal::IsaOf(**tm).lanes;

  const bool has_mask = !c.mask.dims.empty();
  AttentionLayout layout;
  layout.num_inputs = has_mask ? 5 : 4;  // input 2 stands for a baked scale constant
  layout.q_input = 0;
  layout.k_input = 1;
  layout.v_input = 3;
  layout.mask_input = has_mask ? 4 : -1;
  if (c.exporter_layout) {
    layout.q_axes = layout.k_axes = layout.v_axes = layout.out_axes = {0, 2, 1, 3};
  }
  layout.head_dim = c.head_dim;
  layout.query_chunk = AttentionQueryChunk(c.head_dim, lanes);
  AttentionProblem problem;
  problem.head_dim = c.head_dim;
  problem.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  problem.has_mask = has_mask;

  const Dims q_dims = Physical({c.batch, c.heads, c.queries, c.head_dim}, layout.q_axes);
  const Dims k_dims = Physical({c.batch, c.heads, c.keys, c.head_dim}, layout.k_axes);
  const Dims v_dims = Physical({c.batch, c.heads, c.keys, c.head_dim}, layout.v_axes);
  std::vector<Dims> input_dims = {q_dims, k_dims, {}, v_dims};
  if (has_mask) input_dims.push_back(c.mask.dims);
  std::vector<int64_t> params;
  Dims out_dims;
  double flops = 0;
  ASSERT_TRUE(PrepareAttentionCall(layout, input_dims, params, out_dims, flops).ok());
  EXPECT_EQ(out_dims, Physical({c.batch, c.heads, c.queries, c.head_dim}, layout.out_axes));
  EXPECT_DOUBLE_EQ(flops, 4.0 * static_cast<double>(c.batch * c.heads * c.queries * c.keys * c.head_dim));

  const std::string name = "attention_test_" + std::to_string(compiler.NextSerial());
  StatusOr<internal::RegionCode> code = internal::EmitAndCompile(compiler, name, [&](llvm::Module& module) {
    return EmitAttentionEntry(module, name, problem, layout, lanes, compiler.cpu_name(), compiler.cpu_features());
  });
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  auto entry = reinterpret_cast<CompiledRegion::GenericEntryFn>(static_cast<uintptr_t>(code->code->entry_address()));

  const std::vector<float> q =
      kiln::testing::RandomFloats(static_cast<size_t>(testing::ElementCount(q_dims)), 11, -2, 2);
  const std::vector<float> k =
      kiln::testing::RandomFloats(static_cast<size_t>(testing::ElementCount(k_dims)), 12, -2, 2);
  const std::vector<float> v =
      kiln::testing::RandomFloats(static_cast<size_t>(testing::ElementCount(v_dims)), 13, -1, 1);
  std::vector<float> mask;
  if (has_mask) {
    mask = kiln::testing::RandomFloats(static_cast<size_t>(testing::ElementCount(c.mask.dims)), 14, -3, 3);
    if (c.mask.causal_inf) {
      // [sq, sk]: key j hidden from query i when j > i.
      for (int64_t i = 0; i < c.queries; ++i) {
        for (int64_t j = 0; j < c.keys; ++j) {
          mask[static_cast<size_t>(i * c.keys + j)] = j > i ? -std::numeric_limits<float>::infinity() : 0.0f;
        }
      }
    }
  }
  const std::vector<const void*> inputs = {q.data(), k.data(), nullptr, v.data(), has_mask ? mask.data() : nullptr};

  // The mask's element for logical (b, h, i, j), broadcasting.
  auto mask_at = [&](int64_t b, int64_t h, int64_t i, int64_t j) -> double {
    const Dims& m = c.mask.dims;
    const int64_t full[4] = {b, h, i, j};
    int64_t offset = 0;
    for (size_t a = 0; a < m.size(); ++a) {
      const int64_t index = m[a] == 1 ? 0 : full[4 - m.size() + a];
      offset = offset * m[a] + index;
    }
    return mask[static_cast<size_t>(offset)];
  };
  const int64_t out_elements = testing::ElementCount(out_dims);
  std::vector<double> want(static_cast<size_t>(out_elements));
  std::vector<double> scores(static_cast<size_t>(c.keys));
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.heads; ++h) {
      for (int64_t i = 0; i < c.queries; ++i) {
        double max = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < c.keys; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < c.head_dim; ++d) {
            dot += static_cast<double>(q[static_cast<size_t>(Offset(q_dims, layout.q_axes, {b, h, i, d}))]) *
                   k[static_cast<size_t>(Offset(k_dims, layout.k_axes, {b, h, j, d}))];
          }
          double s = dot * problem.scale + (has_mask ? mask_at(b, h, i, j) : 0.0);
          scores[static_cast<size_t>(j)] = s;
          max = std::max(max, s);
        }
        double sum = 0;
        for (double& s : scores) sum += (s = std::exp(s - max));
        for (int64_t d = 0; d < c.head_dim; ++d) {
          double o = 0;
          for (int64_t j = 0; j < c.keys; ++j) {
            o += scores[static_cast<size_t>(j)] * v[static_cast<size_t>(Offset(v_dims, layout.v_axes, {b, h, j, d}))];
          }
          want[static_cast<size_t>(Offset(out_dims, layout.out_axes, {b, h, i, d}))] = o / sum;
        }
      }
    }
  }

  const int64_t units = params[kAttnBatch] * params[kAttnHeads] * params[kAttnChunks];
  for (int splits : {1, 3}) {
    SCOPED_TRACE("splits " + std::to_string(splits));
    OutputBuffer out(false, out_elements);
    void* outs[] = {out.data()};
    for (int s = 0; s < splits; ++s) {
      entry(inputs.data(), outs, units * s / splits, units * (s + 1) / splits, params.data());
    }
    EXPECT_TRUE(out.GuardsIntact()) << "write outside the output buffer";
    int failures = 0;
    for (int64_t e = 0; e < out_elements && failures < 10; ++e) {
      const double got = out.at(e);
      if (!(std::abs(got - want[static_cast<size_t>(e)]) <=
            2e-5 * std::max(1.0, std::abs(want[static_cast<size_t>(e)])))) {
        ++failures;
        ADD_FAILURE() << "element " << e << ": got " << got << ", want " << want[static_cast<size_t>(e)];
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionCodegen,
                         ::testing::Values(
                             // One query and one key; the zoo's shape; off the key block and the
                             // query chunk; several key tiles.
                             AttentionCase{1, 1, 1, 1, 64, true, {}}, AttentionCase{1, 4, 128, 128, 64, true, {}},
                             AttentionCase{2, 3, 7, 130, 64, false, {}}, AttentionCase{1, 2, 130, 7, 40, true, {}},
                             AttentionCase{1, 12, 67, 384, 64, true, {}},
                             // Head dims below, off and above the vector width.
                             AttentionCase{1, 2, 9, 33, 5, false, {}}, AttentionCase{1, 1, 20, 70, 24, true, {}},
                             AttentionCase{1, 1, 5, 150, 200, true, {}},
                             // Masks: a padding mask per batch and key, a full [sq, sk] bias, one
                             // value per query (key stride 0), rank 2, and a causal -inf mask
                             // that hides every key but the first from the first query.
                             AttentionCase{2, 4, 33, 70, 64, true, {{2, 1, 1, 70}}},
                             AttentionCase{1, 3, 17, 130, 40, true, {{1, 3, 17, 130}}},
                             AttentionCase{2, 2, 9, 20, 64, false, {{2, 2, 9, 1}}},
                             AttentionCase{1, 2, 12, 12, 16, true, {{12, 12}}},
                             AttentionCase{1, 2, 130, 130, 64, true, {{130, 130}, true}}));

TEST(AttentionCodegenAssemblyTest, Avx512UsesZmmFmaAndMasks) {
  AttentionProblem p;
  p.head_dim = 40;  // 2.5 AVX-512 vectors: a masked last vector of V and the output
  p.scale = 0.125f;
  p.has_mask = true;
  for (const char* cpu : {"skylake-avx512", "znver4"}) {
    SCOPED_TRACE(cpu);
    StatusOr<std::string> text = EmitAttentionAssembly(p, cpu, "");
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    EXPECT_NE(text->find("zmm"), std::string::npos);
    EXPECT_NE(text->find("vfmadd"), std::string::npos);
    EXPECT_NE(text->find("{%k"), std::string::npos);  // masked tails: keys and the head dim
  }
}

TEST(AttentionCodegenAssemblyTest, Avx2UsesYmmOnly) {
  AttentionProblem p;
  p.head_dim = 64;
  p.has_mask = true;
  StatusOr<std::string> text = EmitAttentionAssembly(p, "haswell", "");
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_NE(text->find("ymm"), std::string::npos);
  EXPECT_NE(text->find("vfmadd"), std::string::npos);
  EXPECT_NE(text->find("vmaskmovps"), std::string::npos);  // the mask's last key vector
  EXPECT_EQ(text->find("zmm"), std::string::npos);
}

TEST(AttentionCodegenTest, RefusesBadProblemsAndShapes) {
  AttentionProblem huge;
  huge.head_dim = 4096;
  EXPECT_EQ(EmitAttentionAssembly(huge, "znver4", "").status().code(), StatusCode::kUnsupported);

  AttentionLayout layout;
  layout.head_dim = 64;
  layout.query_chunk = 64;
  std::vector<int64_t> params;
  Dims out;
  double flops = 0;
  // Another head dim than compiled.
  EXPECT_EQ(PrepareAttentionCall(layout, {{1, 2, 8, 32}, {1, 2, 8, 32}, {1, 2, 8, 32}}, params, out, flops).code(),
            StatusCode::kInvalidArgument);
  // K and V of different lengths.
  EXPECT_EQ(PrepareAttentionCall(layout, {{1, 2, 8, 64}, {1, 2, 9, 64}, {1, 2, 8, 64}}, params, out, flops).code(),
            StatusCode::kInvalidArgument);
  // A mask that does not broadcast.
  layout.mask_input = 3;
  layout.num_inputs = 4;
  EXPECT_EQ(
      PrepareAttentionCall(layout, {{1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {3, 8}}, params, out, flops).code(),
      StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      PrepareAttentionCall(layout, {{1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}, {8, 1}}, params, out, flops).ok());
  EXPECT_EQ(params[kAttnMaskStrides + 3], 0);  // one value per query: key stride 0
  EXPECT_EQ(params[kAttnMaskStrides + 2], 1);
}

}  // namespace
}  // namespace kiln::jit
