#include "jit/gemm_codegen.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/DerivedTypes.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>
#include <llvm/TargetParser/Host.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>
#include <vector>

#include "jit/codegen_target.h"
#include "jit/gemm_packing.h"
#include "jit/region_ops.h"
#include "jit/vector_math.h"

namespace kiln::jit {

using internal::AlignedFloats;
using internal::GemmIsa;
using internal::GemmLayout;

struct CompiledGemm::PackedWeight {
  AlignedFloats data;
};

namespace {

// The entry's single argument points to these words, in this order
// (CompiledGemm::RunTile fills them).
enum ArgWord : unsigned {
  kArgA,
  kArgLda,
  kArgC,
  kArgLdc,
  kArgBias,
  kArgResidual,
  kArgLdr,
  kArgPackedB,
  kArgM,
  kArgRowBegin,
  kArgRowEnd,
  kArgBlockBegin,
  kArgBlockEnd,
  kNumArgWords
};

class GemmEmitter {
 public:
  GemmEmitter(llvm::Module& module, const GemmProblem& problem, const GemmLayout& layout, const std::string& cpu,
              const std::string& features)
      : module_(module), ctx_(module.getContext()), problem_(problem), layout_(layout), cpu_(cpu), features_(features) {
    f32_ = llvm::Type::getFloatTy(ctx_);
    i64_ = llvm::Type::getInt64Ty(ctx_);
    i1_ = llvm::Type::getInt1Ty(ctx_);
    ptr_ = llvm::PointerType::get(ctx_, 0);
    vec_ = llvm::FixedVectorType::get(f32_, static_cast<unsigned>(layout.lanes));
    // (a, lda, b, kc, c, ldc, bias, residual, ldr, accumulate, last)
    kernel_type_ = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_),
                                           {ptr_, i64_, ptr_, i64_, ptr_, i64_, ptr_, ptr_, i64_, i1_, i1_}, false);
  }

  void EmitEntry(const std::string& name);

 private:
  llvm::Value* I64(int64_t v) const { return llvm::ConstantInt::get(i64_, v); }
  llvm::Value* FVec(double v) const { return llvm::ConstantFP::get(vec_, v); }
  void SetTargetAttributes(llvm::Function* fn) const;
  // The micro-kernel for a tile of `rows` x `vecs` vectors whose last vector
  // has `last_lanes` live lanes (0: all), emitted once per module.
  llvm::Function* Kernel(int rows, int vecs, int last_lanes);
  void EmitKernelBody(llvm::Function* fn, int rows, int vecs, int last_lanes);
  llvm::Value* Activation(llvm::IRBuilderBase& b, llvm::Value* x) const;

  // What the entry passes to every kernel call in one panel.
  struct PanelArgs {
    llvm::Value* a_k;  // A at row 0, column k0
    llvm::Value* lda;
    llvm::Value* b_panel;
    llvm::Value* kc;
    llvm::Value* c_col;  // C at row 0, the panel's first column
    llvm::Value* ldc;
    llvm::Value* bias_col;
    llvm::Value* residual_col;
    llvm::Value* ldr;
    llvm::Value* accumulate;
    llvm::Value* last;
  };
  // Rows [row_begin, row_end) of one panel: full mr-row tiles, then the
  // remaining rows (fewer than mr) through smaller kernels.
  void EmitRowLoop(llvm::IRBuilderBase& b, const PanelArgs& args, int vecs, int last_lanes, llvm::Value* row_begin,
                   llvm::Value* row_end);
  void CallKernel(llvm::IRBuilderBase& b, const PanelArgs& args, int rows, int vecs, int last_lanes, llvm::Value* row);

  llvm::Module& module_;
  llvm::LLVMContext& ctx_;
  const GemmProblem& problem_;
  const GemmLayout& layout_;
  std::string cpu_, features_;
  llvm::Type* f32_;
  llvm::Type* i64_;
  llvm::Type* i1_;
  llvm::PointerType* ptr_;
  llvm::FixedVectorType* vec_;
  llvm::FunctionType* kernel_type_;
  std::map<std::tuple<int, int, int>, llvm::Function*> kernels_;  // (rows, vecs, last_lanes)
};

void GemmEmitter::SetTargetAttributes(llvm::Function* fn) const {
  internal::SetVectorFunctionAttributes(fn, cpu_, features_, layout_.lanes);
}

