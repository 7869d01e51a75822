#include "jit/lstm_codegen.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/DerivedTypes.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Module.h>
#include <llvm/Target/TargetMachine.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <thread>
#include <utility>

#include "jit/codegen_target.h"
#include "jit/gemm_packing.h"
#include "jit/region_ops.h"
#include "jit/vector_math.h"

namespace kiln::jit {

using internal::AlignedFloats;
using internal::GemmIsa;

struct CompiledLstm::Direction {
  std::unique_ptr<CompiledGemm> projection;
  std::vector<float> bias;  // Wb + Rb, 4 * hidden
  AlignedFloats packed_r;
};

namespace {

// The recurrence entry's single argument points to these words, in this
// order (CompiledLstm::RunRecurrence fills them).
enum ArgWord : unsigned {
  kArgProjection,  // [seq, batch, 4 * hidden]: X W^T + Wb + Rb
  kArgPackedR,
  kArgH,        // h_t of row r at h + t * h_step + r * hidden
  kArgHStep,    // floats between consecutive steps' h
  kArgH0,       // [batch, hidden]
  kArgC,        // [batch, hidden], updated in place
  kArgReverse,  // non-zero: steps from seq - 1 down to 0
  // The steps [step_begin, step_end) (in processing order) and, of each,
  // the panels [panel_begin, panel_end).
  kArgStepBegin,
  kArgStepEnd,
  kArgPanelBegin,
  kArgPanelEnd,
  kNumArgWords
};

constexpr int kGates = 4;  // ONNX order: i, o, f, c

// Batch rows per register tile: rows * 4 accumulators, the four gate
// vectors of R and a broadcast of h must fit the vector registers.
int RowsPerTile(const GemmIsa& isa, const LstmTuning& tuning) {
  if (tuning.mr > 0) return tuning.mr;
  return std::max(1, (isa.registers - kGates - 2) / kGates);
}

// The batch in tiles of at most `mr` rows, as even as possible: 7 rows at
// mr = 6 are 4 + 3, not 6 + 1.
std::vector<std::pair<int64_t, int>> RowTiles(int64_t batch, int mr) {
  const int64_t tiles = (batch + mr - 1) / mr;
  std::vector<std::pair<int64_t, int>> out;
  int64_t row = 0;
  for (int64_t i = 0; i < tiles; ++i) {
    const int rows = static_cast<int>((batch - row) / (tiles - i) + ((batch - row) % (tiles - i) != 0 ? 1 : 0));
    out.emplace_back(row, rows);
    row += rows;
  }
  return out;
}

class RecurrenceEmitter {
 public:
  RecurrenceEmitter(llvm::Module& module, const LstmProblem& problem, int lanes, int mr, const std::string& cpu,
                    const std::string& features)
      : module_(module),
        ctx_(module.getContext()),
        problem_(problem),
        lanes_(lanes),
        mr_(mr),
        cpu_(cpu),
        features_(features) {
    f32_ = llvm::Type::getFloatTy(ctx_);
    i64_ = llvm::Type::getInt64Ty(ctx_);
    ptr_ = llvm::PointerType::get(ctx_, 0);
    vec_ = llvm::FixedVectorType::get(f32_, static_cast<unsigned>(lanes));
    // (projection rows, R panel, h_prev rows, h_out, c)
    tile_type_ = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr_, ptr_, ptr_, ptr_, ptr_}, false);
    panels_ = (problem.hidden + lanes - 1) / lanes;
    tail_lanes_ = static_cast<int>(problem.hidden % lanes);
  }

  void EmitEntry(const std::string& name);

 private:
  llvm::Value* I64(int64_t v) const { return llvm::ConstantInt::get(i64_, v); }
  llvm::Function* Tile(int rows, bool masked);
  void EmitTileBody(llvm::Function* fn, int rows, bool masked);

