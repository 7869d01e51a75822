#include "jit/attention_codegen.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/DerivedTypes.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Module.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <vector>

#include "jit/codegen_target.h"
#include "jit/region_ops.h"

namespace kiln::jit {
namespace {

// Key vectors per block of scores: with AVX-512 a block of 64 keys by 4
// query rows is 16 accumulators, leaving registers for K's rows; the
// per-block softmax work (a max, a rescale) is spread over 64 keys.
constexpr int64_t kKeyVectors = 4;
// The transposed K tile and the output accumulators live on the stack:
// bounded here so that a thread's stack never holds more than ~50 KB.
constexpr int64_t kKeyTileFloats = 8192;
constexpr int64_t kAccumulatorFloats = 4096;
constexpr int64_t kMaxHeadDim = 512;
constexpr int64_t kMaxQueryChunk = 64;

int64_t QueryRows(int lanes) { return lanes >= 16 ? 4 : 2; }

class AttentionEmitter {
 public:
  AttentionEmitter(llvm::Module& module, const AttentionProblem& p, int lanes)
      : module_(module), ctx_(module.getContext()), p_(p), lanes_(lanes) {
    f32_ = llvm::Type::getFloatTy(ctx_);
    i64_ = llvm::Type::getInt64Ty(ctx_);
    i32_ = llvm::Type::getInt32Ty(ctx_);
    vec_ = llvm::FixedVectorType::get(f32_, static_cast<unsigned>(lanes));
    d_vectors_ = (p.head_dim + lanes - 1) / lanes;
    d_tail_ = static_cast<int>(p.head_dim - (d_vectors_ - 1) * lanes);
    query_rows_ = QueryRows(lanes);
    key_block_ = kKeyVectors * lanes;
    key_tile_ = std::max<int64_t>(key_block_, kKeyTileFloats / p.head_dim / key_block_ * key_block_);
    query_chunk_ = AttentionQueryChunk(p.head_dim, lanes);
  }

  Status Emit(const std::string& name, const AttentionLayout& layout, const std::string& cpu,
              const std::string& features);

 private:
  llvm::Value* I64(int64_t v) const { return llvm::ConstantInt::get(i64_, v); }
  llvm::Value* Splat(llvm::IRBuilderBase& b, llvm::Value* x) const { return b.CreateVectorSplat(lanes_, x); }
  llvm::Value* FVec(double v) const { return llvm::ConstantFP::get(vec_, v); }
  llvm::Value* NegInf() const { return llvm::ConstantFP::getInfinity(f32_, true); }
  llvm::Value* LaneIndices() const {
    std::vector<llvm::Constant*> lanes;
    for (int l = 0; l < lanes_; ++l) lanes.push_back(llvm::ConstantInt::get(i32_, l));
    return llvm::ConstantVector::get(lanes);
  }
  llvm::Value* HeadTailMask() const {
    std::vector<llvm::Constant*> live;
    for (int l = 0; l < lanes_; ++l) live.push_back(llvm::ConstantInt::getBool(ctx_, l < d_tail_));
    return llvm::ConstantVector::get(live);
  }
  bool PartialHeadVector(int64_t dv) const { return dv == d_vectors_ - 1 && d_tail_ != lanes_; }

  // Lanes [0, remaining) of a vector live. 32-bit lane indices: one
  // compare per vector (64-bit ones take two and a mask merge).
  llvm::Value* LiveLanes(llvm::IRBuilderBase& b, llvm::Value* remaining) const {
    llvm::Value* clamped = b.CreateBinaryIntrinsic(llvm::Intrinsic::smax, remaining, I64(0));
    clamped = b.CreateBinaryIntrinsic(llvm::Intrinsic::smin, clamped, I64(lanes_));
    return b.CreateICmpSLT(LaneIndices(), b.CreateVectorSplat(lanes_, b.CreateTrunc(clamped, i32_)));
  }

