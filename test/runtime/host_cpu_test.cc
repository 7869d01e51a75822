// The x86-64-v3 check that refuses CPUs kiln's kernels cannot run on.
#include "runtime/host_cpu.h"

#include <gtest/gtest.h>

#include "kiln/session.h"

namespace kiln::runtime {
namespace {

// Every x86-64-v3 feature present, and the OS saving YMM state.
CpuidWords Haswell() {
  CpuidWords w;
  w.leaf1_ecx = (1u << 12) | (1u << 22) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 29);
  w.leaf7_ebx = (1u << 3) | (1u << 5) | (1u << 8);
  w.ext_leaf1_ecx = 1u << 5;
  w.xcr0 = 0x7;
  return w;
}

TEST(HostCpu, X86_64V3PassesAndThisHostPasses) {
  EXPECT_TRUE(MissingX86_64V3Features(Haswell()).empty());
  EXPECT_TRUE(CheckCpuid(Haswell()).ok());
  // The tests run, so this host runs x86-64-v3 code.
  EXPECT_TRUE(CheckHostCpu().ok()) << CheckHostCpu().ToString();
}

TEST(HostCpu, SandyBridgeIsRefusedNamingWhatItLacks) {
  CpuidWords w = Haswell();
  w.leaf7_ebx = 0;             // no AVX2, BMI1, BMI2
  w.leaf1_ecx &= ~(1u << 12);  // no FMA
  const Status status = CheckCpuid(w);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kUnsupported);
  for (const char* name : {"AVX2", "FMA", "BMI1", "BMI2"}) {
    EXPECT_NE(status.message().find(name), std::string::npos) << status.message();
  }
  EXPECT_EQ(status.message().find("F16C"), std::string::npos) << status.message();
}

TEST(HostCpu, AvxWithoutOperatingSystemSupportIsMissing) {
  CpuidWords w = Haswell();
  w.xcr0 = 0x3;  // YMM state not enabled by the OS
  const auto missing = MissingX86_64V3Features(w);
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0], "AVX");
}

}  // namespace
}  // namespace kiln::runtime
