#include "runtime/host_cpu.h"

#include <cpuid.h>

#include <algorithm>
#include <thread>

#include "kiln/session.h"

namespace kiln::runtime {

CpuidWords ReadCpuid() {
  CpuidWords words;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) words.leaf1_ecx = ecx;
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    words.leaf7_ebx = ebx;
  }
  if (__get_cpuid(0x80000001u, &eax, &ebx, &ecx, &edx)) words.ext_leaf1_ecx = ecx;
  // XGETBV faults unless the OS enabled it (OSXSAVE).
  if (words.leaf1_ecx & (1u << 27)) {
    uint32_t lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    words.xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  }
  return words;
}

std::vector<std::string> MissingX86_64V3Features(const CpuidWords& w) {
  struct Feature {
    const char* name;
    bool present;
  };
  // AVX needs the OS to save XMM and YMM state (XCR0 bits 1 and 2), not
  // only the CPU to have it.
  const bool os_saves_ymm = (w.leaf1_ecx & (1u << 27)) && (w.xcr0 & 0x6) == 0x6;
  const Feature features[] = {
      {"AVX", (w.leaf1_ecx & (1u << 28)) && os_saves_ymm},
      {"AVX2", (w.leaf7_ebx & (1u << 5)) != 0},
      {"FMA", (w.leaf1_ecx & (1u << 12)) != 0},
      {"F16C", (w.leaf1_ecx & (1u << 29)) != 0},
      {"BMI1", (w.leaf7_ebx & (1u << 3)) != 0},
      {"BMI2", (w.leaf7_ebx & (1u << 8)) != 0},
      {"LZCNT", (w.ext_leaf1_ecx & (1u << 5)) != 0},
      {"MOVBE", (w.leaf1_ecx & (1u << 22)) != 0},
  };
  std::vector<std::string> missing;
  for (const Feature& f : features) {
    if (!f.present) missing.push_back(f.name);
  }
  return missing;
}

Status CheckCpuid(const CpuidWords& words) {
  const std::vector<std::string> missing = MissingX86_64V3Features(words);
  if (missing.empty()) return Status::Ok();
  std::string list;
  for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
  // Built without StrCat: its instantiations are shared with code compiled
  // for x86-64-v3, and the linker may keep any one of them.
  return Status(StatusCode::kUnsupported,
                "this CPU lacks " + list + ", which kiln's kernels need (x86-64-v3: Haswell, Zen 1 or newer)");
}

int HostCores() {
  static const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return cores;
}

}  // namespace kiln::runtime

namespace kiln {

// The CPU does not change under a running process, and CPUID traps to the
// hypervisor on virtual machines: read it once.
Status CheckHostCpu() {
  static const Status status = runtime::CheckCpuid(runtime::ReadCpuid());
  return status;
}

}  // namespace kiln