  // e^x for x <= 0 (a score minus the running max), -inf or NaN: leaner than
  // EmitExp, which also serves positive arguments and denormal results.
  // Results below FLT_MIN are 0 (a weight that small cannot change a sum
  // holding the max's weight, 1); -inf gives 0 and NaN stays NaN. The
  // power of two comes from the bits of x * log2(e) + 1.5 * 2^23, whose
  // last mantissa bits are that product rounded to an integer: no float to
  // int conversion (undefined for NaN in LLVM's IR) and no rounding op.
  llvm::Value* SoftmaxExp(llvm::IRBuilderBase& b, llvm::Value* x) const {
    llvm::Type* t = x->getType();
    auto c = [&](double v) { return llvm::ConstantFP::get(t, v); };
    auto fma = [&](llvm::Value* p, llvm::Value* q, llvm::Value* r) {
      return b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {t}, {p, q, r});
    };
    llvm::Value* under = b.CreateFCmpOLT(x, c(-87.33654));  // ln(FLT_MIN); false for NaN
    llvm::Value* xc = b.CreateSelect(under, c(-87.33654), x);
    constexpr double kShifter = 12582912.0;  // 1.5 * 2^23
    llvm::Value* shifted = fma(xc, c(1.4426950408889634), c(kShifter));
    llvm::Value* n = b.CreateFSub(shifted, c(kShifter));
    llvm::Value* r = fma(n, c(-0.693145751953125), xc);  // ln 2 in two parts
    r = fma(n, c(-1.428606765330187e-06), r);
    // Taylor to r^6 on |r| <= ln(2)/2: relative error ~1.5e-7.
    llvm::Value* poly = c(1.0 / 720);
    for (double k : {1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0}) poly = fma(poly, r, c(k));
    llvm::Type* it = t->isVectorTy() ? static_cast<llvm::Type*>(llvm::FixedVectorType::get(i32_, lanes_)) : i32_;
    // bits(shifted) = bits(1.5 * 2^23) + n; the exponent field of 2^n is n + 127.
    llvm::Value* bits =
        b.CreateShl(b.CreateAdd(b.CreateBitCast(shifted, it), llvm::ConstantInt::get(it, 127 - 0x4B400000)),
                    llvm::ConstantInt::get(it, 23));
    llvm::Value* y = b.CreateFMul(poly, b.CreateBitCast(bits, t));
    return b.CreateSelect(under, c(0.0), y);
  }

  // Vector dv of a head-dim row at `row` (masked when it is the partial one).
  llvm::Value* LoadHeadVector(llvm::IRBuilderBase& b, llvm::Value* row, int64_t dv) const {
    llvm::Value* ptr = b.CreateInBoundsGEP(f32_, row, I64(dv * lanes_));
    if (PartialHeadVector(dv)) return b.CreateMaskedLoad(vec_, ptr, llvm::Align(4), HeadTailMask(), FVec(0));
    return b.CreateAlignedLoad(vec_, ptr, llvm::Align(4));
  }
  void StoreHeadVector(llvm::IRBuilderBase& b, llvm::Value* v, llvm::Value* row, int64_t dv) const {
    llvm::Value* ptr = b.CreateInBoundsGEP(f32_, row, I64(dv * lanes_));
    if (PartialHeadVector(dv)) {
      b.CreateMaskedStore(v, ptr, llvm::Align(4), HeadTailMask());
    } else {
      b.CreateAlignedStore(v, ptr, llvm::Align(4));
    }
  }

  // Halves the vector until one lane is left, combining with `op`.
  llvm::Value* Reduce(llvm::IRBuilderBase& b, llvm::Value* v,
                      const std::function<llvm::Value*(llvm::Value*, llvm::Value*)>& op) const {
    for (int width = lanes_; width > 1; width /= 2) {
      std::vector<int> lo, hi;
      for (int l = 0; l < width / 2; ++l) {
        lo.push_back(l);
        hi.push_back(l + width / 2);
      }
      v = op(b.CreateShuffleVector(v, lo), b.CreateShuffleVector(v, hi));
    }
    return b.CreateExtractElement(v, uint64_t{0});
  }
  // x86's max: y when either is NaN (a NaN score still reaches the output
  // through its exp). maxnum would add a NaN check to every max.
  llvm::Value* Max(llvm::IRBuilderBase& b, llvm::Value* x, llvm::Value* y) const {
    return b.CreateSelect(b.CreateFCmpOGT(x, y), x, y);
  }

  // for (i = begin; i < end; ++i) body(i), with begin < end checked first.
  void EmitLoop(llvm::IRBuilderBase& b, llvm::Value* begin, llvm::Value* end, const char* label,
                const std::function<void(llvm::Value*)>& body) const;

  // Transposes K's keys [j0, j0 + keys) of the (batch, head) at `k_head`
  // into the tile: tile[d * key_tile_ + j - j0].
  void EmitPackKeys(llvm::IRBuilderBase& b, llvm::Value* k_head, llvm::Value* k_seq_stride, llvm::Value* j0,
                    llvm::Value* keys, llvm::Value* num_keys, llvm::Value* tile) const;