llvm::Function* GemmEmitter::Kernel(int rows, int vecs, int last_lanes) {
  if (last_lanes == layout_.lanes) last_lanes = 0;
  const auto key = std::make_tuple(rows, vecs, last_lanes);
  if (auto it = kernels_.find(key); it != kernels_.end()) return it->second;
  std::string name = "tile_" + std::to_string(rows) + "x" + std::to_string(vecs);
  if (last_lanes != 0) name += "_mask" + std::to_string(last_lanes);
  llvm::Function* fn = llvm::Function::Create(kernel_type_, llvm::Function::InternalLinkage, name, module_);
  SetTargetAttributes(fn);
  // One copy per tile shape, called from the loops: inlining every kernel
  // into the entry would multiply code size and compile time.
  fn->addFnAttr(llvm::Attribute::NoInline);
  for (unsigned a : {0u, 2u, 6u, 7u}) {
    fn->addParamAttr(a, llvm::Attribute::NoCapture);
    fn->addParamAttr(a, llvm::Attribute::ReadOnly);
  }
  fn->addParamAttr(4, llvm::Attribute::NoCapture);
  EmitKernelBody(fn, rows, vecs, last_lanes);
  kernels_[key] = fn;
  return fn;
}

void GemmEmitter::EmitKernelBody(llvm::Function* fn, int rows, int vecs, int last_lanes) {
  llvm::Value* a = fn->getArg(0);
  llvm::Value* lda = fn->getArg(1);
  llvm::Value* bp = fn->getArg(2);
  llvm::Value* kc = fn->getArg(3);
  llvm::Value* c = fn->getArg(4);
  llvm::Value* ldc = fn->getArg(5);
  llvm::Value* bias = fn->getArg(6);
  llvm::Value* residual = fn->getArg(7);
  llvm::Value* ldr = fn->getArg(8);
  llvm::Value* accumulate = fn->getArg(9);
  llvm::Value* last = fn->getArg(10);
  const int lanes = layout_.lanes;
  const int64_t width = int64_t{vecs} * lanes;  // floats per packed row of this panel

  llvm::IRBuilder<> b(ctx_);
  auto* entry = llvm::BasicBlock::Create(ctx_, "entry", fn);
  auto* main_loop = llvm::BasicBlock::Create(ctx_, "k_main", fn);
  auto* rem_head = llvm::BasicBlock::Create(ctx_, "k_rem_head", fn);
  auto* rem_body = llvm::BasicBlock::Create(ctx_, "k_rem", fn);
  auto* done = llvm::BasicBlock::Create(ctx_, "k_done", fn);
  b.SetInsertPoint(entry);

  std::vector<llvm::Value*> a_rows(rows), c_rows(rows), r_rows(rows);
  for (int r = 0; r < rows; ++r) {
    a_rows[r] = b.CreateInBoundsGEP(f32_, a, b.CreateMul(lda, I64(r)), "a_row");
    c_rows[r] = b.CreateInBoundsGEP(f32_, c, b.CreateMul(ldc, I64(r)), "c_row");
    if (problem_.epilogue.has_residual) r_rows[r] = b.CreateInBoundsGEP(f32_, residual, b.CreateMul(ldr, I64(r)));
  }

  // Few accumulators (a GEMV row, an edge tile) would leave the FMA ports
  // waiting on each chain's latency: split k over several accumulator sets
  // (even and odd steps, ...) and add them at the end.
  const int tile = rows * vecs;
  const int sets = problem_.bit_exact ? BitExactChains(rows) : tile >= 8 ? 1 : std::min(4, (8 + tile - 1) / tile);
  // Bit-exact code must fuse where the interpreter's intrinsics do; fmuladd
  // would leave that to the backend.
  const llvm::Intrinsic::ID multiply_add = problem_.bit_exact ? llvm::Intrinsic::fma : llvm::Intrinsic::fmuladd;
  const int unroll = std::max(2, sets);
  using Accs = std::vector<llvm::Value*>;  // [set][row][vec]
  auto at = [&](int set, int r, int v) { return static_cast<size_t>((set * rows + r) * vecs + v); };
  const Accs zeros(static_cast<size_t>(sets * tile), llvm::Constant::getNullValue(vec_));

  // One rank-1 update: a row of the B panel times a column of A.
  auto step = [&](Accs& acc, llvm::Value* k, int set) {
    llvm::Value* b_row = b.CreateInBoundsGEP(f32_, bp, b.CreateMul(k, I64(width)));
    std::vector<llvm::Value*> bv(vecs);
    for (int v = 0; v < vecs; ++v) {
      bv[v] = b.CreateAlignedLoad(vec_, b.CreateInBoundsGEP(f32_, b_row, I64(int64_t{v} * lanes)),
                                  llvm::Align(static_cast<uint64_t>(lanes) * 4));
    }
    for (int r = 0; r < rows; ++r) {
      llvm::Value* s = b.CreateAlignedLoad(f32_, b.CreateInBoundsGEP(f32_, a_rows[r], k), llvm::Align(4));
      llvm::Value* splat = b.CreateVectorSplat(static_cast<unsigned>(lanes), s);
      for (int v = 0; v < vecs; ++v) {
        llvm::Value*& acc_v = acc[at(set, r, v)];
        acc_v = b.CreateIntrinsic(multiply_add, {vec_}, {splat, bv[v], acc_v});
      }
    }
  };

  b.CreateCondBr(b.CreateICmpSGE(kc, I64(unroll)), main_loop, rem_head);

  // Unrolled main loop over k.
  b.SetInsertPoint(main_loop);
  llvm::PHINode* k_main = b.CreatePHI(i64_, 2, "k");
  Accs main_phis(zeros.size());
  for (size_t i = 0; i < zeros.size(); ++i) main_phis[i] = b.CreatePHI(vec_, 2);
  Accs acc(main_phis.begin(), main_phis.end());
  for (int u = 0; u < unroll; ++u) step(acc, b.CreateAdd(k_main, I64(u)), u % sets);
  llvm::Value* k_next = b.CreateAdd(k_main, I64(unroll));
  b.CreateCondBr(b.CreateICmpSLE(b.CreateAdd(k_next, I64(unroll)), kc), main_loop, rem_head);
  k_main->addIncoming(I64(0), entry);
  k_main->addIncoming(k_next, main_loop);
  for (size_t i = 0; i < zeros.size(); ++i) {
    llvm::cast<llvm::PHINode>(main_phis[i])->addIncoming(zeros[i], entry);
    llvm::cast<llvm::PHINode>(main_phis[i])->addIncoming(acc[i], main_loop);
  }

  // The remaining steps (fewer than `unroll`), one at a time.
  b.SetInsertPoint(rem_head);
  llvm::PHINode* k_rem = b.CreatePHI(i64_, 3, "k_rem");
  Accs rem_phis(zeros.size());
  for (size_t i = 0; i < zeros.size(); ++i) rem_phis[i] = b.CreatePHI(vec_, 3);
  b.CreateCondBr(b.CreateICmpSLT(k_rem, kc), rem_body, done);
  b.SetInsertPoint(rem_body);
  Accs rem_acc(rem_phis.begin(), rem_phis.end());
  step(rem_acc, k_rem, 0);
  llvm::Value* k_rem_next = b.CreateAdd(k_rem, I64(1));
  b.CreateBr(rem_head);
  k_rem->addIncoming(I64(0), entry);
  k_rem->addIncoming(k_next, main_loop);
  k_rem->addIncoming(k_rem_next, rem_body);
  for (size_t i = 0; i < zeros.size(); ++i) {
    auto* phi = llvm::cast<llvm::PHINode>(rem_phis[i]);
    phi->addIncoming(zeros[i], entry);
    phi->addIncoming(acc[i], main_loop);
    phi->addIncoming(rem_acc[i], rem_body);
  }

  b.SetInsertPoint(done);
  Accs sum(static_cast<size_t>(tile));
  for (int r = 0; r < rows; ++r) {
    for (int v = 0; v < vecs; ++v) {
      llvm::Value* s = rem_phis[at(0, r, v)];
      for (int set = 1; set < sets; ++set) s = b.CreateFAdd(s, rem_phis[at(set, r, v)]);
      sum[static_cast<size_t>(r * vecs + v)] = s;
    }
  }

  // The N edge: the last vector's dead lanes are neither read nor written.
  llvm::Value* edge_mask = nullptr;
  if (last_lanes != 0) {
    std::vector<llvm::Constant*> live(static_cast<size_t>(lanes));
    for (int l = 0; l < lanes; ++l) live[static_cast<size_t>(l)] = b.getInt1(l < last_lanes);
    edge_mask = llvm::ConstantVector::get(live);
  }
  auto mask_of = [&](int v) { return v == vecs - 1 ? edge_mask : nullptr; };
  auto load = [&](llvm::Value* row, int v) -> llvm::Value* {
    llvm::Value* p = b.CreateInBoundsGEP(f32_, row, I64(int64_t{v} * lanes));
    if (llvm::Value* m = mask_of(v)) return b.CreateMaskedLoad(vec_, p, llvm::Align(4), m, FVec(0.0));
    return b.CreateAlignedLoad(vec_, p, llvm::Align(4));
  };
  auto store = [&](llvm::Value* x, llvm::Value* row, int v) {
    llvm::Value* p = b.CreateInBoundsGEP(f32_, row, I64(int64_t{v} * lanes));
    if (llvm::Value* m = mask_of(v)) {
      b.CreateMaskedStore(x, p, llvm::Align(4), m);
    } else {
      b.CreateAlignedStore(x, p, llvm::Align(4));
    }
  };

  // With K split into blocks, C holds the sum of the earlier blocks: add it,
  // and apply alpha and the epilogue only after the last block.
  const bool split_k = layout_.num_kblocks > 1;
  if (split_k) {
    auto* add_c = llvm::BasicBlock::Create(ctx_, "add_c", fn);
    auto* joined = llvm::BasicBlock::Create(ctx_, "joined", fn);
    b.CreateCondBr(accumulate, add_c, joined);
    b.SetInsertPoint(add_c);
    Accs added(sum.size());
    for (int r = 0; r < rows; ++r) {
      for (int v = 0; v < vecs; ++v) {
        const size_t i = static_cast<size_t>(r * vecs + v);
        added[i] = b.CreateFAdd(sum[i], load(c_rows[r], v));
      }
    }
    b.CreateBr(joined);
    b.SetInsertPoint(joined);
    for (size_t i = 0; i < sum.size(); ++i) {
      llvm::PHINode* phi = b.CreatePHI(vec_, 2);
      phi->addIncoming(sum[i], done);
      phi->addIncoming(added[i], add_c);
      sum[i] = phi;
    }
    auto* partial = llvm::BasicBlock::Create(ctx_, "store_partial", fn);
    auto* final_block = llvm::BasicBlock::Create(ctx_, "epilogue", fn);
    b.CreateCondBr(last, final_block, partial);
    b.SetInsertPoint(partial);
    for (int r = 0; r < rows; ++r) {
      for (int v = 0; v < vecs; ++v) store(sum[static_cast<size_t>(r * vecs + v)], c_rows[r], v);
    }
    b.CreateRetVoid();
    b.SetInsertPoint(final_block);
  }

  std::vector<llvm::Value*> bias_v(static_cast<size_t>(vecs), nullptr);
  if (problem_.epilogue.has_bias) {
    for (int v = 0; v < vecs; ++v) bias_v[static_cast<size_t>(v)] = load(bias, v);
  }
  // A transcendental activation is a few dozen instructions per vector:
  // inlined on every register of the tile it would make each kernel several
  // times larger (and slower to compile). Those are applied by a loop over
  // the tile's rows instead, on C just stored and still in L1.
  const bool activation_in_loop = internal::IsTranscendental(problem_.epilogue.activation);
  for (int r = 0; r < rows; ++r) {
    for (int v = 0; v < vecs; ++v) {
      llvm::Value* x = sum[static_cast<size_t>(r * vecs + v)];
      if (problem_.alpha != 1.0f) x = b.CreateFMul(x, FVec(problem_.alpha));
      if (problem_.epilogue.has_bias) x = b.CreateFAdd(x, bias_v[static_cast<size_t>(v)]);
      if (problem_.epilogue.has_residual) x = b.CreateFAdd(x, load(r_rows[r], v));
      store(activation_in_loop ? x : Activation(b, x), c_rows[r], v);
    }
  }
  if (activation_in_loop) {
    llvm::BasicBlock* before = b.GetInsertBlock();
    auto* loop = llvm::BasicBlock::Create(ctx_, "activation_rows", fn);
    auto* end = llvm::BasicBlock::Create(ctx_, "activation_done", fn);
    b.CreateBr(loop);
    b.SetInsertPoint(loop);
    llvm::PHINode* r = b.CreatePHI(i64_, 2, "r");
    r->addIncoming(I64(0), before);
    llvm::Value* row = b.CreateInBoundsGEP(f32_, c, b.CreateMul(r, ldc));
    for (int v = 0; v < vecs; ++v) store(Activation(b, load(row, v)), row, v);
    llvm::Value* next = b.CreateAdd(r, I64(1));
    r->addIncoming(next, loop);
    b.CreateCondBr(b.CreateICmpSLT(next, I64(rows)), loop, end);
    b.SetInsertPoint(end);
  }
  b.CreateRetVoid();
}

