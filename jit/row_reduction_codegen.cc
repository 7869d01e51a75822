#include "jit/row_reduction_codegen.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/DerivedTypes.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "graph/log.h"
#include "graph/partitioner.h"
#include "jit/region_ops.h"
#include "jit/row_region_plan.h"
#include "jit/vector_math.h"

namespace kiln::jit {
namespace {

using graph::Node;
using graph::NodeId;
using graph::RowOp;
using graph::RowReduction;
using graph::ValueId;
using internal::Kind;
using internal::OpEmitter;
using internal::Operand;
using internal::ReductionPlan;
using internal::RowInputPlan;
using internal::RowRegionPlan;

// Independent accumulators per reduction in an accumulation pass. Each is
// a vector of two registers (JitCompiler::f32_vector_lanes), so two sets
// give four independent add chains, enough to hide the add latency; more
// sets only make the unrolled loop body larger and slower to compile.
constexpr int kAccumulators = 2;
// Rows up to this many elements keep values that later passes read again
// in stack buffers (at most 16 KiB each, in L1) instead of recomputing them:
//  - Softmax keeps exp(x - max), computed for the sum, for the output pass
//    to scale, which then needs no second exp per element;
//  - every reduction whose data input the region computes (SiLU before a
//    LayerNorm, the residual Add before it, the scaled scores before a
//    Softmax) keeps that input from the first pass that computes it, so the
//    variance, sum and output passes load it instead of computing the
//    elementwise prefix again.
// Longer rows, and shape-generic code, recompute.
constexpr int64_t kMaxStashedRow = 4096;
// Stack the stashes of one row may take in all.
constexpr int64_t kMaxStashBytes = int64_t{64} << 10;

class RowEmitter {
 public:
  // With a `generic_layout` (GenericRowLayout of `plan`), rows and row
  // length come from the params argument (GenericEntryFn) instead of the
  // plan.
  RowEmitter(const graph::Graph& graph, const graph::Region& region, const RowRegionPlan& plan, llvm::Module& module,
             int lanes, std::optional<RowLayout> generic_layout = std::nullopt)
      : graph_(graph),
        region_(region),
        plan_(plan),
        generic_layout_(std::move(generic_layout)),
        module_(module),
        ctx_(module.getContext()),
        b_(ctx_),
        lanes_(lanes),
        ops_(graph, region, b_, lanes) {
    i64_ = llvm::Type::getInt64Ty(ctx_);
    reduction_values_.resize(plan.reductions.size());
  }

  Status Emit(const std::string& name, const std::string& cpu, const std::string& features);

 private:
  // The per-row results of a reduction's accumulations (vectors with the
  // value in every lane), filled in as passes finish, and its row buffer.
  struct ReductionValues {
    llvm::Value* first = nullptr;   // Sum/Mean/Max: the result; Softmax: max; LayerNorm: mean
    llvm::Value* second = nullptr;  // Softmax: 1/sum; LogSoftmax: max + log(sum); LayerNorm: 1/stddev
    llvm::Value* stash = nullptr;   // Softmax: the row's exp(x - max) (kMaxStashedRow), or null
  };

  // One accumulation of a pass.
  struct Accumulation {
    int reduction;  // index into plan_.reductions
    int which;      // 0: first, 1: second
    bool is_max;
  };

  bool generic() const { return generic_layout_.has_value(); }
  llvm::Value* I64(int64_t v) const { return llvm::ConstantInt::get(i64_, v); }
  llvm::BasicBlock* NewBlock(const std::string& name) {
    return llvm::BasicBlock::Create(ctx_, name, b_.GetInsertBlock()->getParent());
  }
  // Starts a fresh block whose per-row computations go before its end:
  // per-row values are computed once per row, ahead of the vector loop that
  // needs them, and dominate every later pass.
  void StartRowSection(const std::string& name);
  // In the entry block: a row buffer (value_stash_) for each reduction's
  // computed data input, within kMaxStashedRow and kMaxStashBytes.
  void AllocateInputStashes();

  // The value of `v` for the current vector block (col_, mask_).
  StatusOr<Operand> Eval(ValueId v);
  // The value of per-row `v`, computed at the end of the current row
  // section (a splat in every lane).
  StatusOr<Operand> EvalPerRow(ValueId v);
  StatusOr<Operand> EvalNode(const Node& node, bool per_row);

  // The value an accumulation folds in, for the current vector block.
  StatusOr<llvm::Value*> AccumulationInput(const Accumulation& a);
  llvm::Value* Combine(bool is_max, llvm::Value* acc, llvm::Value* v);
  llvm::Value* Horizontal(bool is_max, llvm::Value* v);
  void Finalize(const Accumulation& a, llvm::Value* total);