  llvm::Module& module_;
  llvm::LLVMContext& ctx_;
  const AttentionProblem& p_;
  int lanes_;
  int64_t d_vectors_ = 0;
  int d_tail_ = 0;
  int64_t query_rows_ = 0;
  int64_t key_block_ = 0;
  int64_t key_tile_ = 0;
  int64_t query_chunk_ = 0;
  llvm::Type* f32_;
  llvm::Type* i64_;
  llvm::Type* i32_;
  llvm::FixedVectorType* vec_;
};

void AttentionEmitter::EmitLoop(llvm::IRBuilderBase& b, llvm::Value* begin, llvm::Value* end, const char* label,
                                const std::function<void(llvm::Value*)>& body) const {
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::BasicBlock* before = b.GetInsertBlock();
  auto* loop = llvm::BasicBlock::Create(ctx_, label, fn);
  auto* done = llvm::BasicBlock::Create(ctx_, std::string(label) + "_done", fn);
  b.CreateCondBr(b.CreateICmpSLT(begin, end), loop, done);
  b.SetInsertPoint(loop);
  llvm::PHINode* i = b.CreatePHI(i64_, 2, label);
  i->addIncoming(begin, before);
  body(i);
  llvm::Value* next = b.CreateAdd(i, I64(1));
  i->addIncoming(next, b.GetInsertBlock());
  b.CreateCondBr(b.CreateICmpSLT(next, end), loop, done);
  b.SetInsertPoint(done);
}

void AttentionEmitter::EmitPackKeys(llvm::IRBuilderBase& b, llvm::Value* k_head, llvm::Value* k_seq_stride,
                                    llvm::Value* j0, llvm::Value* keys, llvm::Value* num_keys,
                                    llvm::Value* tile) const {
  // W keys at a time: load W rows of K (keys past the end repeat the last
  // one; their scores are masked to -inf), transpose them in registers by
  // swapping off-diagonal blocks of halving size, store W rows of the tile.
  llvm::Value* groups = b.CreateUDiv(b.CreateAdd(keys, I64(lanes_ - 1)), I64(lanes_));
  llvm::Value* last_key = b.CreateSub(num_keys, I64(1));
  EmitLoop(b, I64(0), groups, "pack_keys", [&](llvm::Value* g) {
    llvm::Value* first = b.CreateAdd(j0, b.CreateMul(g, I64(lanes_)));
    std::vector<llvm::Value*> rows(static_cast<size_t>(lanes_));
    std::vector<llvm::Value*> row_ptrs(static_cast<size_t>(lanes_));
    for (int r = 0; r < lanes_; ++r) {
      llvm::Value* key = b.CreateBinaryIntrinsic(llvm::Intrinsic::smin, b.CreateAdd(first, I64(r)), last_key);
      row_ptrs[static_cast<size_t>(r)] = b.CreateInBoundsGEP(f32_, k_head, b.CreateMul(key, k_seq_stride));
    }
    llvm::Value* column = b.CreateMul(g, I64(lanes_));
    // One W x W block: head-dim vector `dv` of the W keys.
    auto block = [&](llvm::Value* dv, bool partial) {
      llvm::Value* d0 = b.CreateMul(dv, I64(lanes_));
      for (int r = 0; r < lanes_; ++r) {
        llvm::Value* ptr = b.CreateInBoundsGEP(f32_, row_ptrs[static_cast<size_t>(r)], d0);
        rows[static_cast<size_t>(r)] =
            partial ? static_cast<llvm::Value*>(b.CreateMaskedLoad(vec_, ptr, llvm::Align(4), HeadTailMask(), FVec(0)))
                    : b.CreateAlignedLoad(vec_, ptr, llvm::Align(4));
      }
      for (int h = lanes_ / 2; h >= 1; h /= 2) {
        std::vector<int> keep_low, keep_high;
        for (int l = 0; l < lanes_; ++l) {
          const bool low = (l & h) == 0;
          keep_low.push_back(low ? l : lanes_ + l - h);
          keep_high.push_back(low ? l + h : lanes_ + l);
        }
        for (int i = 0; i < lanes_; ++i) {
          if ((i & h) != 0) continue;
          llvm::Value* a = rows[static_cast<size_t>(i)];
          llvm::Value* c = rows[static_cast<size_t>(i + h)];
          rows[static_cast<size_t>(i)] = b.CreateShuffleVector(a, c, keep_low);
          rows[static_cast<size_t>(i + h)] = b.CreateShuffleVector(a, c, keep_high);
        }
      }
      const int live = partial ? d_tail_ : lanes_;
      for (int t = 0; t < live; ++t) {
        llvm::Value* d = b.CreateAdd(d0, I64(t));
        llvm::Value* dst = b.CreateInBoundsGEP(f32_, tile, b.CreateAdd(b.CreateMul(d, I64(key_tile_)), column));
        b.CreateAlignedStore(rows[static_cast<size_t>(t)], dst, llvm::Align(static_cast<uint64_t>(lanes_) * 4));
      }
    };
    // Whole vectors in a loop (the block is ~100 instructions; unrolling
    // it per vector only costs compile time), the partial one after.
    const bool partial = d_tail_ != lanes_;
    const int64_t whole = partial ? d_vectors_ - 1 : d_vectors_;
    if (whole > 0) EmitLoop(b, I64(0), I64(whole), "pack_dv", [&](llvm::Value* dv) { block(dv, false); });
    if (partial) block(I64(whole), true);
  });
}

Status AttentionEmitter::Emit(const std::string& name, const AttentionLayout& layout, const std::string& cpu,
                              const std::string& features) {
  std::vector<bool> baked(layout.num_inputs, true);
  baked[static_cast<size_t>(layout.q_input)] = false;
  baked[static_cast<size_t>(layout.k_input)] = false;
  baked[static_cast<size_t>(layout.v_input)] = false;
  if (layout.mask_input >= 0) baked[static_cast<size_t>(layout.mask_input)] = false;
  llvm::IRBuilder<> b(ctx_);
  auto param = [&](llvm::Value* params, int index) {
    return b.CreateAlignedLoad(i64_, b.CreateInBoundsGEP(i64_, params, I64(index)), llvm::Align(8));
  };
  internal::EntryPrologue entry = internal::EmitEntryPrologue(
      module_, b, name, /*generic=*/true, cpu, features, baked, 1, [&](llvm::Value* params) {
        return b.CreateMul(b.CreateMul(param(params, kAttnBatch), param(params, kAttnHeads)),
                           param(params, kAttnChunks));
      });
  internal::SetVectorFunctionAttributes(entry.fn, cpu, features, lanes_);
  llvm::Value* params = entry.params;
  llvm::Value* heads = param(params, kAttnHeads);
  llvm::Value* num_queries = param(params, kAttnQueries);
  llvm::Value* num_keys = param(params, kAttnKeys);
  llvm::Value* chunks = param(params, kAttnChunks);
  auto strides = [&](int first, int count) {
    std::vector<llvm::Value*> s;
    for (int i = 0; i < count; ++i) s.push_back(param(params, first + i));
    return s;
  };
  const std::vector<llvm::Value*> qs = strides(kAttnQStrides, 3), ks = strides(kAttnKStrides, 3),
                                  vs = strides(kAttnVStrides, 3), os = strides(kAttnOutStrides, 3),
                                  ms = strides(kAttnMaskStrides, 4);
  llvm::Value* q = entry.inputs[static_cast<size_t>(layout.q_input)];
  llvm::Value* k = entry.inputs[static_cast<size_t>(layout.k_input)];
  llvm::Value* v = entry.inputs[static_cast<size_t>(layout.v_input)];
  llvm::Value* mask = layout.mask_input >= 0 ? entry.inputs[static_cast<size_t>(layout.mask_input)] : nullptr;
  llvm::Value* out = entry.outputs[0];

  // Stack state of one unit of work.
  const llvm::Align vec_align(static_cast<uint64_t>(lanes_) * 4);
  auto array = [&](llvm::Type* t, int64_t n, const char* label) {
    llvm::AllocaInst* a = b.CreateAlloca(llvm::ArrayType::get(t, static_cast<uint64_t>(n)), nullptr, label);
    a->setAlignment(llvm::Align(64));
    return a;
  };
  llvm::Value* tile = array(f32_, p_.head_dim * key_tile_, "k_tile");   // K^T [d][key]
  llvm::Value* acc = array(vec_, query_chunk_ * d_vectors_, "acc");     // output rows, unnormalised
  llvm::Value* sums = array(vec_, query_chunk_, "sums");                // per row, lane-wise partial sums
  llvm::Value* maxes = array(f32_, query_chunk_, "maxes");              // per row, running max
  llvm::Value* probs = array(f32_, query_rows_ * key_block_, "probs");  // one block's probabilities
  // Registers of the tiles, as single-vector allocas that mem2reg promotes.
  std::vector<llvm::AllocaInst*> score_regs, out_regs;
  for (int64_t i = 0; i < query_rows_ * kKeyVectors; ++i) score_regs.push_back(b.CreateAlloca(vec_, nullptr, "s"));
  for (int64_t i = 0; i < query_rows_ * d_vectors_; ++i) out_regs.push_back(b.CreateAlloca(vec_, nullptr, "o"));
  // Within a key block the accumulators are read through a pointer
  // reloaded (volatile) per block: otherwise LLVM keeps a query group's
  // output rows in registers across the whole key loop, and the softmax
  // between the two products, short of registers, spills and reloads its
  // constants.
  llvm::Value* acc_slot = b.CreateAlloca(acc->getType(), nullptr, "acc_slot");
  b.CreateStore(acc, acc_slot);
  llvm::Value* acc_base = acc;
  auto acc_ptr = [&](llvm::Value* row, int64_t dv) {
    return b.CreateInBoundsGEP(vec_, acc_base, b.CreateAdd(b.CreateMul(row, I64(d_vectors_)), I64(dv)));
  };

  const bool raw_scores = mask == nullptr && p_.scale > 0;
  EmitLoop(b, entry.row_begin, entry.row_end, "unit", [&](llvm::Value* unit) {
    llvm::Value* chunk = b.CreateURem(unit, chunks);
    llvm::Value* bh = b.CreateUDiv(unit, chunks);
    llvm::Value* head = b.CreateURem(bh, heads);
    llvm::Value* batch = b.CreateUDiv(bh, heads);
    auto base = [&](llvm::Value* ptr, const std::vector<llvm::Value*>& s) {
      return b.CreateInBoundsGEP(f32_, ptr, b.CreateAdd(b.CreateMul(batch, s[0]), b.CreateMul(head, s[1])));
    };
    llvm::Value* q_head = base(q, qs);
    llvm::Value* k_head = base(k, ks);
    llvm::Value* v_head = base(v, vs);
    llvm::Value* out_head = base(out, os);
    llvm::Value* mask_head = mask != nullptr ? base(mask, ms) : nullptr;
    llvm::Value* q0 = b.CreateMul(chunk, I64(query_chunk_));
    llvm::Value* rows = b.CreateBinaryIntrinsic(llvm::Intrinsic::smin, I64(query_chunk_), b.CreateSub(num_queries, q0));

    EmitLoop(b, I64(0), I64(query_chunk_), "init", [&](llvm::Value* r) {
      b.CreateAlignedStore(NegInf(), b.CreateInBoundsGEP(f32_, maxes, r), llvm::Align(4));
      b.CreateAlignedStore(FVec(0), b.CreateInBoundsGEP(vec_, sums, r), vec_align);
      for (int64_t dv = 0; dv < d_vectors_; ++dv) b.CreateAlignedStore(FVec(0), acc_ptr(r, dv), vec_align);
    });

    llvm::Value* key_tiles = b.CreateUDiv(b.CreateAdd(num_keys, I64(key_tile_ - 1)), I64(key_tile_));
    EmitLoop(b, I64(0), key_tiles, "key_tile", [&](llvm::Value* kt) {
      llvm::Value* j0 = b.CreateMul(kt, I64(key_tile_));
      llvm::Value* tile_keys =
          b.CreateBinaryIntrinsic(llvm::Intrinsic::smin, I64(key_tile_), b.CreateSub(num_keys, j0));
      EmitPackKeys(b, k_head, ks[2], j0, tile_keys, num_keys, tile);

      llvm::Value* groups = b.CreateUDiv(b.CreateAdd(rows, I64(query_rows_ - 1)), I64(query_rows_));
      EmitLoop(b, I64(0), groups, "query_group", [&](llvm::Value* g) {
        // Rows past the chunk's end repeat its last row and are never stored.
        std::vector<llvm::Value*> row(static_cast<size_t>(query_rows_)), query(row.size()), q_row(row.size());
        for (int64_t i = 0; i < query_rows_; ++i) {
          row[static_cast<size_t>(i)] = b.CreateAdd(b.CreateMul(g, I64(query_rows_)), I64(i));
          llvm::Value* clamped =
              b.CreateBinaryIntrinsic(llvm::Intrinsic::smin, row[static_cast<size_t>(i)], b.CreateSub(rows, I64(1)));
          query[static_cast<size_t>(i)] = b.CreateAdd(q0, clamped);
          q_row[static_cast<size_t>(i)] =
              b.CreateInBoundsGEP(f32_, q_head, b.CreateMul(query[static_cast<size_t>(i)], qs[2]));
        }
        llvm::Value* blocks = b.CreateUDiv(b.CreateAdd(tile_keys, I64(key_block_ - 1)), I64(key_block_));
        EmitLoop(b, I64(0), blocks, "key_block", [&](llvm::Value* kb) {
          llvm::Value* jb = b.CreateMul(kb, I64(key_block_));  // within the tile
          acc_base = b.CreateLoad(acc->getType(), acc_slot, /*isVolatile=*/true);
          // Scores: sum over d of Q[row, d] * K^T[d, keys].
          for (llvm::AllocaInst* s : score_regs) b.CreateStore(FVec(0), s);
          EmitLoop(b, I64(0), I64(p_.head_dim), "d", [&](llvm::Value* d) {
            llvm::Value* kt_row = b.CreateInBoundsGEP(f32_, tile, b.CreateAdd(b.CreateMul(d, I64(key_tile_)), jb));
            std::vector<llvm::Value*> kv;
            for (int64_t c = 0; c < kKeyVectors; ++c) {
              kv.push_back(b.CreateAlignedLoad(vec_, b.CreateInBoundsGEP(f32_, kt_row, I64(c * lanes_)), vec_align));
            }
            for (int64_t i = 0; i < query_rows_; ++i) {
              llvm::Value* qd =
                  Splat(b, b.CreateAlignedLoad(f32_, b.CreateInBoundsGEP(f32_, q_row[static_cast<size_t>(i)], d),
                                               llvm::Align(4)));
              for (int64_t c = 0; c < kKeyVectors; ++c) {
                llvm::AllocaInst* s = score_regs[static_cast<size_t>(i * kKeyVectors + c)];
                b.CreateStore(b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vec_},
                                                {qd, kv[static_cast<size_t>(c)], b.CreateLoad(vec_, s)}),
                              s);
              }
            }
          });
          llvm::Value* key0 = b.CreateAdd(j0, jb);  // first key of the block
          for (int64_t i = 0; i < query_rows_; ++i) {
            std::vector<llvm::Value*> s(static_cast<size_t>(kKeyVectors));
            llvm::Value* mask_row = nullptr;
            if (mask_head != nullptr) {
              mask_row = b.CreateInBoundsGEP(f32_, mask_head, b.CreateMul(query[static_cast<size_t>(i)], ms[2]));
            }
            llvm::Value* block_max = nullptr;
            for (int64_t c = 0; c < kKeyVectors; ++c) {
              // Without a mask the raw products are compared (the scale is
              // positive) and the scale is applied inside the exp's argument.
              llvm::Value* x = b.CreateLoad(vec_, score_regs[static_cast<size_t>(i * kKeyVectors + c)]);
              if (!raw_scores) x = b.CreateFMul(x, FVec(p_.scale));
              llvm::Value* first = b.CreateAdd(key0, I64(c * lanes_));
              llvm::Value* live = LiveLanes(b, b.CreateSub(num_keys, first));
              if (mask_row != nullptr) {
                // Key stride 0: one mask value per row; 1: one per key.
                llvm::Value* per_key = b.CreateICmpNE(ms[3], I64(0));
                llvm::Value* splat = Splat(b, b.CreateAlignedLoad(f32_, mask_row, llvm::Align(4)));
                llvm::Value* safe_first = b.CreateSelect(per_key, first, I64(0));
                llvm::Value* load_mask = b.CreateAnd(live, Splat(b, per_key));
                llvm::Value* row_values = b.CreateMaskedLoad(vec_, b.CreateInBoundsGEP(f32_, mask_row, safe_first),
                                                             llvm::Align(4), load_mask, FVec(0));
                x = b.CreateFAdd(x, b.CreateSelect(per_key, row_values, splat));
              }
              x = b.CreateSelect(live, x, Splat(b, NegInf()));
              s[static_cast<size_t>(c)] = x;
              block_max = block_max == nullptr ? x : Max(b, block_max, x);
            }
            llvm::Value* r = row[static_cast<size_t>(i)];
            llvm::Value* max_ptr = b.CreateInBoundsGEP(f32_, maxes, r);
            llvm::Value* old_max = b.CreateAlignedLoad(f32_, max_ptr, llvm::Align(4));
            llvm::Value* top = Reduce(b, block_max, [&](llvm::Value* x, llvm::Value* y) { return Max(b, x, y); });
            if (raw_scores) top = b.CreateFMul(top, llvm::ConstantFP::get(f32_, p_.scale));
            llvm::Value* new_max = Max(b, old_max, top);
            b.CreateAlignedStore(new_max, max_ptr, llvm::Align(4));
            // While every score so far is -inf, subtract 0: exp(-inf - -inf)
            // would be NaN where the answer is a zero weight.
            llvm::Value* base_max =
                b.CreateSelect(b.CreateFCmpOEQ(new_max, NegInf()), llvm::ConstantFP::get(f32_, 0.0), new_max);
            llvm::Value* rescale = SoftmaxExp(b, b.CreateFSub(old_max, base_max));
            llvm::Value* sum = b.CreateFMul(b.CreateAlignedLoad(vec_, b.CreateInBoundsGEP(vec_, sums, r), vec_align),
                                            Splat(b, rescale));
            for (int64_t c = 0; c < kKeyVectors; ++c) {
              llvm::Value* arg =
                  raw_scores
                      ? b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vec_},
                                          {s[static_cast<size_t>(c)], FVec(p_.scale), Splat(b, b.CreateFNeg(base_max))})
                      : b.CreateFSub(s[static_cast<size_t>(c)], Splat(b, base_max));
              llvm::Value* prob = SoftmaxExp(b, arg);
              sum = b.CreateFAdd(sum, prob);
              b.CreateAlignedStore(prob, b.CreateInBoundsGEP(f32_, probs, I64(i * key_block_ + c * lanes_)), vec_align);
            }
            b.CreateAlignedStore(sum, b.CreateInBoundsGEP(vec_, sums, r), vec_align);
            for (int64_t dv = 0; dv < d_vectors_; ++dv) {
              b.CreateStore(b.CreateFMul(b.CreateAlignedLoad(vec_, acc_ptr(r, dv), vec_align), Splat(b, rescale)),
                            out_regs[static_cast<size_t>(i * d_vectors_ + dv)]);
            }
          }
          // Output rows += probabilities x V's rows, for the block's keys.
          llvm::Value* block_keys =
              b.CreateBinaryIntrinsic(llvm::Intrinsic::smin, I64(key_block_), b.CreateSub(tile_keys, jb));
          EmitLoop(b, I64(0), block_keys, "pv", [&](llvm::Value* j) {
            llvm::Value* v_row = b.CreateInBoundsGEP(f32_, v_head, b.CreateMul(b.CreateAdd(key0, j), vs[2]));
            std::vector<llvm::Value*> vv;
            for (int64_t dv = 0; dv < d_vectors_; ++dv) vv.push_back(LoadHeadVector(b, v_row, dv));
            for (int64_t i = 0; i < query_rows_; ++i) {
              llvm::Value* pij = Splat(
                  b, b.CreateAlignedLoad(f32_, b.CreateInBoundsGEP(f32_, probs, b.CreateAdd(I64(i * key_block_), j)),
                                         llvm::Align(4)));
              for (int64_t dv = 0; dv < d_vectors_; ++dv) {
                llvm::AllocaInst* o = out_regs[static_cast<size_t>(i * d_vectors_ + dv)];
                b.CreateStore(b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vec_},
                                                {pij, vv[static_cast<size_t>(dv)], b.CreateLoad(vec_, o)}),
                              o);
              }
            }
          });
          for (int64_t i = 0; i < query_rows_; ++i) {
            for (int64_t dv = 0; dv < d_vectors_; ++dv) {
              b.CreateAlignedStore(b.CreateLoad(vec_, out_regs[static_cast<size_t>(i * d_vectors_ + dv)]),
                                   acc_ptr(row[static_cast<size_t>(i)], dv), vec_align);
            }
          }
          acc_base = acc;
        });
      });
    });

    // Normalise and store the chunk's rows.
    EmitLoop(b, I64(0), rows, "store", [&](llvm::Value* r) {
      llvm::Value* sum = Reduce(b, b.CreateAlignedLoad(vec_, b.CreateInBoundsGEP(vec_, sums, r), vec_align),
                                [&](llvm::Value* x, llvm::Value* y) { return b.CreateFAdd(x, y); });
      llvm::Value* inv = Splat(b, b.CreateFDiv(llvm::ConstantFP::get(f32_, 1.0), sum));
      llvm::Value* out_row = b.CreateInBoundsGEP(f32_, out_head, b.CreateMul(b.CreateAdd(q0, r), os[2]));
      for (int64_t dv = 0; dv < d_vectors_; ++dv) {
        StoreHeadVector(b, b.CreateFMul(b.CreateAlignedLoad(vec_, acc_ptr(r, dv), vec_align), inv), out_row, dv);
      }
    });
  });
  b.CreateRetVoid();
  return Status::Ok();
}