  llvm::Module& module_;
  llvm::LLVMContext& ctx_;
  const LstmProblem& problem_;
  int lanes_;
  int mr_;
  std::string cpu_, features_;
  llvm::Type* f32_;
  llvm::Type* i64_;
  llvm::PointerType* ptr_;
  llvm::FixedVectorType* vec_;
  llvm::FunctionType* tile_type_;
  int64_t panels_ = 0;
  int tail_lanes_ = 0;
  std::map<std::pair<int, bool>, llvm::Function*> tiles_;
};

llvm::Function* RecurrenceEmitter::Tile(int rows, bool masked) {
  const auto key = std::make_pair(rows, masked);
  if (auto it = tiles_.find(key); it != tiles_.end()) return it->second;
  const std::string name = "lstm_tile_" + std::to_string(rows) + (masked ? "_mask" : "");
  llvm::Function* fn = llvm::Function::Create(tile_type_, llvm::Function::InternalLinkage, name, module_);
  internal::SetVectorFunctionAttributes(fn, cpu_, features_, lanes_);
  // One copy per tile shape, called from the panel loop: the cell's
  // transcendentals inlined at every call would multiply the code.
  fn->addFnAttr(llvm::Attribute::NoInline);
  for (unsigned a = 0; a < 5; ++a) fn->addParamAttr(a, llvm::Attribute::NoCapture);
  for (unsigned a : {0u, 1u, 2u}) fn->addParamAttr(a, llvm::Attribute::ReadOnly);
  // h_out is a different step's slot than h_prev, and c is its own buffer.
  for (unsigned a = 0; a < 5; ++a) fn->addParamAttr(a, llvm::Attribute::NoAlias);
  EmitTileBody(fn, rows, masked);
  tiles_[key] = fn;
  return fn;
}

