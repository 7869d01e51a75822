// Whether this CPU can run kiln's compiled-in kernels, which are built for
// x86-64-v3 (see .bazelrc). Checked before any of that code runs, so a
// host without AVX2 gets an error naming what it lacks rather than SIGILL.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/status.h"

namespace kiln::runtime {

// The CPUID and XGETBV words the check reads.
struct CpuidWords {
  uint32_t leaf1_ecx = 0;      // FMA, MOVBE, XSAVE, OSXSAVE, AVX, F16C
  uint32_t leaf7_ebx = 0;      // BMI1, AVX2, BMI2
  uint32_t ext_leaf1_ecx = 0;  // LZCNT
  uint64_t xcr0 = 0;           // whether the OS saves YMM state
};

// This CPU's words. Compiled for baseline x86-64, so it runs anywhere.
CpuidWords ReadCpuid();

// The x86-64-v3 features missing from `words` ("AVX2", "FMA", ...); empty
// when kiln's kernels can run.
std::vector<std::string> MissingX86_64V3Features(const CpuidWords& words);

// Ok, or Unsupported naming the missing features.
Status CheckCpuid(const CpuidWords& words);

// The cores this process can run on (at least 1), counted once per process:
// std::thread::hardware_concurrency reads /sys on every call, a noticeable
// part of creating a session for a small model.
int HostCores();

}  // namespace kiln::runtime