Dims Strides(const Dims& dims) {
  Dims s(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) s[i - 1] = s[i] * dims[i];
  return s;
}

}  // namespace

int64_t AttentionQueryChunk(int64_t head_dim, int lanes) {
  const int64_t rows = QueryRows(lanes);
  const int64_t padded = (head_dim + lanes - 1) / lanes * lanes;
  return std::clamp<int64_t>(kAccumulatorFloats / std::max<int64_t>(1, padded) / rows * rows, rows, kMaxQueryChunk);
}

Status PrepareAttentionCall(const AttentionLayout& layout, const std::vector<Dims>& input_dims,
                            std::vector<int64_t>& params, Dims& output_dims, double& flops) {
  auto operand = [&](int input) -> const Dims* {
    if (input < 0 || static_cast<size_t>(input) >= input_dims.size()) return nullptr;
    return &input_dims[static_cast<size_t>(input)];
  };
  const Dims* q = operand(layout.q_input);
  const Dims* k = operand(layout.k_input);
  const Dims* v = operand(layout.v_input);
  if (q == nullptr || k == nullptr || v == nullptr || q->size() != 4 || k->size() != 4 || v->size() != 4) {
    return InvalidArgument("jit: attention needs rank-4 Q, K and V");
  }
  auto logical = [](const Dims& dims, const std::array<int, 4>& axes) {
    Dims l(4);
    for (size_t i = 0; i < 4; ++i) l[i] = dims[static_cast<size_t>(axes[i])];
    return l;
  };
  const Dims lq = logical(*q, layout.q_axes), lk = logical(*k, layout.k_axes), lv = logical(*v, layout.v_axes);
  const int64_t batch = lq[0], heads = lq[1], queries = lq[2], keys = lk[2];
  if (lk[0] != batch || lv[0] != batch || lk[1] != heads || lv[1] != heads || lv[2] != keys ||
      lq[3] != layout.head_dim || lk[3] != layout.head_dim || lv[3] != layout.head_dim) {
    return InvalidArgument("jit: attention operands do not match: Q ", DimsToString(lq), " K ", DimsToString(lk), " V ",
                           DimsToString(lv), " (logical [batch, heads, seq, ", layout.head_dim, "])");
  }
  if (batch < 1 || heads < 1 || queries < 1 || keys < 1) {
    return InvalidArgument("jit: attention with an empty dim: Q ", DimsToString(lq), " K ", DimsToString(lk));
  }
  params.assign(kAttnNumParams, 0);
  params[kAttnBatch] = batch;
  params[kAttnHeads] = heads;
  params[kAttnQueries] = queries;
  params[kAttnKeys] = keys;
  auto put = [&](int at, const Dims& dims, const std::array<int, 4>& axes) {
    const Dims s = Strides(dims);
    for (int i = 0; i < 3; ++i)
      params[static_cast<size_t>(at + i)] = s[static_cast<size_t>(axes[static_cast<size_t>(i)])];
  };
  put(kAttnQStrides, *q, layout.q_axes);
  put(kAttnKStrides, *k, layout.k_axes);
  put(kAttnVStrides, *v, layout.v_axes);
  const Dims logical_out = {batch, heads, queries, layout.head_dim};
  output_dims.assign(4, 0);
  for (size_t l = 0; l < 4; ++l) output_dims[static_cast<size_t>(layout.out_axes[l])] = logical_out[l];
  put(kAttnOutStrides, output_dims, layout.out_axes);
  if (layout.mask_input >= 0) {
    const Dims* m = operand(layout.mask_input);
    if (m == nullptr || m->size() > 4) return InvalidArgument("jit: attention mask of rank above 4");
    const Dims full = {batch, heads, queries, keys};
    const Dims s = Strides(*m);
    const size_t lead = 4 - m->size();
    for (size_t i = 0; i < 4; ++i) {
      const int64_t dim = i < lead ? 1 : (*m)[i - lead];
      if (dim != 1 && dim != full[i]) {
        return InvalidArgument("jit: attention mask ", DimsToString(*m), " does not broadcast into ",
                               DimsToString(full));
      }
      params[kAttnMaskStrides + i] = dim == 1 ? 0 : s[i - lead];
    }
  }
  const int64_t chunk = std::max<int64_t>(1, layout.query_chunk);
  params[kAttnChunks] = (queries + chunk - 1) / chunk;
  flops = 4.0 * static_cast<double>(batch * heads) * static_cast<double>(queries) * static_cast<double>(keys) *
          static_cast<double>(layout.head_dim);
  return Status::Ok();
}