void RecurrenceEmitter::EmitTileBody(llvm::Function* fn, int rows, bool masked) {
  llvm::Value* proj = fn->getArg(0);
  llvm::Value* panel = fn->getArg(1);
  llvm::Value* h_prev = fn->getArg(2);
  llvm::Value* h_out = fn->getArg(3);
  llvm::Value* c = fn->getArg(4);
  const int64_t hidden = problem_.hidden;
  const int64_t gate_stride = kGates * hidden;  // floats per projection row
  const int64_t k_stride = int64_t{kGates} * lanes_;

  llvm::IRBuilder<> b(ctx_);
  auto* entry = llvm::BasicBlock::Create(ctx_, "entry", fn);
  b.SetInsertPoint(entry);

  llvm::Value* mask = nullptr;
  if (masked) {
    std::vector<llvm::Constant*> live(static_cast<size_t>(lanes_));
    for (int l = 0; l < lanes_; ++l) live[static_cast<size_t>(l)] = b.getInt1(l < tail_lanes_);
    mask = llvm::ConstantVector::get(live);
  }
  llvm::Value* zero = llvm::Constant::getNullValue(vec_);
  auto load = [&](llvm::Value* p) -> llvm::Value* {
    if (mask != nullptr) return b.CreateMaskedLoad(vec_, p, llvm::Align(4), mask, zero);
    return b.CreateAlignedLoad(vec_, p, llvm::Align(4));
  };
  auto store = [&](llvm::Value* v, llvm::Value* p) {
    if (mask != nullptr) {
      b.CreateMaskedStore(v, p, llvm::Align(4), mask);
    } else {
      b.CreateAlignedStore(v, p, llvm::Align(4));
    }
  };

  // The accumulators start from the step's projection rows (bias included).
  std::vector<llvm::Value*> init(static_cast<size_t>(rows * kGates));
  std::vector<llvm::Value*> h_rows(static_cast<size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    h_rows[static_cast<size_t>(r)] = b.CreateInBoundsGEP(f32_, h_prev, I64(int64_t{r} * hidden));
    for (int g = 0; g < kGates; ++g) {
      llvm::Value* p = b.CreateInBoundsGEP(f32_, proj, I64(int64_t{r} * gate_stride + int64_t{g} * hidden));
      init[static_cast<size_t>(r * kGates + g)] = load(p);
    }
  }

  // acc[r][g] += h_prev[r][k] * R[g * hidden + unit][k], k by k.
  auto step = [&](std::vector<llvm::Value*>& acc, llvm::Value* k) {
    llvm::Value* row = b.CreateInBoundsGEP(f32_, panel, b.CreateMul(k, I64(k_stride)));
    llvm::Value* rv[kGates];
    for (int g = 0; g < kGates; ++g) {
      rv[g] = b.CreateAlignedLoad(vec_, b.CreateInBoundsGEP(f32_, row, I64(int64_t{g} * lanes_)),
                                  llvm::Align(static_cast<uint64_t>(lanes_) * 4));
    }
    for (int r = 0; r < rows; ++r) {
      llvm::Value* s =
          b.CreateAlignedLoad(f32_, b.CreateInBoundsGEP(f32_, h_rows[static_cast<size_t>(r)], k), llvm::Align(4));
      llvm::Value* splat = b.CreateVectorSplat(static_cast<unsigned>(lanes_), s);
      for (int g = 0; g < kGates; ++g) {
        llvm::Value*& a = acc[static_cast<size_t>(r * kGates + g)];
        a = b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vec_}, {splat, rv[g], a});
      }
    }
  };

  // The k loop, unrolled; the remainder (hidden is a constant) straight.
  constexpr int kUnroll = 4;
  const int64_t main_steps = hidden / kUnroll * kUnroll;
  std::vector<llvm::Value*> acc = init;
  if (main_steps > 0) {
    auto* loop = llvm::BasicBlock::Create(ctx_, "k", fn);
    auto* after = llvm::BasicBlock::Create(ctx_, "k_done", fn);
    b.CreateBr(loop);
    b.SetInsertPoint(loop);
    llvm::PHINode* k = b.CreatePHI(i64_, 2, "k");
    k->addIncoming(I64(0), entry);
    std::vector<llvm::PHINode*> phis(acc.size());
    for (size_t i = 0; i < acc.size(); ++i) {
      phis[i] = b.CreatePHI(vec_, 2);
      phis[i]->addIncoming(init[i], entry);
      acc[i] = phis[i];
    }
    for (int u = 0; u < kUnroll; ++u) step(acc, b.CreateAdd(k, I64(u)));
    llvm::Value* next = b.CreateAdd(k, I64(kUnroll));
    k->addIncoming(next, loop);
    for (size_t i = 0; i < acc.size(); ++i) phis[i]->addIncoming(acc[i], loop);
    b.CreateCondBr(b.CreateICmpSLT(next, I64(main_steps)), loop, after);
    b.SetInsertPoint(after);
  }
  for (int64_t k = main_steps; k < hidden; ++k) step(acc, I64(k));

  // The cell, on the tile in registers.
  for (int r = 0; r < rows; ++r) {
    auto gate = [&](int g) { return acc[static_cast<size_t>(r * kGates + g)]; };
    llvm::Value* i = EmitSigmoid(b, gate(0));
    llvm::Value* o = EmitSigmoid(b, gate(1));
    llvm::Value* f = EmitSigmoid(b, gate(2));
    llvm::Value* g = EmitTanh(b, gate(3));
    llvm::Value* c_ptr = b.CreateInBoundsGEP(f32_, c, I64(int64_t{r} * hidden));
    llvm::Value* c_next = b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vec_}, {f, load(c_ptr), b.CreateFMul(i, g)});
    store(c_next, c_ptr);
    store(b.CreateFMul(o, EmitTanh(b, c_next)), b.CreateInBoundsGEP(f32_, h_out, I64(int64_t{r} * hidden)));
  }
  b.CreateRetVoid();
}