llvm::Value* GemmEmitter::Activation(llvm::IRBuilderBase& b, llvm::Value* x) const {
  return problem_.bit_exact ? internal::EmitBitExactActivation(b, x, problem_.epilogue)
                            : internal::EmitActivation(b, x, problem_.epilogue);
}

void GemmEmitter::CallKernel(llvm::IRBuilderBase& b, const PanelArgs& args, int rows, int vecs, int last_lanes,
                             llvm::Value* row) {
  llvm::Value* a = b.CreateInBoundsGEP(f32_, args.a_k, b.CreateMul(row, args.lda));
  llvm::Value* c = b.CreateInBoundsGEP(f32_, args.c_col, b.CreateMul(row, args.ldc));
  // Not inbounds: the residual pointer is null when there is none.
  llvm::Value* residual = b.CreateGEP(f32_, args.residual_col, b.CreateMul(row, args.ldr));
  b.CreateCall(Kernel(rows, vecs, last_lanes), {a, args.lda, args.b_panel, args.kc, c, args.ldc, args.bias_col,
                                                residual, args.ldr, args.accumulate, args.last});
}

void GemmEmitter::EmitRowLoop(llvm::IRBuilderBase& b, const PanelArgs& args, int vecs, int last_lanes,
                              llvm::Value* row_begin, llvm::Value* row_end) {
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  const int mr = layout_.mr;
  auto* before = b.GetInsertBlock();
  auto* head = llvm::BasicBlock::Create(ctx_, "rows", fn);
  auto* body = llvm::BasicBlock::Create(ctx_, "row_tile", fn);
  auto* edge = llvm::BasicBlock::Create(ctx_, "row_edge", fn);
  b.CreateBr(head);
  b.SetInsertPoint(head);
  llvm::PHINode* row = b.CreatePHI(i64_, 2, "row");
  row->addIncoming(row_begin, before);
  b.CreateCondBr(b.CreateICmpSGE(b.CreateSub(row_end, row), I64(mr)), body, edge);
  b.SetInsertPoint(body);
  CallKernel(b, args, mr, vecs, last_lanes, row);
  row->addIncoming(b.CreateAdd(row, I64(mr)), body);
  b.CreateBr(head);

  b.SetInsertPoint(edge);
  if (mr == 1) return;
  llvm::Value* left = b.CreateSub(row_end, row, "rows_left");
  auto* after = llvm::BasicBlock::Create(ctx_, "rows_done", fn);
  if (problem_.m > 0) {
    // A static M's own edge (M mod mr rows, where the caller's range ends at
    // M) in one smaller tile; the remainder of a range split elsewhere (not
    // at a multiple of mr) row by row. Every kernel costs compile time, so
    // static M gets no others.
    const int exact = static_cast<int>(problem_.m % mr);
    auto* by_row = llvm::BasicBlock::Create(ctx_, "edge_rows", fn);
    if (exact > 0) {
      auto* exact_block = llvm::BasicBlock::Create(ctx_, "edge_exact", fn);
      b.CreateCondBr(b.CreateICmpEQ(left, I64(exact)), exact_block, by_row);
      b.SetInsertPoint(exact_block);
      CallKernel(b, args, exact, vecs, last_lanes, row);
      b.CreateBr(after);
    } else {
      b.CreateBr(by_row);
    }
    b.SetInsertPoint(by_row);
    auto* single = llvm::BasicBlock::Create(ctx_, "edge_row", fn);
    b.CreateCondBr(b.CreateICmpSLT(row, row_end), single, after);
    b.SetInsertPoint(single);
    llvm::PHINode* r = b.CreatePHI(i64_, 2, "edge_row");
    r->addIncoming(row, by_row);
    CallKernel(b, args, 1, vecs, last_lanes, r);
    llvm::Value* r_next = b.CreateAdd(r, I64(1));
    r->addIncoming(r_next, single);
    b.CreateCondBr(b.CreateICmpSLT(r_next, row_end), single, after);
    b.SetInsertPoint(after);
    return;
  }
  if (problem_.bit_exact) {
    // The interpreter sums a remainder of 1 or 2 rows in more chains than
    // a larger one: each remainder gets its own tile, as it does there.
    for (int rows = 1; rows < mr; ++rows) {
      auto* call = llvm::BasicBlock::Create(ctx_, "edge_" + std::to_string(rows), fn);
      auto* next = llvm::BasicBlock::Create(ctx_, "edge_next", fn);
      b.CreateCondBr(b.CreateICmpEQ(left, I64(rows)), call, next);
      b.SetInsertPoint(call);
      CallKernel(b, args, rows, vecs, last_lanes, row);
      b.CreateBr(after);
      b.SetInsertPoint(next);
    }
    b.CreateBr(after);
    b.SetInsertPoint(after);
    return;
  }
  // Dynamic M: any remainder (< mr <= 16) as a sum of 8, 4, 2 and 1 rows,
  // four kernels for every case.
  for (int part = 8; part >= 1; part /= 2) {
    if (part >= mr) continue;
    auto* call = llvm::BasicBlock::Create(ctx_, "edge_" + std::to_string(part), fn);
    auto* next = llvm::BasicBlock::Create(ctx_, "edge_next", fn);
    b.CreateCondBr(b.CreateICmpNE(b.CreateAnd(left, I64(part)), I64(0)), call, next);
    b.SetInsertPoint(call);
    // The larger parts come first: this part starts after the bits above it.
    llvm::Value* offset = b.CreateAnd(left, I64(~int64_t{2 * part - 1}));
    CallKernel(b, args, part, vecs, last_lanes, b.CreateAdd(row, offset));
    b.CreateBr(next);
    b.SetInsertPoint(next);
  }
  b.CreateBr(after);
  b.SetInsertPoint(after);
}