Status EmitAttentionEntry(llvm::Module& module, const std::string& name, const AttentionProblem& problem,
                          const AttentionLayout& layout, int lanes, const std::string& cpu,
                          const std::string& features) {
  if (problem.head_dim < 1 || problem.head_dim > kMaxHeadDim) {
    return Unsupported("jit: attention head dim ", problem.head_dim, " outside [1, ", kMaxHeadDim, "]");
  }
  if (lanes < 4 || (lanes & (lanes - 1)) != 0)
    return InvalidArgument("jit: attention needs 2^n >= 4 lanes, got ", lanes);
  auto valid = [&](int input) { return input >= 0 && static_cast<size_t>(input) < layout.num_inputs; };
  if (!valid(layout.q_input) || !valid(layout.k_input) || !valid(layout.v_input) ||
      (layout.mask_input >= 0) != problem.has_mask || (problem.has_mask && !valid(layout.mask_input))) {
    return InvalidArgument("jit: attention operands do not match its inputs");
  }
  if (layout.query_chunk != AttentionQueryChunk(problem.head_dim, lanes)) {
    return InvalidArgument("jit: attention layout planned for another vector width");
  }
  return AttentionEmitter(module, problem, lanes).Emit(name, layout, cpu, features);
}

StatusOr<std::string> EmitAttentionAssembly(const AttentionProblem& problem, const std::string& cpu,
                                            const std::string& features) {
  return internal::EmitAssemblyFor(cpu, features, [&](llvm::Module& module, const internal::GemmIsa& isa) {
    AttentionLayout layout;
    layout.num_inputs = problem.has_mask ? 4 : 3;
    layout.mask_input = problem.has_mask ? 3 : -1;
    layout.head_dim = problem.head_dim;
    layout.query_chunk = AttentionQueryChunk(problem.head_dim, isa.lanes);
    return EmitAttentionEntry(module, "kiln_attention", problem, layout, isa.lanes, cpu, features);
  });
}

}  // namespace kiln::jit