void RecurrenceEmitter::EmitEntry(const std::string& name) {
  auto* fn_type = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr_}, false);
  llvm::Function* fn = llvm::Function::Create(fn_type, llvm::Function::ExternalLinkage, name, module_);
  internal::SetVectorFunctionAttributes(fn, cpu_, features_, lanes_);
  fn->getArg(0)->setName("args");
  fn->addParamAttr(0, llvm::Attribute::NoCapture);
  fn->addParamAttr(0, llvm::Attribute::ReadOnly);

  const int64_t seq = problem_.seq;
  const int64_t batch = problem_.batch;
  const int64_t hidden = problem_.hidden;
  const int64_t panel_floats = hidden * kGates * lanes_;
  const std::vector<std::pair<int64_t, int>> row_tiles = RowTiles(batch, mr_);

  llvm::IRBuilder<> b(ctx_);
  auto* entry = llvm::BasicBlock::Create(ctx_, "entry", fn);
  b.SetInsertPoint(entry);
  auto word = [&](ArgWord w, llvm::Type* type, const char* label) {
    return b.CreateAlignedLoad(type, b.CreateConstInBoundsGEP1_64(i64_, fn->getArg(0), w), llvm::Align(8), label);
  };
  llvm::Value* proj = word(kArgProjection, ptr_, "projection");
  llvm::Value* packed_r = word(kArgPackedR, ptr_, "packed_r");
  llvm::Value* h = word(kArgH, ptr_, "h");
  llvm::Value* h_step = word(kArgHStep, i64_, "h_step");
  llvm::Value* h0 = word(kArgH0, ptr_, "h0");
  llvm::Value* c = word(kArgC, ptr_, "c");
  llvm::Value* reverse = b.CreateICmpNE(word(kArgReverse, i64_, "reverse"), I64(0), "is_reverse");
  llvm::Value* step_begin = word(kArgStepBegin, i64_, "step_begin");
  llvm::Value* step_end = word(kArgStepEnd, i64_, "step_end");
  llvm::Value* panel_begin = word(kArgPanelBegin, i64_, "panel_begin");
  llvm::Value* panel_last = b.CreateSub(word(kArgPanelEnd, i64_, "panel_end"), I64(1), "panel_last");
  llvm::Value* panel_count = b.CreateSub(b.CreateAdd(panel_last, I64(1)), panel_begin, "panel_count");

  auto* step_loop = llvm::BasicBlock::Create(ctx_, "step", fn);
  auto* exit = llvm::BasicBlock::Create(ctx_, "exit", fn);
  b.CreateCondBr(b.CreateAnd(b.CreateICmpSLT(step_begin, step_end), b.CreateICmpSGT(panel_count, I64(0))), step_loop,
                 exit);

  b.SetInsertPoint(step_loop);
  llvm::PHINode* s = b.CreatePHI(i64_, 2, "s");
  s->addIncoming(step_begin, entry);
  llvm::Value* t = b.CreateSelect(reverse, b.CreateSub(I64(seq - 1), s), s, "t");
  llvm::Value* t_prev = b.CreateSelect(reverse, b.CreateAdd(t, I64(1)), b.CreateSub(t, I64(1)), "t_prev");
  // Not inbounds: t_prev is out of range on the first step, where h0 is
  // read instead.
  llvm::Value* h_prev =
      b.CreateSelect(b.CreateICmpEQ(s, I64(0)), h0, b.CreateGEP(f32_, h, b.CreateMul(t_prev, h_step)), "h_prev");
  llvm::Value* h_out = b.CreateInBoundsGEP(f32_, h, b.CreateMul(t, h_step), "h_out");
  llvm::Value* proj_t = b.CreateInBoundsGEP(f32_, proj, b.CreateMul(t, I64(batch * kGates * hidden)), "proj_t");
  llvm::Value* odd = b.CreateICmpNE(b.CreateAnd(s, I64(1)), I64(0), "odd");

  auto* panel_loop = llvm::BasicBlock::Create(ctx_, "panel", fn);
  auto* step_done = llvm::BasicBlock::Create(ctx_, "step_done", fn);
  b.CreateBr(panel_loop);
  b.SetInsertPoint(panel_loop);
  llvm::PHINode* q = b.CreatePHI(i64_, 2, "q");
  q->addIncoming(I64(0), step_loop);
  // Odd steps walk the panels backwards: the panels the previous step read
  // last are still in cache.
  llvm::Value* p = b.CreateSelect(odd, b.CreateSub(panel_last, q), b.CreateAdd(panel_begin, q), "p");
  llvm::Value* unit = b.CreateMul(p, I64(lanes_), "unit");
  llvm::Value* r_panel = b.CreateInBoundsGEP(f32_, packed_r, b.CreateMul(p, I64(panel_floats)), "r_panel");
  auto call_tiles = [&](bool masked) {
    for (const auto& [row, rows] : row_tiles) {
      llvm::Value* proj_rows = b.CreateInBoundsGEP(f32_, proj_t, b.CreateAdd(unit, I64(row * kGates * hidden)));
      llvm::Value* h_prev_rows = b.CreateGEP(f32_, h_prev, I64(row * hidden));
      llvm::Value* out_rows = b.CreateInBoundsGEP(f32_, h_out, b.CreateAdd(unit, I64(row * hidden)));
      llvm::Value* c_rows = b.CreateInBoundsGEP(f32_, c, b.CreateAdd(unit, I64(row * hidden)));
      b.CreateCall(Tile(rows, masked), {proj_rows, r_panel, h_prev_rows, out_rows, c_rows});
    }
  };
  auto* panel_next = llvm::BasicBlock::Create(ctx_, "panel_next", fn);
  if (tail_lanes_ == 0) {
    call_tiles(false);
    b.CreateBr(panel_next);
  } else {
    auto* full = llvm::BasicBlock::Create(ctx_, "full_panel", fn);
    auto* tail = llvm::BasicBlock::Create(ctx_, "tail_panel", fn);
    b.CreateCondBr(b.CreateICmpEQ(p, I64(panels_ - 1)), tail, full);
    b.SetInsertPoint(full);
    call_tiles(false);
    b.CreateBr(panel_next);
    b.SetInsertPoint(tail);
    call_tiles(true);
    b.CreateBr(panel_next);
  }
  b.SetInsertPoint(panel_next);
  llvm::Value* q_next = b.CreateAdd(q, I64(1));
  q->addIncoming(q_next, panel_next);
  b.CreateCondBr(b.CreateICmpSLT(q_next, panel_count), panel_loop, step_done);

  b.SetInsertPoint(step_done);
  llvm::Value* s_next = b.CreateAdd(s, I64(1));
  s->addIncoming(s_next, step_done);
  b.CreateCondBr(b.CreateICmpSLT(s_next, step_end), step_loop, exit);

  b.SetInsertPoint(exit);
  b.CreateRetVoid();
}