  // for (col = begin; col < end; col += unroll * lanes) over whole vectors,
  // skipped when begin >= end; sets[u] accumulates the u-th vector of each
  // step and holds the totals afterwards.
  Status EmitVectorLoop(llvm::Value* begin, llvm::Value* end, int unroll, const std::vector<Accumulation>& accs,
                        std::vector<std::vector<llvm::Value*>>& sets, bool store_outputs);
  // One pass over the row: a vector loop and a masked tail. Accumulates
  // `accs` (horizontal totals are finalised into the reduction plans), or,
  // when `store_outputs`, stores the row-shaped outputs.
  Status EmitPass(const std::vector<Accumulation>& accs, bool store_outputs);
  // Folds one vector block into `acc_values` or stores the outputs.
  Status EmitBlock(const std::vector<Accumulation>& accs, std::vector<llvm::Value*>& acc_values, bool store_outputs);

  const graph::Graph& graph_;
  const graph::Region& region_;
  const RowRegionPlan& plan_;
  // Empty for a specialization.
  const std::optional<RowLayout> generic_layout_;
  llvm::Module& module_;
  llvm::LLVMContext& ctx_;
  llvm::IRBuilder<> b_;
  int lanes_;
  OpEmitter ops_;
  llvm::Type* i64_;
  // Parallel to plan_.reductions.
  std::vector<ReductionValues> reduction_values_;