void GemmEmitter::EmitEntry(const std::string& name) {
  auto* fn_type = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr_}, false);
  llvm::Function* fn = llvm::Function::Create(fn_type, llvm::Function::ExternalLinkage, name, module_);
  SetTargetAttributes(fn);
  fn->getArg(0)->setName("args");
  fn->addParamAttr(0, llvm::Attribute::NoCapture);
  fn->addParamAttr(0, llvm::Attribute::ReadOnly);

  llvm::IRBuilder<> b(ctx_);
  auto* entry = llvm::BasicBlock::Create(ctx_, "entry", fn);
  auto* exit = llvm::BasicBlock::Create(ctx_, "exit", fn);
  b.SetInsertPoint(entry);
  auto word = [&](ArgWord w, llvm::Type* type, const char* label) {
    return b.CreateAlignedLoad(type, b.CreateConstInBoundsGEP1_64(i64_, fn->getArg(0), w), llvm::Align(8), label);
  };
  llvm::Value* a = word(kArgA, ptr_, "a");
  llvm::Value* lda = word(kArgLda, i64_, "lda");
  llvm::Value* c = word(kArgC, ptr_, "c");
  llvm::Value* ldc = word(kArgLdc, i64_, "ldc");
  llvm::Value* bias = word(kArgBias, ptr_, "bias");
  llvm::Value* residual = word(kArgResidual, ptr_, "residual");
  llvm::Value* ldr = word(kArgLdr, i64_, "ldr");
  llvm::Value* packed = word(kArgPackedB, ptr_, "packed_b");
  llvm::Value* m = problem_.m > 0 ? I64(problem_.m) : word(kArgM, i64_, "m");
  auto smax = [&](llvm::Value* x, llvm::Value* y) { return b.CreateBinaryIntrinsic(llvm::Intrinsic::smax, x, y); };
  auto smin = [&](llvm::Value* x, llvm::Value* y) { return b.CreateBinaryIntrinsic(llvm::Intrinsic::smin, x, y); };
  llvm::Value* row_begin = smax(word(kArgRowBegin, i64_, "row_begin"), I64(0));
  llvm::Value* row_end = smin(word(kArgRowEnd, i64_, "row_end"), m);
  const int64_t panels = layout_.num_panels();
  llvm::Value* block_begin = smax(word(kArgBlockBegin, i64_, "block_begin"), I64(0));
  llvm::Value* block_end = smin(word(kArgBlockEnd, i64_, "block_end"), I64(panels));
  auto* kb_loop = llvm::BasicBlock::Create(ctx_, "k_block", fn);
  b.CreateCondBr(b.CreateAnd(b.CreateICmpSLT(row_begin, row_end), b.CreateICmpSLT(block_begin, block_end)), kb_loop,
                 exit);

  // K blocks outermost: within one, every (row chunk, panel) pair adds its
  // part to C.
  b.SetInsertPoint(kb_loop);
  llvm::PHINode* kb = b.CreatePHI(i64_, 2, "kb");
  kb->addIncoming(I64(0), entry);
  const int64_t nk = layout_.num_kblocks;
  llvm::Value* is_last = b.CreateICmpEQ(kb, I64(nk - 1), "last");
  llvm::Value* kc = b.CreateSelect(is_last, I64(layout_.kc_last()), I64(layout_.kc), "kc");
  llvm::Value* k0 = b.CreateMul(kb, I64(layout_.kc), "k0");
  llvm::Value* block = b.CreateInBoundsGEP(f32_, packed, b.CreateMul(k0, I64(layout_.padded_n())), "b_block");
  PanelArgs args{};
  args.a_k = b.CreateInBoundsGEP(f32_, a, k0, "a_k");
  args.lda = lda;
  args.kc = kc;
  args.ldc = ldc;
  args.ldr = ldr;
  args.accumulate = b.CreateICmpNE(kb, I64(0), "accumulate");
  args.last = is_last;

  // Row chunks that keep A's [chunk, kc] block in half of L2 while the
  // panels pass over it.
  const int64_t chunk_rows = std::max<int64_t>(
      layout_.mr, internal::HostCacheSizes().l2_bytes / 2 / (layout_.kc * 4) / layout_.mr * layout_.mr);
  auto* chunk_loop = llvm::BasicBlock::Create(ctx_, "row_chunk", fn);
  b.CreateBr(chunk_loop);
  b.SetInsertPoint(chunk_loop);
  llvm::PHINode* chunk_begin = b.CreatePHI(i64_, 2, "chunk_begin");
  chunk_begin->addIncoming(row_begin, kb_loop);
  llvm::Value* chunk_end = smin(b.CreateAdd(chunk_begin, I64(chunk_rows)), row_end);

  auto panel_args = [&](llvm::Value* panel) {
    PanelArgs p = args;
    p.b_panel = b.CreateInBoundsGEP(f32_, block, b.CreateMul(b.CreateMul(panel, kc), I64(layout_.nr())));
    llvm::Value* col = b.CreateMul(panel, I64(layout_.nr()), "col");
    p.c_col = b.CreateInBoundsGEP(f32_, c, col);
    p.bias_col = b.CreateGEP(f32_, bias, col);
    p.residual_col = b.CreateGEP(f32_, residual, col);
    return p;
  };

  if (layout_.full_panels > 0) {
    llvm::Value* full_end = smin(block_end, I64(layout_.full_panels));
    auto* panel_loop = llvm::BasicBlock::Create(ctx_, "panel", fn);
    auto* panels_done = llvm::BasicBlock::Create(ctx_, "panels_done", fn);
    llvm::BasicBlock* pre = b.GetInsertBlock();
    b.CreateCondBr(b.CreateICmpSLT(block_begin, full_end), panel_loop, panels_done);
    b.SetInsertPoint(panel_loop);
    llvm::PHINode* panel = b.CreatePHI(i64_, 2, "panel");
    panel->addIncoming(block_begin, pre);
    EmitRowLoop(b, panel_args(panel), layout_.nv, 0, chunk_begin, chunk_end);
    llvm::Value* next = b.CreateAdd(panel, I64(1));
    panel->addIncoming(next, b.GetInsertBlock());
    b.CreateCondBr(b.CreateICmpSLT(next, full_end), panel_loop, panels_done);
    b.SetInsertPoint(panels_done);
  }
  if (layout_.tail_nv > 0) {
    auto* tail = llvm::BasicBlock::Create(ctx_, "tail_panel", fn);
    auto* tail_done = llvm::BasicBlock::Create(ctx_, "tail_done", fn);
    b.CreateCondBr(b.CreateICmpEQ(block_end, I64(panels)), tail, tail_done);
    b.SetInsertPoint(tail);
    EmitRowLoop(b, panel_args(I64(layout_.full_panels)), layout_.tail_nv, layout_.tail_lanes, chunk_begin, chunk_end);
    b.CreateBr(tail_done);
    b.SetInsertPoint(tail_done);
  }
  chunk_begin->addIncoming(chunk_end, b.GetInsertBlock());
  auto* chunks_done = llvm::BasicBlock::Create(ctx_, "chunks_done", fn);
  b.CreateCondBr(b.CreateICmpSLT(chunk_end, row_end), chunk_loop, chunks_done);

  b.SetInsertPoint(chunks_done);
  llvm::Value* kb_next = b.CreateAdd(kb, I64(1));
  kb->addIncoming(kb_next, chunks_done);
  b.CreateCondBr(b.CreateICmpSLT(kb_next, I64(nk)), kb_loop, exit);

  b.SetInsertPoint(exit);
  b.CreateRetVoid();
}