Status ValidateProblem(const LstmProblem& p) {
  if (p.seq <= 0 || p.batch <= 0 || p.input <= 0 || p.hidden <= 0) {
    return InvalidArgument("jit: LSTM needs positive seq, batch, input and hidden, got ", p.seq, ", ", p.batch, ", ",
                           p.input, ", ", p.hidden);
  }
  if (p.num_directions != 1 && p.num_directions != 2) {
    return InvalidArgument("jit: LSTM has 1 or 2 directions, got ", p.num_directions);
  }
  return Status::Ok();
}

Status CheckIsa(const GemmIsa& isa) {
  if (isa.lanes < 8) return Unsupported("jit: LSTM code needs AVX2 or AVX-512, the target has ", isa.name);
  return Status::Ok();
}

std::string ModuleName(const LstmProblem& p, uint64_t serial) {
  return "kiln_lstm_" + std::to_string(p.seq) + "x" + std::to_string(p.batch) + "x" + std::to_string(p.hidden) + "_" +
         std::to_string(serial);
}

// R [4 * hidden, hidden] of one direction in panels of `lanes` hidden units:
// panel p, row k holds R[g * hidden + p * lanes + l][k] at g * lanes + l;
// units past `hidden` are 0.
StatusOr<AlignedFloats> PackRecurrentWeight(const float* r, int64_t hidden, int lanes) {
  const int64_t panels = (hidden + lanes - 1) / lanes;
  const size_t floats = static_cast<size_t>(panels * hidden * kGates * lanes);
  const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
  auto* data = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (data == nullptr) return ResourceExhausted("jit: cannot allocate ", bytes, " bytes for an LSTM's packed R");
  AlignedFloats packed(data);
  std::memset(data, 0, bytes);
  for (int64_t p = 0; p < panels; ++p) {
    for (int64_t k = 0; k < hidden; ++k) {
      float* row = data + (p * hidden + k) * kGates * lanes;
      for (int g = 0; g < kGates; ++g) {
        for (int l = 0; l < lanes; ++l) {
          const int64_t unit = p * lanes + l;
          if (unit < hidden) row[g * lanes + l] = r[(g * hidden + unit) * hidden + k];
        }
      }
    }
  }
  return packed;
}

}  // namespace