  // The row length: a constant, or (generic) the params' value, as i64 and
  // as a float vector.
  llvm::Value* row_len_ = nullptr;
  llvm::Value* row_len_f_ = nullptr;
  // Per row.
  llvm::Value* row_ = nullptr;
  std::vector<llvm::Value*> input_ptr_;   // loaded inputs: the row's first element
  std::vector<llvm::Value*> output_ptr_;  // row-shaped: the row's first element; per-row: its element
  llvm::Instruction* section_end_ = nullptr;
  std::map<ValueId, Operand> row_env_;
  // Per vector block.
  llvm::Value* col_ = nullptr;
  llvm::Value* mask_ = nullptr;
  std::map<ValueId, Operand> block_env_;
  // Row buffers of computed reduction inputs (see kMaxStashedRow): filled by
  // the first pass that computes the value, read by the passes after it.
  std::map<ValueId, llvm::Value*> value_stash_;
  std::set<ValueId> stash_filling_;  // computed and stored by the current pass
  std::set<ValueId> stash_ready_;
};

void RowEmitter::AllocateInputStashes() {
  // Generic code recomputes: its rows may be of any length.
  if (generic() || plan_.row_len > kMaxStashedRow) return;
  const int64_t padded = (plan_.row_len + lanes_ - 1) / lanes_ * lanes_;
  int64_t bytes = 0;
  for (const ReductionValues& values : reduction_values_) bytes += values.stash != nullptr ? padded * 4 : 0;
  for (const ReductionPlan& red : plan_.reductions) {
    const ValueId x = graph_.node(red.node).inputs[0];
    // Region inputs are read again from memory as cheaply as from a stash.
    if (plan_.input_index[static_cast<size_t>(x)] >= 0 || plan_.per_row[static_cast<size_t>(x)]) continue;
    // Only worth a store per element if some later pass reads x again: the
    // second accumulation of a two-pass reduction, or another member.
    bool read_again = red.accumulations == 2;
    for (NodeId user : graph_.value(x).users) {
      read_again = read_again || (user != red.node &&
                                  std::find(region_.nodes.begin(), region_.nodes.end(), user) != region_.nodes.end());
    }
    if (!read_again) continue;
    StatusOr<Kind> kind = internal::KindOf(graph_.value(x).dtype);
    if (value_stash_.count(x) || !kind.ok() || *kind != Kind::kFloat) continue;
    if (bytes + padded * 4 > kMaxStashBytes) break;
    bytes += padded * 4;
    auto* stash = b_.CreateAlloca(b_.getFloatTy(), I64(padded), "input_stash");
    stash->setAlignment(llvm::Align(64));
    value_stash_[x] = stash;
  }
}

void RowEmitter::StartRowSection(const std::string& name) {
  llvm::BasicBlock* section = NewBlock(name);
  llvm::BasicBlock* body = NewBlock(name + "_body");
  b_.CreateBr(section);
  b_.SetInsertPoint(section);
  section_end_ = b_.CreateBr(body);
  b_.SetInsertPoint(body);
}

StatusOr<Operand> RowEmitter::EvalNode(const Node& node, bool per_row) {
  std::vector<std::optional<Operand>> in;
  for (ValueId v : node.inputs) {
    if (v == graph::kNoValue) {
      in.push_back(std::nullopt);
      continue;
    }
    StatusOr<Operand> op = per_row ? EvalPerRow(v) : Eval(v);
    if (!op.ok()) return op.status();
    in.push_back(*op);
  }
  KILN_ASSIGN_OR_RETURN(Operand out, ops_.EmitNode(node, in));
  KILN_ASSIGN_OR_RETURN(Kind declared, internal::KindOf(graph_.value(node.outputs[0]).dtype));
  if (declared != out.kind) {
    return Unsupported("jit: ", node.Describe(), ": output dtype ", DTypeName(graph_.value(node.outputs[0]).dtype),
                       " does not match what the op computes");
  }
  out.immediate.reset();
  return out;
}

StatusOr<Operand> RowEmitter::EvalPerRow(ValueId v) {
  auto found = row_env_.find(v);
  if (found != row_env_.end()) return found->second;
  llvm::IRBuilderBase::InsertPointGuard guard(b_);
  b_.SetInsertPoint(section_end_);
  Operand result;
  const int input = plan_.input_index[static_cast<size_t>(v)];
  if (input >= 0) {
    const RowInputPlan& p = plan_.inputs[static_cast<size_t>(input)];
    if (p.unused) return Internal("jit: reads the axes input '", graph_.value(v).name, "' as data");
    if (p.spec.baked) {
      result = ops_.Immediate(p.spec);
    } else {
      if (!p.per_row) return Internal("jit: '", graph_.value(v).name, "' read per row but covers the row");
      result = Operand{ops_.LoadSplat(p.spec.kind, input_ptr_[static_cast<size_t>(input)]), p.spec.kind, std::nullopt};
    }
  } else {
    const NodeId producer = graph_.value(v).producer;
    const int r = plan_.reduction_of[static_cast<size_t>(producer)];
    if (r >= 0) {
      const ReductionPlan& red = plan_.reductions[static_cast<size_t>(r)];
      const ReductionValues& values = reduction_values_[static_cast<size_t>(r)];
      const bool per_row_result = red.op.op == RowOp::kSum || red.op.op == RowOp::kMean || red.op.op == RowOp::kMax;
      if (!per_row_result || values.first == nullptr) {
        return Internal("jit: '", graph_.value(v).name, "' is used before the pass that computes it");
      }
      result = Operand{values.first, Kind::kFloat, std::nullopt};
    } else {
      KILN_ASSIGN_OR_RETURN(result, EvalNode(graph_.node(producer), /*per_row=*/true));
    }
  }
  row_env_[v] = result;
  return result;
}

StatusOr<Operand> RowEmitter::Eval(ValueId v) {
  if (plan_.per_row[static_cast<size_t>(v)]) return EvalPerRow(v);
  auto found = block_env_.find(v);
  if (found != block_env_.end()) return found->second;
  Operand result;
  const int input = plan_.input_index[static_cast<size_t>(v)];
  auto stash = value_stash_.find(v);
  if (stash != value_stash_.end() && stash_ready_.count(v)) {
    llvm::Value* ptr = b_.CreateInBoundsGEP(b_.getFloatTy(), stash->second, col_);
    result = Operand{ops_.LoadVector(Kind::kFloat, ptr, mask_), Kind::kFloat, std::nullopt};
  } else if (input >= 0) {
    const RowInputPlan& p = plan_.inputs[static_cast<size_t>(input)];
    llvm::Value* ptr = b_.CreateInBoundsGEP(ops_.MemElemTy(p.spec.kind), input_ptr_[static_cast<size_t>(input)], col_);
    result = Operand{ops_.LoadVector(p.spec.kind, ptr, mask_), p.spec.kind, std::nullopt};
  } else {
    const NodeId producer = graph_.value(v).producer;
    const Node& node = graph_.node(producer);
    const int r = plan_.reduction_of[static_cast<size_t>(producer)];
    if (r < 0) {
      KILN_ASSIGN_OR_RETURN(result, EvalNode(node, /*per_row=*/false));
    } else {
      const ReductionPlan& red = plan_.reductions[static_cast<size_t>(r)];
      const ReductionValues& values = reduction_values_[static_cast<size_t>(r)];
      if (values.first == nullptr || (red.accumulations == 2 && values.second == nullptr)) {
        return Internal("jit: '", graph_.value(v).name, "' is used before the pass that computes it");
      }
      llvm::Value* out = nullptr;
      switch (red.op.op) {
        case RowOp::kSum:
        case RowOp::kMean:
        case RowOp::kMax:
          // A row of one element: the result is row-shaped too.
          out = values.first;
          break;
        case RowOp::kSoftmax: {
          llvm::Value* e = nullptr;
          if (values.stash != nullptr) {
            e = ops_.LoadVector(Kind::kFloat, b_.CreateInBoundsGEP(b_.getFloatTy(), values.stash, col_), mask_);
          } else {
            KILN_ASSIGN_OR_RETURN(Operand x, Eval(node.inputs[0]));
            e = EmitExp(b_, b_.CreateFSub(x.v, values.first));
          }
          out = b_.CreateFMul(e, values.second);
          break;
        }
        case RowOp::kLogSoftmax: {
          KILN_ASSIGN_OR_RETURN(Operand x, Eval(node.inputs[0]));
          out = b_.CreateFSub(x.v, values.second);
          break;
        }
        case RowOp::kLayerNorm: {
          KILN_ASSIGN_OR_RETURN(Operand x, Eval(node.inputs[0]));
          KILN_ASSIGN_OR_RETURN(Operand scale, Eval(node.inputs[1]));
          out = b_.CreateFMul(b_.CreateFMul(b_.CreateFSub(x.v, values.first), values.second), scale.v);
          if (node.inputs.size() > 2 && node.inputs[2] != graph::kNoValue) {
            KILN_ASSIGN_OR_RETURN(Operand bias, Eval(node.inputs[2]));
            out = b_.CreateFAdd(out, bias.v);
          }
          break;
        }
      }
      result = Operand{out, Kind::kFloat, std::nullopt};
    }
    if (stash != value_stash_.end()) {
      ops_.StoreVector(Kind::kFloat, result.v, b_.CreateInBoundsGEP(b_.getFloatTy(), stash->second, col_), mask_);
      stash_filling_.insert(v);
    }
  }
  block_env_[v] = result;
  return result;
}

StatusOr<llvm::Value*> RowEmitter::AccumulationInput(const Accumulation& a) {
  const ReductionPlan& red = plan_.reductions[static_cast<size_t>(a.reduction)];
  const ReductionValues& values = reduction_values_[static_cast<size_t>(a.reduction)];
  const Node& node = graph_.node(red.node);
  KILN_ASSIGN_OR_RETURN(Operand x, Eval(node.inputs[0]));
  if (x.kind != Kind::kFloat) return Unsupported("jit: ", node.Describe(), ": bool input");
  if (a.which == 0) return x.v;
  if (red.op.op == RowOp::kLayerNorm) {
    llvm::Value* d = b_.CreateFSub(x.v, values.first);
    return b_.CreateFMul(d, d);
  }
  llvm::Value* e = EmitExp(b_, b_.CreateFSub(x.v, values.first));  // Softmax, LogSoftmax
  if (values.stash != nullptr) {
    ops_.StoreVector(Kind::kFloat, e, b_.CreateInBoundsGEP(b_.getFloatTy(), values.stash, col_), mask_);
  }
  return e;
}

llvm::Value* RowEmitter::Combine(bool is_max, llvm::Value* acc, llvm::Value* v) {
  if (!is_max) return b_.CreateFAdd(acc, v);
  // NaN anywhere gives NaN, like the interpreter's reductions.
  llvm::Value* r = b_.CreateSelect(b_.CreateFCmpOGT(v, acc), v, acc);
  return b_.CreateSelect(b_.CreateFCmpUNO(v, v), v, r);
}

llvm::Value* RowEmitter::Horizontal(bool is_max, llvm::Value* v) {
  // A tree of halving shuffles: log2(lanes) steps, pairwise sums.
  for (int width = lanes_ / 2; width >= 1; width /= 2) {
    std::vector<int> upper(static_cast<size_t>(lanes_));
    for (int l = 0; l < lanes_; ++l) upper[static_cast<size_t>(l)] = l + width < lanes_ ? l + width : l;
    v = Combine(is_max, v, b_.CreateShuffleVector(v, upper));
  }
  // Lane 0 holds the total; splat it.
  return b_.CreateShuffleVector(v, std::vector<int>(static_cast<size_t>(lanes_), 0));
}

void RowEmitter::Finalize(const Accumulation& a, llvm::Value* total) {
  const ReductionPlan& red = plan_.reductions[static_cast<size_t>(a.reduction)];
  ReductionValues& values = reduction_values_[static_cast<size_t>(a.reduction)];
  llvm::Value* n = row_len_f_;
  switch (red.op.op) {
    case RowOp::kSum:
    case RowOp::kMax: values.first = total; return;
    case RowOp::kMean: values.first = b_.CreateFDiv(total, n); return;
    case RowOp::kSoftmax:
      if (a.which == 0) {
        values.first = total;
      } else {
        values.second = b_.CreateFDiv(ops_.FConst(1.0), total);
      }
      return;
    case RowOp::kLogSoftmax:
      if (a.which == 0) {
        values.first = total;
      } else {
        values.second = b_.CreateFAdd(values.first, EmitLog(b_, total));
      }
      return;
    case RowOp::kLayerNorm:
      if (a.which == 0) {
        values.first = b_.CreateFDiv(total, n);
      } else {
        llvm::Value* var = b_.CreateFDiv(total, n);
        llvm::Value* sd =
            b_.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, b_.CreateFAdd(var, ops_.FConst(red.op.epsilon)));
        values.second = b_.CreateFDiv(ops_.FConst(1.0), sd);
      }
      return;
  }
}

Status RowEmitter::EmitBlock(const std::vector<Accumulation>& accs, std::vector<llvm::Value*>& acc_values,
                             bool store_outputs) {
  block_env_.clear();
  for (size_t k = 0; k < accs.size(); ++k) {
    KILN_ASSIGN_OR_RETURN(llvm::Value * v, AccumulationInput(accs[k]));
    if (mask_ != nullptr) {
      // Dead lanes read 0 and may compute anything: they fold in the identity.
      const double identity = accs[k].is_max ? -std::numeric_limits<double>::infinity() : 0.0;
      v = b_.CreateSelect(mask_, v, ops_.FConst(identity));
    }
    acc_values[k] = Combine(accs[k].is_max, acc_values[k], v);
  }
  if (store_outputs) {
    for (size_t o = 0; o < region_.outputs.size(); ++o) {
      if (plan_.output_per_row[o]) continue;
      KILN_ASSIGN_OR_RETURN(Operand v, Eval(region_.outputs[o]));
      const Kind kind = plan_.output_kinds[o];
      llvm::Value* ptr = b_.CreateInBoundsGEP(ops_.MemElemTy(kind), output_ptr_[o], col_);
      ops_.StoreVector(kind, v.v, ptr, mask_);
    }
  }
  return Status::Ok();
}

Status RowEmitter::EmitVectorLoop(llvm::Value* begin, llvm::Value* end, int unroll,
                                  const std::vector<Accumulation>& accs, std::vector<std::vector<llvm::Value*>>& sets,
                                  bool store_outputs) {
  llvm::BasicBlock* pre = b_.GetInsertBlock();
  llvm::BasicBlock* body = NewBlock("vec_body");
  llvm::BasicBlock* done = NewBlock("vec_done");
  // Constant bounds fold this check away.
  b_.CreateCondBr(b_.CreateICmpSLT(begin, end), body, done);
  b_.SetInsertPoint(body);
  llvm::PHINode* col = b_.CreatePHI(i64_, 2, "col");
  col->addIncoming(begin, pre);
  std::vector<std::vector<llvm::Value*>> initial = sets;
  std::vector<llvm::PHINode*> phis;
  for (int u = 0; u < unroll; ++u) {
    for (llvm::Value*& v : sets[static_cast<size_t>(u)]) {
      phis.push_back(b_.CreatePHI(v->getType(), 2, "acc"));
      phis.back()->addIncoming(v, pre);
      v = phis.back();
    }
  }
  mask_ = nullptr;
  for (int u = 0; u < unroll; ++u) {
    col_ = u == 0 ? static_cast<llvm::Value*>(col) : b_.CreateAdd(col, I64(int64_t{u} * lanes_), "", true, true);
    KILN_RETURN_IF_ERROR(EmitBlock(accs, sets[static_cast<size_t>(u)], store_outputs));
  }
  llvm::Value* next = b_.CreateAdd(col, I64(int64_t{unroll} * lanes_), "col_next", true, true);
  llvm::BasicBlock* latch = b_.GetInsertBlock();
  col->addIncoming(next, latch);
  size_t p = 0;
  for (int u = 0; u < unroll; ++u) {
    for (llvm::Value* v : sets[static_cast<size_t>(u)]) phis[p++]->addIncoming(v, latch);
  }
  b_.CreateCondBr(b_.CreateICmpSLT(next, end), body, done);
  b_.SetInsertPoint(done);
  for (int u = 0; u < unroll; ++u) {
    std::vector<llvm::Value*>& set = sets[static_cast<size_t>(u)];
    for (size_t k = 0; k < set.size(); ++k) {
      llvm::PHINode* merged = b_.CreatePHI(set[k]->getType(), 2, "acc_out");
      merged->addIncoming(initial[static_cast<size_t>(u)][k], pre);
      merged->addIncoming(set[k], latch);
      set[k] = merged;
    }
  }
  return Status::Ok();
}

Status RowEmitter::EmitPass(const std::vector<Accumulation>& accs, bool store_outputs) {
  // Accumulation passes keep kAccumulators independent sets of accumulators
  // (an unrolled loop), so consecutive vectors do not wait on each other's
  // adds; the output pass has no loop-carried value and is not unrolled.
  const int unroll = accs.empty() ? 1 : kAccumulators;
  std::vector<std::vector<llvm::Value*>> acc_values(static_cast<size_t>(unroll));
  for (std::vector<llvm::Value*>& set : acc_values) {
    for (const Accumulation& a : accs) {
      set.push_back(ops_.FConst(a.is_max ? -std::numeric_limits<double>::infinity() : 0.0));
    }
  }
  const int64_t step = int64_t{unroll} * lanes_;
  if (generic()) {
    // The unrolled loop, then single vectors, then a masked tail that may
    // be empty (an all-false mask reads and writes nothing).
    llvm::Value* loop_end = b_.CreateMul(b_.CreateUDiv(row_len_, I64(step)), I64(step), "loop_end");
    llvm::Value* full_end = b_.CreateMul(b_.CreateUDiv(row_len_, I64(lanes_)), I64(lanes_), "full_end");
    KILN_RETURN_IF_ERROR(EmitVectorLoop(I64(0), loop_end, unroll, accs, acc_values, store_outputs));
    std::vector<std::vector<llvm::Value*>> singles = {acc_values[0]};
    KILN_RETURN_IF_ERROR(EmitVectorLoop(loop_end, full_end, 1, accs, singles, store_outputs));
    acc_values[0] = singles[0];
    std::vector<llvm::Constant*> lane_index;
    for (int l = 0; l < lanes_; ++l) lane_index.push_back(llvm::ConstantInt::get(i64_, l));
    llvm::Value* remainder = b_.CreateSub(row_len_, full_end, "remainder");
    col_ = full_end;
    mask_ = b_.CreateICmpSLT(llvm::ConstantVector::get(lane_index), b_.CreateVectorSplat(lanes_, remainder), "tail");
    KILN_RETURN_IF_ERROR(EmitBlock(accs, acc_values[0], store_outputs));
  } else {
    const int64_t loop_end = plan_.row_len / step * step;
    const int64_t full_end = plan_.row_len / lanes_ * lanes_;
    const int64_t remainder = plan_.row_len - full_end;
    if (loop_end > 0) {
      KILN_RETURN_IF_ERROR(EmitVectorLoop(I64(0), I64(loop_end), unroll, accs, acc_values, store_outputs));
    }
    // Whole vectors the unrolled loop left (fewer than `unroll`), inline.
    for (int64_t c = loop_end; c < full_end; c += lanes_) {
      col_ = I64(c);
      mask_ = nullptr;
      KILN_RETURN_IF_ERROR(EmitBlock(accs, acc_values[0], store_outputs));
    }
    if (remainder > 0) {
      // The last partial vector with masked loads and stores: nothing is
      // read or written beyond the row.
      std::vector<llvm::Constant*> live;
      for (int l = 0; l < lanes_; ++l) live.push_back(b_.getInt1(l < remainder));
      col_ = I64(full_end);
      mask_ = llvm::ConstantVector::get(live);
      KILN_RETURN_IF_ERROR(EmitBlock(accs, acc_values[0], store_outputs));
    }
  }
  for (size_t k = 0; k < accs.size(); ++k) {
    // Pairwise across the sets, then across the lanes.
    std::vector<llvm::Value*> parts;
    for (const std::vector<llvm::Value*>& set : acc_values) parts.push_back(set[k]);
    while (parts.size() > 1) {
      std::vector<llvm::Value*> next;
      for (size_t i = 0; i + 1 < parts.size(); i += 2) next.push_back(Combine(accs[k].is_max, parts[i], parts[i + 1]));
      if (parts.size() % 2 == 1) next.push_back(parts.back());
      parts = std::move(next);
    }
    Finalize(accs[k], Horizontal(accs[k].is_max, parts[0]));
  }
  return Status::Ok();
}

Status RowEmitter::Emit(const std::string& name, const std::string& cpu, const std::string& features) {
  std::vector<bool> baked;
  for (const RowInputPlan& p : plan_.inputs) baked.push_back(p.spec.baked);
  row_len_ = I64(plan_.row_len);
  auto rows = [&](llvm::Value* params) -> llvm::Value* {
    if (!generic()) return I64(plan_.rows);
    // params = [rows, row_len] (PrepareGenericRowReductionCall).
    row_len_ = b_.CreateAlignedLoad(i64_, b_.CreateConstInBoundsGEP1_64(i64_, params, 1), llvm::Align(8), "row_len");
    return b_.CreateAlignedLoad(i64_, params, llvm::Align(8), "rows");
  };
  const internal::EntryPrologue prologue =
      internal::EmitEntryPrologue(module_, b_, name, generic(), cpu, features, baked, region_.outputs.size(), rows);
  llvm::Function* fn = prologue.fn;
  llvm::BasicBlock* entry = prologue.entry;
  llvm::Value* row_begin = prologue.row_begin;
  llvm::Value* row_end = prologue.row_end;
  const std::vector<llvm::Value*>& input_base = prologue.inputs;
  const std::vector<llvm::Value*>& output_base = prologue.outputs;
  row_len_f_ = generic() ? b_.CreateVectorSplat(lanes_, b_.CreateSIToFP(row_len_, b_.getFloatTy()), "row_len_f")
                         : ops_.FConst(static_cast<double>(plan_.row_len));

  llvm::BasicBlock* row_check = llvm::BasicBlock::Create(ctx_, "row_check", fn);
  llvm::BasicBlock* row_body = llvm::BasicBlock::Create(ctx_, "row_body", fn);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(ctx_, "exit", fn);
  for (size_t r = 0; r < plan_.reductions.size(); ++r) {
    // Generic code recomputes: its rows may be of any length.
    if (generic() || plan_.reductions[r].op.op != RowOp::kSoftmax || plan_.row_len > kMaxStashedRow) continue;
    // Rounded up to whole vectors: the masked tail never touches the rest.
    const int64_t padded = (plan_.row_len + lanes_ - 1) / lanes_ * lanes_;
    auto* stash = b_.CreateAlloca(b_.getFloatTy(), I64(padded), "softmax_exp");
    stash->setAlignment(llvm::Align(64));
    reduction_values_[r].stash = stash;
  }
  AllocateInputStashes();
  b_.CreateBr(row_check);

  // for (row = row_begin; row < row_end; ++row)
  b_.SetInsertPoint(row_check);
  llvm::PHINode* row = b_.CreatePHI(i64_, 2, "row");
  row->addIncoming(row_begin, entry);
  b_.CreateCondBr(b_.CreateICmpSLT(row, row_end), row_body, exit);
  row_ = row;

  // Per-row addresses; outer indices by division by constant extents
  // (strength-reduced), only for inputs that broadcast along some of them.
  b_.SetInsertPoint(row_body);
  std::vector<llvm::Value*> outer_index(static_cast<size_t>(plan_.axis), nullptr);
  bool need_index = false;
  // (Generic code reads inputs whole, per row or once: no outer index.)
  for (const RowInputPlan& p : plan_.inputs) need_index = need_index || (!generic() && !p.spec.baked && !p.outer_dense);
  if (need_index) {
    llvm::Value* rest = row;
    for (size_t d = static_cast<size_t>(plan_.axis); d-- > 0;) {
      llvm::Value* extent = I64(plan_.domain[d]);
      outer_index[d] = d == 0 ? rest : b_.CreateURem(rest, extent);
      if (d > 0) rest = b_.CreateUDiv(rest, extent);
    }
  }
  input_ptr_.assign(plan_.inputs.size(), nullptr);
  for (size_t i = 0; i < plan_.inputs.size(); ++i) {
    const RowInputPlan& p = plan_.inputs[i];
    if (p.spec.baked) continue;
    llvm::Value* per_row = p.per_row ? I64(1) : row_len_;
    llvm::Value* offset = I64(0);
    if (generic()) {
      const RowInputLayout layout = generic_layout_->inputs[i];
      if (layout == RowInputLayout::kDense || layout == RowInputLayout::kPerRow) offset = b_.CreateMul(row, per_row);
    } else if (p.outer_dense) {
      offset = b_.CreateMul(row, per_row);
    } else {
      for (size_t d = 0; d < p.outer_strides.size(); ++d) {
        if (p.outer_strides[d] == 0) continue;
        offset = b_.CreateAdd(offset, b_.CreateMul(outer_index[d], I64(p.outer_strides[d])));
      }
    }
    input_ptr_[i] = b_.CreateInBoundsGEP(ops_.MemElemTy(p.spec.kind), input_base[i], offset);
  }
  output_ptr_.clear();
  for (size_t k = 0; k < output_base.size(); ++k) {
    llvm::Value* offset = plan_.output_per_row[k] ? static_cast<llvm::Value*>(row) : b_.CreateMul(row, row_len_);
    output_ptr_.push_back(b_.CreateInBoundsGEP(ops_.MemElemTy(plan_.output_kinds[k]), output_base[k], offset));
  }

  // Accumulation passes, in stage order; then the output pass.
  for (int pass = 0; pass < plan_.num_passes; ++pass) {
    std::vector<Accumulation> accs;
    for (size_t r = 0; r < plan_.reductions.size(); ++r) {
      const ReductionPlan& red = plan_.reductions[r];
      const int which = pass - red.stage;
      if (which < 0 || which >= red.accumulations) continue;
      const bool is_max =
          which == 0 && (red.op.op == RowOp::kMax || red.op.op == RowOp::kSoftmax || red.op.op == RowOp::kLogSoftmax);
      accs.push_back({static_cast<int>(r), which, is_max});
    }
    StartRowSection("pass" + std::to_string(pass));
    KILN_RETURN_IF_ERROR(EmitPass(accs, /*store_outputs=*/false));
    // Every block of the pass stored the values it computed: the passes
    // after it read them back.
    stash_ready_.insert(stash_filling_.begin(), stash_filling_.end());
    stash_filling_.clear();
  }
  bool any_row_output = false;
  for (size_t o = 0; o < region_.outputs.size(); ++o) any_row_output = any_row_output || !plan_.output_per_row[o];
  if (any_row_output) {
    StartRowSection("output_pass");
    KILN_RETURN_IF_ERROR(EmitPass({}, /*store_outputs=*/true));
  }
  StartRowSection("row_outputs");
  for (size_t o = 0; o < region_.outputs.size(); ++o) {
    if (!plan_.output_per_row[o]) continue;
    KILN_ASSIGN_OR_RETURN(Operand v, EvalPerRow(region_.outputs[o]));
    llvm::Value* scalar = b_.CreateExtractElement(v.v, uint64_t{0});
    if (plan_.output_kinds[o] == Kind::kBool) scalar = b_.CreateZExt(scalar, b_.getInt8Ty());
    b_.CreateAlignedStore(scalar, output_ptr_[o], llvm::Align(1));
  }
  llvm::Value* row_next = b_.CreateAdd(row, I64(1), "row_next", true, true);
  row->addIncoming(row_next, b_.GetInsertBlock());
  b_.CreateBr(row_check);

  b_.SetInsertPoint(exit);
  b_.CreateRetVoid();
  return Status::Ok();
}

// Compiles `plan` as a specialization (no `generic_layout`) or as
// shape-generic code for that layout.
StatusOr<std::unique_ptr<CompiledRegion>> CompilePlan(JitCompiler& compiler, const graph::Graph& graph,
                                                      const graph::Region& region, const RowRegionPlan& plan,
                                                      const std::optional<RowLayout>& generic_layout,
                                                      std::chrono::steady_clock::time_point start) {
  const bool generic = generic_layout.has_value();
  const std::string name =
      "kiln_rowred" + std::to_string(region.id) + (generic ? "_generic_" : "_") + std::to_string(compiler.NextSerial());
  KILN_ASSIGN_OR_RETURN(internal::RegionCode code, internal::EmitAndCompile(compiler, name, [&](llvm::Module& module) {
                          RowEmitter emitter(graph, region, plan, module, compiler.f32_vector_lanes(), generic_layout);
                          return emitter.Emit(name, compiler.cpu_name(), compiler.cpu_features());
                        }));

  CompiledRegion::Info info;
  info.name = code.code->symbol();
  info.reused_code = code.reused;
  info.from_disk_cache = code.from_disk;
  info.generic = generic;
  info.generic_layout = generic_layout;
  if (!generic) {
    info.num_rows = plan.rows;
    info.row_len = plan.row_len;
    info.output_dims = plan.output_dims;
  }
  for (const RowInputPlan& p : plan.inputs) info.input_baked.push_back(p.spec.baked);
  info.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  auto compiled = std::make_unique<CompiledRegion>(std::move(code.code), std::move(info));
  Log().debug("jit: {} {} for region {} ({} nodes, {} {}, {} accumulation passes) in {:.2f} ms, {} code bytes",
              compiled->reused_code()       ? "reused"
              : compiled->from_disk_cache() ? "linked from cache"
                                            : "compiled",
              compiled->name(), region.id, region.nodes.size(), generic ? "generic, layout" : "domain",
              generic ? generic_layout->ToString() : DimsToString(plan.domain), plan.num_passes, compiled->compile_ms(),
              compiled->code_bytes());
  return compiled;
}

}  // namespace

