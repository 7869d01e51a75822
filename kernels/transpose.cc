// Transpose. The permutation is first simplified: unit axes are dropped and
// input axes that stay adjacent in the output are merged, so that e.g.
// NHWC->NCHW becomes a batched 2-D transpose [N, HW, C] -> [N, C, HW] and
// [B, S, H, D] -> [B, H, S, D] becomes a copy of D-element rows. Then:
//   - identity permutation: one memcpy;
//   - the input's innermost axis stays innermost: a strided copy of
//     contiguous rows (StridedCopy);
//   - otherwise: cache-blocked 2-D tiles between the input's innermost axis
//     and the output's innermost axis, batched over the remaining axes.
#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "kernels/tensor_ops_common.h"

namespace kiln::kernels {
namespace {

struct Simplified {
  Dims in_dims;               // reduced input dims
  std::vector<int64_t> perm;  // over the reduced axes
};

Simplified Simplify(const Dims& dims, const std::vector<int64_t>& perm) {
  const size_t rank = dims.size();
  // Renumber the non-unit input axes.
  std::vector<int64_t> new_index(rank, -1);
  Dims kept_dims;
  for (size_t i = 0; i < rank; ++i) {
    if (dims[i] != 1) {
      new_index[i] = static_cast<int64_t>(kept_dims.size());
      kept_dims.push_back(dims[i]);
    }
  }
  std::vector<int64_t> p;
  for (int64_t a : perm) {
    if (new_index[static_cast<size_t>(a)] >= 0) p.push_back(new_index[static_cast<size_t>(a)]);
  }
  // Group runs of output axes that are consecutive input axes; each group
  // becomes one axis.
  std::vector<int64_t> group_heads;  // first input axis of each group, output order
  for (size_t i = 0; i < p.size(); ++i) {
    if (i > 0 && p[i] == p[i - 1] + 1) continue;
    group_heads.push_back(p[i]);
  }
  // In input order the groups are the ranges between consecutive heads; each
  // group's dim is the product of its member axes.
  std::vector<int64_t> sorted_heads = group_heads;
  std::sort(sorted_heads.begin(), sorted_heads.end());
  Simplified s;
  for (size_t g = 0; g < sorted_heads.size(); ++g) {
    const int64_t begin = sorted_heads[g];
    const int64_t end = g + 1 < sorted_heads.size() ? sorted_heads[g + 1] : static_cast<int64_t>(kept_dims.size());
    int64_t d = 1;
    for (int64_t a = begin; a < end; ++a) d *= kept_dims[static_cast<size_t>(a)];
    s.in_dims.push_back(d);
  }
  for (int64_t head : group_heads) {
    s.perm.push_back(std::lower_bound(sorted_heads.begin(), sorted_heads.end(), head) - sorted_heads.begin());
  }
  return s;
}

// dst[a * dst_ld + b] = src[a + b * src_ld] over the tile [a0, a1) x [b0, b1).
template <typename T>
void TransposeTileScalar(const T* src, int64_t src_ld, T* dst, int64_t dst_ld, int64_t a0, int64_t a1, int64_t b0,
                         int64_t b1) {
  constexpr int64_t kShortRow = 8;
  if (b1 - b0 < kShortRow) {
    // Few output columns (an image's 3 channels): walk each source row
    // along its contiguous length instead of a few elements at a time.
    for (int64_t b = b0; b < b1; ++b) {
      const T* s = src + b * src_ld;
      T* d = dst + b;
      for (int64_t a = a0; a < a1; ++a) d[a * dst_ld] = s[a];
    }
    return;
  }
  for (int64_t a = a0; a < a1; ++a) {
    T* d = dst + a * dst_ld;
    const T* s = src + a;
    for (int64_t b = b0; b < b1; ++b) d[b] = s[b * src_ld];
  }
}

#if defined(__AVX2__)
// One 8x8 block of 32-bit elements through registers: eight contiguous
// source rows in, eight contiguous output rows out.
inline void Transpose8x8(const uint32_t* src, int64_t src_ld, uint32_t* dst, int64_t dst_ld) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(reinterpret_cast<const float*>(src + i * src_ld));
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);
  const __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);
  const __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]);
  const __m256 t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]);
  const __m256 t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44);
  const __m256 u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44);
  const __m256 u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44);
  const __m256 u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44);
  const __m256 u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  const __m256 o[8] = {
      _mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20), _mm256_permute2f128_ps(u2, u6, 0x20),
      _mm256_permute2f128_ps(u3, u7, 0x20), _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
      _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31),
  };
  for (int i = 0; i < 8; ++i) _mm256_storeu_ps(reinterpret_cast<float*>(dst + i * dst_ld), o[i]);
}
#endif

#if defined(__AVX2__)
// Eight elements of each of three source rows (an RGB image's channels)
// interleaved into 24 contiguous ones, through registers: output vector o,
// lane l holds element (8 o + l) / 3 of row (8 o + l) % 3.
alignas(32) constexpr int32_t kInterleave3Element[3][8] = {
    {0, 0, 0, 1, 1, 1, 2, 2}, {2, 3, 3, 3, 4, 4, 4, 5}, {5, 5, 6, 6, 6, 7, 7, 7}};
