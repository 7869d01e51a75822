// The depthwise convolution generator's machine code for CPUs this host may
// not have (numerics are checked end to end in
// test/runtime/depthwise_region_test.cc): AVX-512 code uses zmm registers,
// FMAs and mask registers for a partial last vector; AVX2 code uses ymm
// only, with AVX2's masked moves; bad problems are refused.
#include "jit/depthwise_codegen.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kiln::jit {
namespace {

// 3x3 stride 1 over 14x14 with 40 channels: 2.5 AVX-512 vectors, 5 AVX2 ones.
DepthwiseProblem Problem() {
  DepthwiseProblem p;
  p.batch = 1;
  p.in_h = p.in_w = 14;
  p.channels = 40;
  p.kernel_h = p.kernel_w = 3;
  p.pad_top = p.pad_left = 1;
  p.out_h = p.out_w = 14;
  p.epilogue.has_bias = true;
  p.epilogue.activation = GemmActivation::kHardSwish;
  return p;
}

const std::vector<float> kWeight(40 * 9, 0.5f);
const std::vector<float> kBias(40, 0.25f);

TEST(DepthwiseCodegenAssemblyTest, Avx512UsesZmmFmaAndMasks) {
  for (const char* cpu : {"skylake-avx512", "znver4"}) {
    SCOPED_TRACE(cpu);
    StatusOr<std::string> text = EmitDepthwiseAssembly(Problem(), kWeight.data(), kBias.data(), cpu, "");
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    EXPECT_NE(text->find("zmm"), std::string::npos);
    EXPECT_NE(text->find("vfmadd"), std::string::npos);
    EXPECT_NE(text->find("{%k"), std::string::npos);  // the masked last vector
  }
}

TEST(DepthwiseCodegenAssemblyTest, Avx2UsesYmmOnly) {
  DepthwiseProblem p = Problem();
  p.channels = 44;  // 5.5 AVX2 vectors: a masked tail
  const std::vector<float> weight(44 * 9, 0.5f), bias(44, 0.25f);
  StatusOr<std::string> text = EmitDepthwiseAssembly(p, weight.data(), bias.data(), "haswell", "");
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_NE(text->find("ymm"), std::string::npos);
  EXPECT_NE(text->find("vfmadd"), std::string::npos);
  EXPECT_NE(text->find("vmaskmovps"), std::string::npos);
  EXPECT_EQ(text->find("zmm"), std::string::npos);
}

TEST(DepthwiseCodegenTest, RefusesBadProblems) {
  DepthwiseProblem empty = Problem();
  empty.out_w = 0;
  EXPECT_EQ(EmitDepthwiseAssembly(empty, kWeight.data(), kBias.data(), "znver4", "").status().code(),
            StatusCode::kInvalidArgument);
  DepthwiseProblem clip = Problem();
  clip.epilogue.activation = GemmActivation::kClip;
  clip.epilogue.alpha = 6.0f;
  clip.epilogue.beta = 0.0f;
  EXPECT_EQ(EmitDepthwiseAssembly(clip, kWeight.data(), kBias.data(), "znver4", "").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EmitDepthwiseAssembly(Problem(), kWeight.data(), nullptr, "znver4", "").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EmitDepthwiseAssembly(Problem(), kWeight.data(), kBias.data(), "no-such-cpu", "").status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::jit