CompiledLstm::~CompiledLstm() = default;

size_t CompiledLstm::work_floats() const {
  const LstmProblem& p = problem_;
  // Per direction: the projection, c, a zero h0, h when Y is not wanted.
  const int64_t per_direction =
      p.seq * p.batch * kGates * p.hidden + 2 * p.batch * p.hidden + p.seq * p.batch * p.hidden;
  return static_cast<size_t>(per_direction * p.num_directions);
}

float* CompiledLstm::Projection(const Buffers& buffers, int direction) const {
  return buffers.work + static_cast<size_t>(direction) * (work_floats() / static_cast<size_t>(problem_.num_directions));
}

int64_t CompiledLstm::projection_tiles() const {
  const CompiledGemm& gemm = *directions_[0].projection;
  return (problem_.seq * problem_.batch + gemm.mr() - 1) / gemm.mr();
}

void CompiledLstm::RunProjection(const Buffers& buffers, int direction, int64_t tile_begin, int64_t tile_end) const {
  const Direction& d = directions_[static_cast<size_t>(direction)];
  const LstmProblem& p = problem_;
  const int64_t m = p.seq * p.batch;
  const int64_t mr = d.projection->mr();
  d.projection->Run(buffers.x, p.input, m, Projection(buffers, direction), kGates * p.hidden, d.bias.data(), nullptr, 0,
                    tile_begin * mr, tile_end * mr);
}

CompiledLstm::State CompiledLstm::StateOf(const Buffers& buffers, int direction) const {
  const LstmProblem& p = problem_;
  const int64_t state = p.batch * p.hidden;  // floats of one direction's h or c
  State st;
  st.projection = Projection(buffers, direction);
  st.c = st.projection + p.seq * p.batch * kGates * p.hidden;
  float* zero_h = st.c + state;
  st.h0 = buffers.initial_h != nullptr ? buffers.initial_h + direction * state : zero_h;
  st.h = zero_h + state;
  st.h_step = state;
  if (buffers.y != nullptr) {
    st.h = buffers.y + direction * state;
    st.h_step = p.num_directions * state;
  }
  st.reverse = p.num_directions == 2 ? direction == 1 : p.reverse;
  return st;
}

void CompiledLstm::BeginRecurrence(const Buffers& buffers, int direction) const {
  const State st = StateOf(buffers, direction);
  const int64_t state = problem_.batch * problem_.hidden;
  const size_t state_bytes = static_cast<size_t>(state) * sizeof(float);
  if (buffers.initial_c != nullptr) {
    std::memcpy(st.c, buffers.initial_c + direction * state, state_bytes);
  } else {
    std::memset(st.c, 0, state_bytes);
  }
  if (buffers.initial_h == nullptr) std::memset(st.c + state, 0, state_bytes);  // the zero h0
}