alignas(32) constexpr int32_t kInterleave3Row[3][8] = {
    {0, 1, 2, 0, 1, 2, 0, 1}, {2, 0, 1, 2, 0, 1, 2, 0}, {1, 2, 0, 1, 2, 0, 1, 2}};

inline void Interleave3x8(const uint32_t* src, int64_t src_ld, uint32_t* dst) {
  __m256i rows[3];
  for (int r = 0; r < 3; ++r) rows[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + r * src_ld));
  for (int o = 0; o < 3; ++o) {
    const __m256i idx = _mm256_load_si256(reinterpret_cast<const __m256i*>(kInterleave3Element[o]));
    const __m256i which = _mm256_load_si256(reinterpret_cast<const __m256i*>(kInterleave3Row[o]));
    __m256i out = _mm256_permutevar8x32_epi32(rows[0], idx);
    for (int r = 1; r < 3; ++r) {
      const __m256i mask = _mm256_cmpeq_epi32(which, _mm256_set1_epi32(r));
      out = _mm256_blendv_epi8(out, _mm256_permutevar8x32_epi32(rows[r], idx), mask);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 8 * o), out);
  }
}
#endif

template <typename T>
void TransposeTile(const T* src, int64_t src_ld, T* dst, int64_t dst_ld, int64_t a0, int64_t a1, int64_t b0,
                   int64_t b1) {
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    if (b1 - b0 == 3 && dst_ld == 3) {
      // NCHW -> NHWC of a 3-channel image: the output is one contiguous
      // run, eight pixels (24 elements) per step.
      const int64_t a8 = a0 + (a1 - a0) / 8 * 8;
      for (int64_t a = a0; a < a8; a += 8) {
        Interleave3x8(reinterpret_cast<const uint32_t*>(src + a + b0 * src_ld), src_ld,
                      reinterpret_cast<uint32_t*>(dst + a * dst_ld + b0));
      }
      TransposeTileScalar(src, src_ld, dst, dst_ld, a8, a1, b0, b1);
      return;
    }
    // Full 8x8 blocks in registers; the ragged right and bottom edges fall
    // back to the scalar loop.
    const int64_t a8 = a0 + (a1 - a0) / 8 * 8;
    const int64_t b8 = b0 + (b1 - b0) / 8 * 8;
    for (int64_t a = a0; a < a8; a += 8) {
      for (int64_t b = b0; b < b8; b += 8) {
        Transpose8x8(reinterpret_cast<const uint32_t*>(src + a + b * src_ld), src_ld,
                     reinterpret_cast<uint32_t*>(dst + a * dst_ld + b), dst_ld);
      }
    }
    TransposeTileScalar(src, src_ld, dst, dst_ld, a0, a8, b8, b1);
    TransposeTileScalar(src, src_ld, dst, dst_ld, a8, a1, b0, b1);
    return;
  }
#endif
  TransposeTileScalar(src, src_ld, dst, dst_ld, a0, a1, b0, b1);
}

struct BlockedPlan {
  int64_t a_size, b_size;          // tile plane: input-inner x output-inner
  int64_t src_ld, dst_ld;          // source stride along b, output stride along a
  Dims batch_dims;                 // the other axes, output order
  std::vector<int64_t> batch_src;  // their source strides
  std::vector<int64_t> batch_dst;  // their output strides
};

template <typename T>
void RunBlocked(const ParallelRunner& parallel, const BlockedPlan& plan, const T* src, T* dst) {
  // A tile of about 2048 elements (8 KiB of floats; 32 x 64 when both sides
  // are long) fits L1 with room to spare, so both its strided reads and its
  // strided writes hit cache lines that are still resident.
  constexpr int64_t kTileSide = 32;
  constexpr int64_t kTileElements = 2048;
  // A short output-inner side (NCHW -> NHWC of an RGB image: 3) gets long
  // tiles the other way, or each tile would be a few dozen elements and
  // the per-tile bookkeeping would cost more than the copy.
  constexpr int64_t kShortSide = 8;
  const int64_t ta = plan.b_size < kShortSide ? std::min<int64_t>(plan.a_size, kTileElements / plan.b_size)
                                              : std::min<int64_t>(plan.a_size, kTileSide);
  const int64_t tb = std::min<int64_t>(plan.b_size, std::max<int64_t>(kTileSide, kTileElements / ta));
  const int64_t a_blocks = (plan.a_size + ta - 1) / ta;
  const int64_t b_blocks = (plan.b_size + tb - 1) / tb;
  int64_t batches = 1;
  for (int64_t d : plan.batch_dims) batches *= d;
  const int64_t tasks = batches * a_blocks * b_blocks;
  const int64_t grain = std::max<int64_t>(1, 16384 / (ta * tb));
  parallel.For(tasks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      int64_t rest = t / (a_blocks * b_blocks);
      const int64_t in_plane = t % (a_blocks * b_blocks);
      int64_t src_off = 0, dst_off = 0;
      for (size_t i = plan.batch_dims.size(); i-- > 0;) {
        const int64_t c = rest % plan.batch_dims[i];
        rest /= plan.batch_dims[i];
        src_off += c * plan.batch_src[i];
        dst_off += c * plan.batch_dst[i];
      }
      const int64_t a0 = (in_plane / b_blocks) * ta;
      const int64_t b0 = (in_plane % b_blocks) * tb;
      TransposeTile(src + src_off, plan.src_ld, dst + dst_off, plan.dst_ld, a0, std::min(a0 + ta, plan.a_size), b0,
                    std::min(b0 + tb, plan.b_size));
    }
  });
}