Status ValidateProblem(const GemmProblem& problem) {
  if (problem.n <= 0 || problem.k <= 0) {
    return InvalidArgument("jit: GEMM needs n > 0 and k > 0, got n=", problem.n, " k=", problem.k);
  }
  const GemmEpilogue& e = problem.epilogue;
  if (e.activation == GemmActivation::kClip && !(e.alpha <= e.beta)) {
    return InvalidArgument("jit: GEMM Clip epilogue needs min <= max, got [", e.alpha, ", ", e.beta, "]");
  }
  return Status::Ok();
}

StatusOr<GemmLayout> LayoutFor(const GemmProblem& problem, const GemmIsa& isa, const GemmTuning& tuning) {
  internal::GemmTileOverride override_tile;
  override_tile.mr = tuning.mr;
  if (tuning.nr > 0) {
    if (tuning.nr % isa.lanes != 0) {
      return InvalidArgument("jit: GEMM tile width ", tuning.nr, " is not a multiple of ", isa.lanes, " lanes");
    }
    override_tile.nv = tuning.nr / isa.lanes;
  }
  override_tile.kc = tuning.kc;
  return internal::ChooseGemmLayout(problem.m, problem.n, problem.k, isa, internal::HostCacheSizes(), override_tile);
}

// Bit-exact code blocks rows and K as the interpreter does; the tile width
// stays free.
GemmTuning BitExactTuning(const GemmProblem& problem, GemmTuning tuning) {
  if (!problem.bit_exact) return tuning;
  tuning.mr = kBitExactTileRows;
  tuning.kc = kBitExactDepthBlock;
  return tuning;
}

