#include "jit/gemm_packing.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

namespace kiln::jit::internal {
namespace {

// "48K" or "1024K" as /sys writes cache sizes; 0 when unreadable.
int64_t ReadSysCacheSize(const std::string& index) {
  std::ifstream file("/sys/devices/system/cpu/cpu0/cache/" + index + "/size");
  std::string text;
  if (!(file >> text) || text.empty()) return 0;
  int64_t scale = 1;
  if (text.back() == 'K') scale = 1 << 10;
  if (text.back() == 'M') scale = 1 << 20;
  return std::atoll(text.c_str()) * scale;
}

// The cache index directories whose level and type match, e.g. level 1 data.
int64_t SysCacheSize(int level, const char* type) {
  for (int i = 0; i < 8; ++i) {
    const std::string index = "index" + std::to_string(i);
    std::ifstream level_file("/sys/devices/system/cpu/cpu0/cache/" + index + "/level");
    std::ifstream type_file("/sys/devices/system/cpu/cpu0/cache/" + index + "/type");
    int l = 0;
    std::string t;
    if (!(level_file >> l) || !(type_file >> t)) continue;
    if (l == level && (t == type || t == "Unified")) return ReadSysCacheSize(index);
  }
  return 0;
}

// Relative cost of one step of k for a tile of rows x vecs: its FMAs, but at
// least the FMA latency times the FMA ports (fewer independent accumulators
// leave the ports idle), plus the loads (one broadcast per row, one vector
// per column vector) that compete with the FMAs for issue slots.
double TileStepCost(int64_t rows, int64_t vecs) {
  constexpr double kMinChains = 8;  // 4-cycle FMA latency x 2 FMA ports on current x86 cores
  constexpr double kLoadCost = 0.25;
  return std::max(static_cast<double>(rows * vecs), kMinChains) + kLoadCost * static_cast<double>(rows + vecs);
}

// Cost of all register tiles of an m x n product with an mr x nv tile, per
// step of k: full tiles, the M edge (one smaller tile) and the N edge (a
// narrower last panel).
double LayoutCost(int64_t m, int64_t n, int mr, int nv, int lanes) {
  const int64_t nr = int64_t{nv} * lanes;
  const int64_t full_rows = m / mr, tail_rows = m % mr;
  const int64_t full_panels = n / nr;
  const int64_t tail_vecs = (n % nr + lanes - 1) / lanes;
  auto column_cost = [&](int64_t vecs) {
    double cost = static_cast<double>(full_rows) * TileStepCost(mr, vecs);
    if (tail_rows > 0) cost += TileStepCost(tail_rows, vecs);
    return cost;
  };
  double cost = static_cast<double>(full_panels) * column_cost(nv);
  if (tail_vecs > 0) cost += column_cost(tail_vecs);
  return cost;
}

int64_t RoundUp(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

// Maps the whole pages of [data, data + bytes) in one system call. A packed
// weight is fresh memory that is written once, page by page; faulting each
// page in separately costs more than the copy itself (about twice as much
// in a VM, where every fault is an exit). Best effort: without kernel
// support (before Linux 5.14) the pages fault in as they are written.
void PrefaultForWrite(void* data, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  if (page == 0 || bytes < page) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) / page * page;
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace

const CacheSizes& HostCacheSizes() {
  static const CacheSizes sizes = [] {
    CacheSizes s;
    int64_t l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    int64_t l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (l1 <= 0) l1 = SysCacheSize(1, "Data");
    if (l2 <= 0) l2 = SysCacheSize(2, "Unified");
    // Implausible answers (some VMs report 0 or a few bytes) keep the defaults.
    constexpr int64_t kMinL1 = int64_t{8} << 10, kMaxL1 = int64_t{4} << 20;
    constexpr int64_t kMinL2 = int64_t{64} << 10, kMaxL2 = int64_t{256} << 20;
    if (l1 >= kMinL1 && l1 <= kMaxL1) s.l1d_bytes = l1;
    if (l2 >= kMinL2 && l2 <= kMaxL2) s.l2_bytes = l2;
    return s;
  }();
  return sizes;
}

StatusOr<GemmLayout> ChooseGemmLayout(int64_t m, int64_t n, int64_t k, const GemmIsa& isa, const CacheSizes& caches,
                                      const GemmTileOverride& override_tile) {
  if (n <= 0 || k <= 0) return InvalidArgument("jit: GEMM needs n > 0 and k > 0, got n=", n, " k=", k);
  GemmLayout layout;
  layout.lanes = isa.lanes;
  layout.n = n;
  layout.k = k;

  // Candidate tiles: accumulators + one register per B vector + one for the
  // broadcast of A must fit the register file.
  struct Tile {
    int mr, nv;
  };
  std::vector<Tile> candidates;
  if (isa.registers >= 32) {
    // 14 x 2 vectors (28 accumulators) also fits on paper, but left LLVM's
    // register allocator spilling in the k loop: a third of the speed of
    // 8 x 3 on Zen 5. GemmTuning can still ask for it.
    candidates = {{8, 3}, {6, 4}};
  } else {
    candidates = {{6, 2}};
  }
  // A static M that is smaller than the tile: a single row block, as wide
  // as the registers allow (M = 1 is a GEMV, bound by streaming B: wide
  // panels and few rows).
  if (m > 0) {
    std::vector<Tile> clipped;
    for (Tile t : candidates) {
      if (m < t.mr) {
        t.mr = static_cast<int>(m);
        while (t.mr * (t.nv + 1) + (t.nv + 1) + 1 <= isa.registers && t.nv < 4) ++t.nv;
      }
      clipped.push_back(t);
    }
    candidates = clipped;
  }
  // Dynamic M: tiles chosen for a large M.
  // A multiple of every tile row count (8 and 6, and 14 that GemmTuning can
  // still ask for), so for a large dynamic M the cost compares full tiles,
  // not M edges.
  constexpr int64_t kDynamicMForCost = 14 * 8 * 3;
  const int64_t m_for_cost = m > 0 ? m : kDynamicMForCost;
  Tile best = candidates.front();
  double best_cost = std::numeric_limits<double>::max();
  for (const Tile& t : candidates) {
    const double cost = LayoutCost(m_for_cost, n, t.mr, t.nv, isa.lanes);
    if (cost < best_cost) {
      best_cost = cost;
      best = t;
    }
  }
  if (override_tile.mr > 0) best.mr = override_tile.mr;
  if (override_tile.nv > 0) best.nv = override_tile.nv;
  if (best.mr > 16 || best.mr * best.nv + best.nv + 1 > isa.registers) {
    return InvalidArgument("jit: a ", best.mr, "x", best.nv, "-vector GEMM tile does not fit ", isa.registers, " ",
                           isa.name, " registers (at most 16 rows)");
  }
  layout.mr = best.mr;
  layout.nv = best.nv;
  const int64_t nr = layout.nr();
  layout.full_panels = n / nr;
  const int64_t rem = n % nr;
  layout.tail_nv = static_cast<int>((rem + isa.lanes - 1) / isa.lanes);
  layout.tail_lanes = rem == 0 ? 0 : static_cast<int>(rem - int64_t{layout.tail_nv - 1} * isa.lanes);

  // K block: a kc x nr panel of B takes an eighth of L2, so it stays there
  // (with A's block and C's rows beside it) while the row blocks of A pass
  // over it; the hardware prefetcher streams it into L1. Panels sized for
  // L1 instead (kc ~ 100 for 48 columns) make many more K blocks, and the
  // round trip of C through memory between K blocks costs more than the
  // closer panel saves. A single row block reuses nothing: its B is
  // streamed once, unblocked.
  constexpr int64_t kL2ShareForB = 8;  // B's K block takes 1/8 of L2
  // A floor for a tiny (or misread) L2: shorter K blocks would spend more
  // on C round trips between blocks than the multiply-adds they hold.
  constexpr int64_t kMinKc = 64;
  // Block depths are a multiple of the k loop's unroll (2 or 4 steps for
  // most tiles), so a full block leaves no steps for the one-at-a-time tail.
  constexpr int64_t kKcMultiple = 8;
  int64_t kc_target = override_tile.kc;
  if (kc_target <= 0) {
    const int64_t b_row_bytes = nr * static_cast<int64_t>(sizeof(float));
    kc_target =
        m == 1 ? k
               : std::max<int64_t>(kMinKc, caches.l2_bytes / kL2ShareForB / b_row_bytes / kKcMultiple * kKcMultiple);
    // A last block much shorter than the others costs a C round trip for little work.
    if (k <= kc_target + kc_target / 4) kc_target = k;
  }
  if (override_tile.kc > 0) {
    // Exactly the depth asked for, the last block taking what is left:
    // bit-exact code must block K as the interpreter does.
    layout.kc = std::min(k, override_tile.kc);
    layout.num_kblocks = (k + layout.kc - 1) / layout.kc;
    return layout;
  }
  // Blocks of equal depth (rounded up to the unroll), so the last is not
  // much shorter than the others.
  layout.num_kblocks = (k + kc_target - 1) / kc_target;
  layout.kc = std::min(k, RoundUp((k + layout.num_kblocks - 1) / layout.num_kblocks, kKcMultiple));
  layout.num_kblocks = (k + layout.kc - 1) / layout.kc;
  return layout;
}

void FreeAlignedFloats::operator()(float* p) const { std::free(p); }

StatusOr<AlignedFloats> PackGemmWeight(const GemmLayout& layout, const float* weight, bool transposed) {
  const size_t floats = layout.packed_floats();
  // Cache-line aligned, so the vector loads of B never split a line.
  constexpr int64_t kAlignment = 64;
  const auto bytes = static_cast<size_t>(RoundUp(static_cast<int64_t>(floats * sizeof(float)), kAlignment));
  AlignedFloats packed(static_cast<float*>(std::aligned_alloc(kAlignment, bytes)));
  if (packed == nullptr) return ResourceExhausted("jit: cannot allocate ", bytes, " bytes for a packed GEMM weight");
  PrefaultForWrite(packed.get(), bytes);
  float* out = packed.get();
  const int64_t n = layout.n, k = layout.k;
  for (int64_t kb = 0; kb < layout.num_kblocks; ++kb) {
    const int64_t k0 = kb * layout.kc;
    const int64_t kcb = std::min(layout.kc, k - k0);
    for (int64_t p = 0; p < layout.num_panels(); ++p) {
      const int64_t col0 = p * layout.nr();
      const int64_t width = p < layout.full_panels ? layout.nr() : int64_t{layout.tail_nv} * layout.lanes;
      const int64_t live = std::min(width, n - col0);
      for (int64_t kk = 0; kk < kcb; ++kk) {
        const int64_t row = k0 + kk;
        if (transposed) {
          for (int64_t j = 0; j < live; ++j) out[j] = weight[(col0 + j) * k + row];
        } else {
          std::memcpy(out, weight + row * n + col0, static_cast<size_t>(live) * sizeof(float));
        }
        for (int64_t j = live; j < width; ++j) out[j] = 0.0f;
        out += width;
      }
    }
  }
  return packed;
}

}  // namespace kiln::jit::internal