KILN_NO_SANITIZE_FUNCTION void CompiledLstm::RecurrenceSteps(const Buffers& buffers, int direction, int64_t step_begin,
                                                             int64_t step_end, int64_t panel_begin,
                                                             int64_t panel_end) const {
  const State st = StateOf(buffers, direction);
  const int64_t words[kNumArgWords] = {
      reinterpret_cast<int64_t>(st.projection),
      reinterpret_cast<int64_t>(directions_[static_cast<size_t>(direction)].packed_r.get()),
      reinterpret_cast<int64_t>(st.h),
      st.h_step,
      reinterpret_cast<int64_t>(st.h0),
      reinterpret_cast<int64_t>(st.c),
      st.reverse ? 1 : 0,
      std::max<int64_t>(step_begin, 0),
      std::min(step_end, problem_.seq),
      std::max<int64_t>(panel_begin, 0),
      std::min(panel_end, panels_)};
  steps_entry_(words);
}

void CompiledLstm::EndRecurrence(const Buffers& buffers, int direction) const {
  const State st = StateOf(buffers, direction);
  const int64_t state = problem_.batch * problem_.hidden;
  const size_t state_bytes = static_cast<size_t>(state) * sizeof(float);
  // The last step computed is t = seq - 1 forwards, t = 0 in reverse.
  const int64_t last = st.reverse ? 0 : problem_.seq - 1;
  if (buffers.y_h != nullptr) std::memcpy(buffers.y_h + direction * state, st.h + last * st.h_step, state_bytes);
  if (buffers.y_c != nullptr) std::memcpy(buffers.y_c + direction * state, st.c, state_bytes);
}

void CompiledLstm::RunRecurrence(const Buffers& buffers, int direction) const {
  BeginRecurrence(buffers, direction);
  RecurrenceSteps(buffers, direction, 0, problem_.seq, 0, panels_);
  EndRecurrence(buffers, direction);
}

void CompiledLstm::RecurrenceWorker(const Buffers& buffers, int direction, SharedRecurrence& shared, int worker) const {
  const int64_t split = panels_ / 2;
  for (int64_t s = 0; s < problem_.seq; ++s) {
    // Both halves of the previous step are done (their h is what this step
    // reads); the acquire pairs with the release below.
    for (int spins = 0; shared.finished.load(std::memory_order_acquire) < 2 * s; ++spins) {
      if (spins >= 64) std::this_thread::yield();
    }
    for (int i = 0; i < 2; ++i) {
      const int half = i == 0 ? worker : 1 - worker;
      int64_t expected = s;
      if (!shared.claimed[half].compare_exchange_strong(expected, s + 1, std::memory_order_acq_rel)) continue;
      RecurrenceSteps(buffers, direction, s, s + 1, half == 0 ? 0 : split, half == 0 ? split : panels_);
      shared.finished.fetch_add(1, std::memory_order_release);
    }
  }
}

void CompiledLstm::Run(const Buffers& buffers) const {
  for (int d = 0; d < problem_.num_directions; ++d) {
    RunProjection(buffers, d, 0, projection_tiles());
    RunRecurrence(buffers, d);
  }
}

std::string CompiledLstm::label() const {
  return isa_ + " " + std::to_string(mr_) + "x" + std::to_string(lanes_) + ", projection " +
         directions_[0].projection->label();
}

size_t CompiledLstm::code_bytes() const { return steps_code_->code_bytes() + directions_[0].projection->code_bytes(); }

size_t CompiledLstm::packed_weight_bytes() const {
  size_t bytes = 0;
  for (const Direction& d : directions_) {
    bytes += d.projection->packed_weight_bytes() +
             static_cast<size_t>(panels_ * problem_.hidden * kGates * lanes_) * sizeof(float);
  }
  return bytes;
}