std::string ModuleName(const GemmProblem& problem, uint64_t serial) {
  const std::string m = problem.m > 0 ? std::to_string(problem.m) : "dyn";
  return "kiln_gemm_" + m + "x" + std::to_string(problem.n) + "x" + std::to_string(problem.k) + "_" +
         std::to_string(serial);
}

}  // namespace

const char* GemmActivationName(GemmActivation activation) {
  switch (activation) {
    case GemmActivation::kNone: return "None";
    case GemmActivation::kRelu: return "Relu";
    case GemmActivation::kLeakyRelu: return "LeakyRelu";
    case GemmActivation::kClip: return "Clip";
    case GemmActivation::kSigmoid: return "Sigmoid";
    case GemmActivation::kTanh: return "Tanh";
    case GemmActivation::kHardSwish: return "HardSwish";
    case GemmActivation::kHardSigmoid: return "HardSigmoid";
    case GemmActivation::kElu: return "Elu";
    case GemmActivation::kGeluErf: return "GeluErf";
    case GemmActivation::kGeluTanh: return "GeluTanh";
    case GemmActivation::kSilu: return "Silu";
  }
  return "?";
}

CompiledGemm::CompiledGemm(std::shared_ptr<const JitCode> code, std::unique_ptr<PackedWeight> weight, Info info)
    : code_(std::move(code)), weight_(std::move(weight)), info_(std::move(info)) {
  entry_ = reinterpret_cast<void (*)(const void*)>(code_->entry_address());
}