class TransposeKernel final : public OpKernel {
 public:
  explicit TransposeKernel(std::vector<int64_t> perm) : perm_(std::move(perm)) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    if (in == nullptr) return InvalidArgument("Transpose: input is missing");
    const int64_t rank = in->rank();
    std::vector<int64_t> perm = perm_;
    if (perm.empty()) {
      perm.resize(static_cast<size_t>(rank));
      for (int64_t i = 0; i < rank; ++i) perm[static_cast<size_t>(i)] = rank - 1 - i;
    }
    if (static_cast<int64_t>(perm.size()) != rank) {
      return InvalidArgument("Transpose: perm has ", perm.size(), " entries but the input ", DimsToString(in->dims()),
                             " has rank ", rank);
    }
    std::vector<bool> seen(static_cast<size_t>(rank), false);
    for (int64_t a : perm) {
      if (a < 0 || a >= rank || seen[static_cast<size_t>(a)]) {
        return InvalidArgument("Transpose: perm ", DimsToString(perm), " is not a permutation of [0, ", rank, ")");
      }
      seen[static_cast<size_t>(a)] = true;
    }
    Dims out_dims(static_cast<size_t>(rank));
    for (int64_t i = 0; i < rank; ++i) out_dims[static_cast<size_t>(i)] = in->dim(perm[static_cast<size_t>(i)]);
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, in->dtype(), out_dims));
    if (in->num_elements() == 0) return Status::Ok();

    // -- No failure past this point.
    const size_t es = DTypeSize(in->dtype());
    const Simplified s = Simplify(in->dims(), perm);
    const size_t k = s.in_dims.size();
    bool identity = true;
    for (size_t i = 0; i < k; ++i) identity = identity && s.perm[i] == static_cast<int64_t>(i);
    if (identity) {
      ParallelCopy(ctx.parallel(), out->raw_data(), in->raw_data(), in->byte_size());
      return Status::Ok();
    }
    const std::vector<int64_t> in_strides = ContiguousStrides(s.in_dims);
    Dims red_out(k);
    std::vector<int64_t> src_strides(k);
    for (size_t i = 0; i < k; ++i) {
      red_out[i] = s.in_dims[static_cast<size_t>(s.perm[i])];
      src_strides[i] = in_strides[static_cast<size_t>(s.perm[i])];
    }
    if (s.perm[k - 1] == static_cast<int64_t>(k - 1)) {
      StridedCopy(ctx.parallel(), es, out->raw_data(), in->raw_data(), red_out, src_strides);
      return Status::Ok();
    }
    const std::vector<int64_t> out_strides = ContiguousStrides(red_out);
    BlockedPlan plan;
    const size_t j =
        static_cast<size_t>(std::find(s.perm.begin(), s.perm.end(), static_cast<int64_t>(k - 1)) - s.perm.begin());
    plan.a_size = red_out[j];
    plan.b_size = red_out[k - 1];
    plan.src_ld = src_strides[k - 1];
    plan.dst_ld = out_strides[j];
    for (size_t i = 0; i + 1 < k; ++i) {
      if (i == j) continue;
      plan.batch_dims.push_back(red_out[i]);
      plan.batch_src.push_back(src_strides[i]);
      plan.batch_dst.push_back(out_strides[i]);
    }
    switch (es) {
      case 1: RunBlocked(ctx.parallel(), plan, in->data<uint8_t>(), out->data<uint8_t>()); break;
      case 2: RunBlocked(ctx.parallel(), plan, in->data<uint16_t>(), out->data<uint16_t>()); break;
      case 4: RunBlocked(ctx.parallel(), plan, in->data<uint32_t>(), out->data<uint32_t>()); break;
      default: RunBlocked(ctx.parallel(), plan, in->data<uint64_t>(), out->data<uint64_t>()); break;
    }
    return Status::Ok();
  }

 private:
  std::vector<int64_t> perm_;  // empty: reverse the axes
};

StatusOr<std::unique_ptr<OpKernel>> CreateTranspose(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> perm, node.GetInts("perm"));
  return std::unique_ptr<OpKernel>(new TransposeKernel(std::move(perm)));
}

}  // namespace

void RegisterTransposeOp(KernelRegistry& r) { r.Register(KernelDef{"Transpose", "", 1, kNoMaxOpset, CreateTranspose}); }

}  // namespace kiln::kernels