double CompiledLstm::flops() const {
  const LstmProblem& p = problem_;
  return 2.0 * static_cast<double>(p.num_directions * p.seq * p.batch * kGates * p.hidden) *
         static_cast<double>(p.input + p.hidden);
}

StatusOr<std::unique_ptr<CompiledLstm>> CompileLstm(JitCompiler& compiler, const LstmProblem& problem, const float* w,
                                                    const float* r, const float* b, const LstmTuning& tuning) {
  const auto start = std::chrono::steady_clock::now();
  KILN_RETURN_IF_ERROR(ValidateProblem(problem));
  if (w == nullptr || r == nullptr) return InvalidArgument("jit: CompileLstm needs W and R");
  const GemmIsa isa = internal::HostIsa(compiler);
  KILN_RETURN_IF_ERROR(CheckIsa(isa));
  const int mr = RowsPerTile(isa, tuning);
  if (mr < 1 || mr * kGates + kGates + 1 > isa.registers) {
    return InvalidArgument("jit: an LSTM tile of ", mr, " rows does not fit ", isa.registers, " vector registers");
  }

  std::unique_ptr<CompiledLstm> lstm(new CompiledLstm());
  lstm->problem_ = problem;
  lstm->isa_ = isa.name;
  lstm->lanes_ = isa.lanes;
  lstm->mr_ = mr;
  lstm->panels_ = (problem.hidden + isa.lanes - 1) / isa.lanes;
  const int64_t gates = kGates * problem.hidden;
  GemmProblem projection;
  projection.m = problem.seq * problem.batch;
  projection.n = gates;
  projection.k = problem.input;
  projection.epilogue.has_bias = true;
  lstm->directions_.resize(static_cast<size_t>(problem.num_directions));
  for (int d = 0; d < problem.num_directions; ++d) {
    CompiledLstm::Direction& dir = lstm->directions_[static_cast<size_t>(d)];
    dir.bias.assign(static_cast<size_t>(gates), 0.0f);
    if (b != nullptr) {
      const float* wb = b + d * 2 * gates;
      for (int64_t j = 0; j < gates; ++j) dir.bias[static_cast<size_t>(j)] = wb[j] + wb[gates + j];
    }
    // W [4 * hidden, input] is B's transpose.
    KILN_ASSIGN_OR_RETURN(dir.projection, CompileGemm(compiler, projection, w + d * gates * problem.input, true));
    KILN_ASSIGN_OR_RETURN(dir.packed_r, PackRecurrentWeight(r + d * gates * problem.hidden, problem.hidden, isa.lanes));
  }

  const std::string name = ModuleName(problem, compiler.NextSerial());
  KILN_ASSIGN_OR_RETURN(
      internal::RegionCode code, internal::EmitAndCompile(compiler, name, [&](llvm::Module& module) -> Status {
        RecurrenceEmitter(module, problem, isa.lanes, mr, compiler.cpu_name(), compiler.cpu_features()).EmitEntry(name);
        return Status::Ok();
      }));
  lstm->steps_code_ = std::move(code.code);
  lstm->steps_entry_ = reinterpret_cast<void (*)(const int64_t*)>(lstm->steps_code_->entry_address());
  lstm->reused_code_ = code.reused;
  lstm->from_disk_cache_ = code.from_disk;
  lstm->compile_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return lstm;
}

StatusOr<std::string> EmitLstmAssembly(const LstmProblem& problem, const std::string& cpu, const std::string& features,
                                       const LstmTuning& tuning) {
  KILN_RETURN_IF_ERROR(ValidateProblem(problem));
  return internal::EmitAssemblyFor(cpu, features, [&](llvm::Module& module, const GemmIsa& isa) -> Status {
    KILN_RETURN_IF_ERROR(CheckIsa(isa));
    RecurrenceEmitter(module, problem, isa.lanes, RowsPerTile(isa, tuning), cpu, features).EmitEntry("kiln_lstm");
    return Status::Ok();
  });
}

}  // namespace kiln::jit