CompiledGemm::~CompiledGemm() = default;

std::string CompiledGemm::label() const {
  return info_.isa + " " + std::to_string(info_.mr) + "x" + std::to_string(info_.nr);
}

void CompiledGemm::Run(const float* a, int64_t lda, int64_t m, float* c, int64_t ldc, const float* bias,
                       const float* residual, int64_t ldr, int64_t row_begin, int64_t row_end) const {
  RunTile(a, lda, m, c, ldc, bias, residual, ldr, row_begin, row_end, 0, info_.num_column_blocks);
}

KILN_NO_SANITIZE_FUNCTION void CompiledGemm::RunTile(const float* a, int64_t lda, int64_t m, float* c, int64_t ldc,
                                                     const float* bias, const float* residual, int64_t ldr,
                                                     int64_t row_begin, int64_t row_end, int64_t block_begin,
                                                     int64_t block_end) const {
  assert((dynamic_m() || m == info_.problem.m) && "a static-M GEMM runs with its own M");
  const int64_t words[kNumArgWords] = {reinterpret_cast<int64_t>(a),
                                       lda,
                                       reinterpret_cast<int64_t>(c),
                                       ldc,
                                       reinterpret_cast<int64_t>(bias),
                                       reinterpret_cast<int64_t>(residual),
                                       ldr,
                                       reinterpret_cast<int64_t>(weight_->data.get()),
                                       m,
                                       row_begin,
                                       row_end,
                                       block_begin,
                                       block_end};
  entry_(words);
}