StatusOr<std::unique_ptr<CompiledRegion>> CompileRowReductionRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                                    const graph::Region& region,
                                                                    const std::vector<Dims>& input_dims) {
  const auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(RowRegionPlan plan, internal::PlanRowRegion(graph, region, input_dims));
  return CompilePlan(compiler, graph, region, plan, /*generic_layout=*/std::nullopt, start);
}

StatusOr<std::unique_ptr<CompiledRegion>> CompileRowReductionRegionGeneric(JitCompiler& compiler,
                                                                           const graph::Graph& graph,
                                                                           const graph::Region& region,
                                                                           const std::vector<Dims>& input_dims) {
  const auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(RowRegionPlan plan, internal::PlanRowRegion(graph, region, input_dims));
  KILN_ASSIGN_OR_RETURN(RowLayout layout, internal::GenericRowLayout(plan));
  if (layout.IsAmbiguous()) {
    return Unsupported("jit: shape-generic row code cannot be planned on a single row ", DimsToString(plan.domain),
                       ": it does not show which inputs are read per row and which are shared");
  }
  return CompilePlan(compiler, graph, region, plan, layout, start);
}

Status PrepareGenericRowReductionCall(const CompiledRegion& code, const graph::Graph& graph,
                                      const graph::Region& region, const std::vector<Dims>& input_dims,
                                      std::vector<int64_t>& params, std::vector<Dims>& output_dims) {
  if (!code.is_generic() || !code.generic_layout()) {
    return InvalidArgument("jit: ", code.name(), " is not shape-generic row-reduction code");
  }
  KILN_ASSIGN_OR_RETURN(RowRegionPlan plan, internal::PlanRowRegion(graph, region, input_dims));
  KILN_ASSIGN_OR_RETURN(RowLayout layout, internal::GenericRowLayout(plan));
  if (!code.generic_layout()->Serves(layout)) {
    return Unsupported("jit: these shapes lay the region out as ", layout.ToString(), ", the generic code reads ",
                       code.generic_layout()->ToString());
  }
  params.assign({plan.rows, plan.row_len});
  output_dims = std::move(plan.output_dims);
  return Status::Ok();
}

}  // namespace kiln::jit