StatusOr<std::unique_ptr<CompiledGemm>> CompileGemm(JitCompiler& compiler, const GemmProblem& problem,
                                                    const float* weight, bool weight_transposed,
                                                    const GemmTuning& tuning) {
  const auto start = std::chrono::steady_clock::now();
  KILN_RETURN_IF_ERROR(ValidateProblem(problem));
  if (weight == nullptr) return InvalidArgument("jit: CompileGemm needs the weight");
  const GemmIsa isa = internal::HostIsa(compiler);
  KILN_ASSIGN_OR_RETURN(GemmLayout layout, LayoutFor(problem, isa, BitExactTuning(problem, tuning)));

  auto packed = std::make_unique<CompiledGemm::PackedWeight>();
  KILN_ASSIGN_OR_RETURN(packed->data, internal::PackGemmWeight(layout, weight, weight_transposed));

  const std::string name = ModuleName(problem, compiler.NextSerial());
  KILN_ASSIGN_OR_RETURN(
      internal::RegionCode code, internal::EmitAndCompile(compiler, name, [&](llvm::Module& module) -> Status {
        GemmEmitter(module, problem, layout, compiler.cpu_name(), compiler.cpu_features()).EmitEntry(name);
        return Status::Ok();
      }));

  CompiledGemm::Info info;
  info.name = code.code->symbol();
  info.isa = isa.name;
  info.problem = problem;
  info.mr = layout.mr;
  info.nr = layout.nr();
  info.lanes = layout.lanes;
  info.kc = layout.kc;
  info.num_kblocks = layout.num_kblocks;
  info.num_column_blocks = layout.num_panels();
  info.packed_weight_bytes = layout.packed_floats() * sizeof(float);
  info.reused_code = code.reused;
  info.from_disk_cache = code.from_disk;
  info.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return std::unique_ptr<CompiledGemm>(new CompiledGemm(std::move(code.code), std::move(packed), std::move(info)));
}

StatusOr<std::string> EmitGemmAssembly(const GemmProblem& problem, const std::string& cpu, const std::string& features,
                                       const GemmTuning& tuning) {
  KILN_RETURN_IF_ERROR(ValidateProblem(problem));
  return internal::EmitAssemblyFor(cpu, features, [&](llvm::Module& module, const GemmIsa& isa) -> Status {
    KILN_ASSIGN_OR_RETURN(GemmLayout layout, LayoutFor(problem, isa, BitExactTuning(problem, tuning)));
    GemmEmitter(module, problem, layout, cpu, features).EmitEntry("kiln_gemm");
    return Status::Ok();
  });
}

}  // namespace kiln::jit
