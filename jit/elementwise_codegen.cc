#include "jit/elementwise_codegen.h"

#include <llvm/ExecutionEngine/Orc/Core.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/DerivedTypes.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "graph/log.h"
#include "jit/vector_math.h"

namespace kiln::jit {
namespace {

using graph::Node;
using graph::ValueId;

// The two element kinds that flow through a region: float32 data and
// bool masks (i1 in registers, one byte in memory).
enum class Kind { kFloat, kBool };

StatusOr<Kind> KindOf(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return Kind::kFloat;
    case DType::kBool: return Kind::kBool;
    default: return Unsupported("jit: elementwise regions support float32 and bool, not ", DTypeName(dtype));
  }
}

// numpy / ONNX multidirectional broadcasting.
StatusOr<Dims> Broadcast(const Dims& a, const Dims& b) {
  const size_t rank = std::max(a.size(), b.size());
  Dims out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t x = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t y = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (x != y && x != 1 && y != 1) {
      return InvalidArgument("jit: dims ", DimsToString(a), " and ", DimsToString(b), " do not broadcast");
    }
    out[i] = x == 1 ? y : x;
  }
  return out;
}

// How one region input is read.
struct InputPlan {
  Kind kind = Kind::kFloat;
  bool baked = false;                   // an immediate; inputs[i] is not read
  double immediate = 0;                 // its value (bool as 0/1)
  bool inner_broadcast = false;         // one element per row, splatted
  bool contiguous = false;              // offset = row * row_len
  std::vector<int64_t> outer_strides;  // elements per step of each outer dim
};

// Rows longer than this are split (when their length has a divisor in
// [kMinSplitRowLen, kMaxRowLen]) so that callers get rows to parallelise.
constexpr int64_t kMaxRowLen = 4096;
constexpr int64_t kMinSplitRowLen = 256;

// The domain viewed as [outer dims..., row_len]: dims of size 1 dropped,
// neighbouring dims merged when every input broadcasts both or neither
// (then they address memory like one dim), the last merged dim is the row.
struct LoopNest {
  Dims domain;
  std::vector<int64_t> outer_extents;
  int64_t row_len = 1;
  int64_t num_rows = 1;
};

Status PlanLoops(const std::vector<Dims>& input_dims, LoopNest& nest, std::vector<InputPlan>& plans) {
  Dims domain;
  for (const Dims& dims : input_dims) {
    for (int64_t d : dims) {
      if (d < 0) return InvalidArgument("jit: negative dim in ", DimsToString(dims));
    }
    KILN_ASSIGN_OR_RETURN(domain, Broadcast(domain, dims));
  }
  KILN_RETURN_IF_ERROR(CheckedNumElements(domain, DType::kFloat32).status());
  nest.domain = domain;
  for (int64_t d : domain) {
    if (d == 0) {  // empty: the entry has nothing to do
      nest.num_rows = 0;
      nest.row_len = 0;
      return Status::Ok();
    }
  }

  struct Group {
    int64_t extent;
    std::vector<bool> broadcast;   // per input
    std::vector<int64_t> stride;   // per input, elements (0 when broadcast)
  };
  std::vector<Group> groups;
  const size_t rank = domain.size();
  const size_t n = input_dims.size();
  // Row-major strides of each input, aligned to the domain's rank.
  std::vector<std::vector<int64_t>> strides(n, std::vector<int64_t>(rank, 0));
  std::vector<std::vector<int64_t>> padded(n, std::vector<int64_t>(rank, 1));
  for (size_t i = 0; i < n; ++i) {
    const Dims& dims = input_dims[i];
    for (size_t k = 0; k < dims.size(); ++k) padded[i][rank - dims.size() + k] = dims[k];
    int64_t s = 1;
    for (size_t k = rank; k-- > 0;) {
      strides[i][k] = s;
      s *= padded[i][k];
    }
  }
  for (size_t d = 0; d < rank; ++d) {
    if (domain[d] == 1) continue;
    Group g{domain[d], std::vector<bool>(n), std::vector<int64_t>(n)};
    for (size_t i = 0; i < n; ++i) {
      g.broadcast[i] = padded[i][d] == 1;
      g.stride[i] = g.broadcast[i] ? 0 : strides[i][d];
    }
    if (!groups.empty() && groups.back().broadcast == g.broadcast) {
      // The inner dim's strides address the merged dim.
      groups.back().extent *= g.extent;
      groups.back().stride = g.stride;
    } else {
      groups.push_back(std::move(g));
    }
  }

  // A very long row (a large tensor whose dims all collapse) would leave
  // too few rows for the caller to split across threads: cut it into a
  // divisor that is still long for the vector loop, preferring a multiple
  // of 16 lanes so no row needs a masked tail. Exact because every
  // non-broadcast input is contiguous along the row.
  if (!groups.empty() && groups.back().extent > kMaxRowLen) {
    const int64_t extent = groups.back().extent;
    int64_t chosen = 0;
    for (int64_t step : {int64_t{16}, int64_t{1}}) {
      for (int64_t d = kMaxRowLen / step * step; d >= kMinSplitRowLen && chosen == 0; d -= step) {
        if (extent % d == 0) chosen = d;
      }
      if (chosen != 0) break;
    }
    if (chosen != 0) {
      Group inner = groups.back();
      Group outer = inner;
      outer.extent = extent / chosen;
      for (size_t i = 0; i < n; ++i) outer.stride[i] = inner.broadcast[i] ? 0 : chosen;
      inner.extent = chosen;
      groups.back() = outer;
      groups.push_back(inner);
    }
  }

  plans.assign(n, InputPlan{});
  if (groups.empty()) {  // a single element
    nest.row_len = 1;
    nest.num_rows = 1;
    for (InputPlan& p : plans) p.contiguous = true;
    return Status::Ok();
  }
  const Group& inner = groups.back();
  nest.row_len = inner.extent;
  nest.num_rows = 1;
  for (size_t k = 0; k + 1 < groups.size(); ++k) {
    nest.outer_extents.push_back(groups[k].extent);
    nest.num_rows *= groups[k].extent;
  }
  for (size_t i = 0; i < n; ++i) {
    InputPlan& p = plans[i];
    p.inner_broadcast = inner.broadcast[i];
    assert((p.inner_broadcast || inner.stride[i] == 1) && "a non-broadcast inner dim is contiguous");
    p.contiguous = true;
    for (size_t k = 0; k + 1 < groups.size(); ++k) {
      p.outer_strides.push_back(groups[k].stride[i]);
      if (groups[k].broadcast[i]) p.contiguous = false;
    }
    if (p.inner_broadcast) p.contiguous = false;
  }
  return Status::Ok();
}

// A value in registers with its kind and, for immediates, its value (Pow
// specialises on constant exponents).
struct Operand {
  llvm::Value* v = nullptr;
  Kind kind = Kind::kFloat;
  std::optional<double> immediate;
};

class RegionEmitter {
 public:
  RegionEmitter(const graph::Graph& graph, const graph::Region& region, llvm::Module& module, int lanes)
      : graph_(graph), region_(region), module_(module), ctx_(module.getContext()), b_(ctx_), lanes_(lanes) {
    f32_ = llvm::Type::getFloatTy(ctx_);
    i8_ = llvm::Type::getInt8Ty(ctx_);
    i1_ = llvm::Type::getInt1Ty(ctx_);
    i64_ = llvm::Type::getInt64Ty(ctx_);
    ptr_ = llvm::PointerType::get(ctx_, 0);
  }

  Status Emit(const std::string& name, const LoopNest& nest, const std::vector<InputPlan>& plans,
              const std::string& cpu, const std::string& features);

 private:
  llvm::Type* VecTy(Kind kind) const {
    return llvm::FixedVectorType::get(kind == Kind::kFloat ? f32_ : i1_, static_cast<unsigned>(lanes_));
  }
  llvm::Type* MemElemTy(Kind kind) const { return kind == Kind::kFloat ? f32_ : i8_; }

  // Loads, computes and stores one vector of the row starting at column
  // `col`; `mask` selects the live lanes of a partial vector (null: all).
  Status EmitBlock(llvm::Value* col, llvm::Value* mask);
  StatusOr<Operand> EmitNode(const Node& node, const std::vector<std::optional<Operand>>& in);

  llvm::Value* FConst(double v) { return llvm::ConstantFP::get(VecTy(Kind::kFloat), v); }
  llvm::Value* Intr(llvm::Intrinsic::ID id, llvm::Value* x) { return b_.CreateIntrinsic(id, {x->getType()}, {x}); }
  llvm::Value* Clamp01(llvm::Value* x) {
    x = b_.CreateSelect(b_.CreateFCmpOLT(x, FConst(0.0)), FConst(0.0), x);
    return b_.CreateSelect(b_.CreateFCmpOGT(x, FConst(1.0)), FConst(1.0), x);
  }

  const graph::Graph& graph_;
  const graph::Region& region_;
  llvm::Module& module_;
  llvm::LLVMContext& ctx_;
  llvm::IRBuilder<> b_;
  int lanes_;
  llvm::Type* f32_;
  llvm::Type* i8_;
  llvm::Type* i1_;
  llvm::Type* i64_;
  llvm::PointerType* ptr_;

  // Per-row state used by EmitBlock.
  const std::vector<InputPlan>* plans_ = nullptr;
  std::vector<llvm::Value*> input_row_ptr_;     // element pointer at the row start (loaded inputs)
  std::vector<llvm::Value*> input_row_splat_;   // per-row value for inner-broadcast inputs
  std::vector<llvm::Value*> output_row_ptr_;
  std::vector<Kind> output_kinds_;
};

Status RegionEmitter::Emit(const std::string& name, const LoopNest& nest, const std::vector<InputPlan>& plans,
                           const std::string& cpu, const std::string& features) {
  plans_ = &plans;
  auto* fn_type = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr_, ptr_, i64_, i64_}, false);
  llvm::Function* fn = llvm::Function::Create(fn_type, llvm::Function::ExternalLinkage, name, module_);
  fn->addFnAttr(llvm::Attribute::NoUnwind);
  fn->addFnAttr("target-cpu", cpu);
  fn->addFnAttr("target-features", features);
  llvm::Argument* inputs_arg = fn->getArg(0);
  llvm::Argument* outputs_arg = fn->getArg(1);
  inputs_arg->setName("inputs");
  outputs_arg->setName("outputs");
  fn->getArg(2)->setName("row_begin");
  fn->getArg(3)->setName("row_end");
  for (unsigned a = 0; a < 2; ++a) {
    fn->addParamAttr(a, llvm::Attribute::NoCapture);
    fn->addParamAttr(a, llvm::Attribute::ReadOnly);
  }

  llvm::BasicBlock* entry = llvm::BasicBlock::Create(ctx_, "entry", fn);
  llvm::BasicBlock* row_check = llvm::BasicBlock::Create(ctx_, "row_check", fn);
  llvm::BasicBlock* row_body = llvm::BasicBlock::Create(ctx_, "row_body", fn);
  llvm::BasicBlock* row_latch = llvm::BasicBlock::Create(ctx_, "row_latch", fn);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(ctx_, "exit", fn);

  // entry: clamp the row range, fetch the buffer pointers.
  b_.SetInsertPoint(entry);
  llvm::Value* zero = llvm::ConstantInt::get(i64_, 0);
  llvm::Value* rows = llvm::ConstantInt::get(i64_, nest.num_rows);
  llvm::Value* row_begin = b_.CreateBinaryIntrinsic(llvm::Intrinsic::smax, fn->getArg(2), zero);
  llvm::Value* row_end = b_.CreateBinaryIntrinsic(llvm::Intrinsic::smin, fn->getArg(3), rows);
  std::vector<llvm::Value*> input_base(plans.size(), nullptr);
  for (size_t i = 0; i < plans.size(); ++i) {
    if (plans[i].baked) continue;
    llvm::Value* slot = b_.CreateConstInBoundsGEP1_64(ptr_, inputs_arg, i);
    input_base[i] = b_.CreateAlignedLoad(ptr_, slot, llvm::Align(8), "in" + std::to_string(i));
  }
  std::vector<llvm::Value*> output_base;
  output_kinds_.clear();
  for (size_t k = 0; k < region_.outputs.size(); ++k) {
    KILN_ASSIGN_OR_RETURN(Kind kind, KindOf(graph_.value(region_.outputs[k]).dtype));
    output_kinds_.push_back(kind);
    llvm::Value* slot = b_.CreateConstInBoundsGEP1_64(ptr_, outputs_arg, k);
    output_base.push_back(b_.CreateAlignedLoad(ptr_, slot, llvm::Align(8), "out" + std::to_string(k)));
  }
  b_.CreateBr(row_check);

  // row_check: for (row = row_begin; row < row_end; ++row)
  b_.SetInsertPoint(row_check);
  llvm::PHINode* row = b_.CreatePHI(i64_, 2, "row");
  row->addIncoming(row_begin, entry);
  b_.CreateCondBr(b_.CreateICmpSLT(row, row_end), row_body, exit);

  // row_body: per-row addresses. Outer indices come from the row number by
  // division by constant extents (strength-reduced by LLVM); the cost is
  // paid once per row.
  b_.SetInsertPoint(row_body);
  std::vector<llvm::Value*> outer_index(nest.outer_extents.size());
  {
    llvm::Value* rest = row;
    for (size_t d = nest.outer_extents.size(); d-- > 0;) {
      if (d == 0) {
        outer_index[d] = rest;
        break;
      }
      llvm::Value* extent = llvm::ConstantInt::get(i64_, nest.outer_extents[d]);
      outer_index[d] = b_.CreateURem(rest, extent);
      rest = b_.CreateUDiv(rest, extent);
    }
  }
  llvm::Value* row_start = b_.CreateMul(row, llvm::ConstantInt::get(i64_, nest.row_len), "row_start");
  input_row_ptr_.assign(plans.size(), nullptr);
  input_row_splat_.assign(plans.size(), nullptr);
  for (size_t i = 0; i < plans.size(); ++i) {
    const InputPlan& p = plans[i];
    if (p.baked) continue;
    llvm::Value* offset = zero;
    if (p.contiguous) {
      offset = row_start;
    } else {
      for (size_t d = 0; d < outer_index.size(); ++d) {
        if (p.outer_strides[d] == 0) continue;
        offset = b_.CreateAdd(offset, b_.CreateMul(outer_index[d], llvm::ConstantInt::get(i64_, p.outer_strides[d])));
      }
    }
    llvm::Type* elem = MemElemTy(p.kind);
    input_row_ptr_[i] = b_.CreateInBoundsGEP(elem, input_base[i], offset);
    if (p.inner_broadcast) {
      // Loaded once per row here rather than in the vector loop, where a
      // possible alias with the outputs would keep LLVM from hoisting it.
      llvm::Value* scalar = b_.CreateAlignedLoad(elem, input_row_ptr_[i], llvm::Align(1));
      if (p.kind == Kind::kBool) scalar = b_.CreateICmpNE(scalar, llvm::ConstantInt::get(i8_, 0));
      input_row_splat_[i] = b_.CreateVectorSplat(static_cast<unsigned>(lanes_), scalar);
    }
  }
  output_row_ptr_.clear();
  for (size_t k = 0; k < output_base.size(); ++k) {
    output_row_ptr_.push_back(b_.CreateInBoundsGEP(MemElemTy(output_kinds_[k]), output_base[k], row_start));
  }

  const int64_t full_end = nest.row_len / lanes_ * lanes_;
  const int64_t remainder = nest.row_len - full_end;
  if (full_end > 0) {
    // vec_body: for (col = 0; col < full_end; col += lanes), at least once.
    llvm::BasicBlock* pre = b_.GetInsertBlock();
    llvm::BasicBlock* vec_body = llvm::BasicBlock::Create(ctx_, "vec_body", fn, row_latch);
    llvm::BasicBlock* vec_done = llvm::BasicBlock::Create(ctx_, "vec_done", fn, row_latch);
    b_.CreateBr(vec_body);
    b_.SetInsertPoint(vec_body);
    llvm::PHINode* col = b_.CreatePHI(i64_, 2, "col");
    col->addIncoming(zero, pre);
    KILN_RETURN_IF_ERROR(EmitBlock(col, nullptr));
    llvm::Value* next = b_.CreateAdd(col, llvm::ConstantInt::get(i64_, lanes_), "col_next", true, true);
    col->addIncoming(next, b_.GetInsertBlock());
    b_.CreateCondBr(b_.CreateICmpULT(next, llvm::ConstantInt::get(i64_, full_end)), vec_body, vec_done);
    b_.SetInsertPoint(vec_done);
  }
  if (remainder > 0) {
    // The last partial vector with masked loads and stores: no scalar
    // epilogue, and no access beyond the row.
    std::vector<llvm::Constant*> lanes_on;
    for (int l = 0; l < lanes_; ++l) lanes_on.push_back(llvm::ConstantInt::get(i1_, l < remainder ? 1 : 0));
    KILN_RETURN_IF_ERROR(EmitBlock(llvm::ConstantInt::get(i64_, full_end), llvm::ConstantVector::get(lanes_on)));
  }
  if (nest.row_len == 0) {
    // An empty domain never reaches this block (num_rows is 0), but emitting
    // it still checks that every op is supported, as for any other shape.
    KILN_RETURN_IF_ERROR(EmitBlock(zero, llvm::Constant::getNullValue(VecTy(Kind::kBool))));
  }
  b_.CreateBr(row_latch);

  b_.SetInsertPoint(row_latch);
  llvm::Value* row_next = b_.CreateAdd(row, llvm::ConstantInt::get(i64_, 1), "row_next", true, true);
  row->addIncoming(row_next, row_latch);
  b_.CreateBr(row_check);

  b_.SetInsertPoint(exit);
  b_.CreateRetVoid();
  return Status::Ok();
}

Status RegionEmitter::EmitBlock(llvm::Value* col, llvm::Value* mask) {
  const std::vector<InputPlan>& plans = *plans_;
  std::vector<std::optional<Operand>> values(graph_.num_values());
  for (size_t i = 0; i < plans.size(); ++i) {
    const InputPlan& p = plans[i];
    Operand op;
    op.kind = p.kind;
    if (p.baked) {
      op.immediate = p.immediate;
      op.v = p.kind == Kind::kFloat ? FConst(p.immediate)
                                    : llvm::ConstantInt::get(VecTy(Kind::kBool), p.immediate != 0 ? 1 : 0);
    } else if (p.inner_broadcast) {
      op.v = input_row_splat_[i];
    } else {
      llvm::Type* elem = MemElemTy(p.kind);
      llvm::Type* vec = llvm::FixedVectorType::get(elem, static_cast<unsigned>(lanes_));
      llvm::Value* ptr = b_.CreateInBoundsGEP(elem, input_row_ptr_[i], col);
      const llvm::Align align(p.kind == Kind::kFloat ? 4 : 1);
      llvm::Value* v = mask == nullptr
                           ? static_cast<llvm::Value*>(b_.CreateAlignedLoad(vec, ptr, align))
                           : b_.CreateMaskedLoad(vec, ptr, align, mask, llvm::Constant::getNullValue(vec));
      if (p.kind == Kind::kBool) v = b_.CreateICmpNE(v, llvm::Constant::getNullValue(vec));
      op.v = v;
    }
    values[static_cast<size_t>(region_.inputs[i])] = op;
  }

  for (graph::NodeId id : region_.nodes) {
    const Node& node = graph_.node(id);
    std::vector<std::optional<Operand>> in;
    for (ValueId v : node.inputs) {
      if (v == graph::kNoValue) {
        in.push_back(std::nullopt);
        continue;
      }
      if (!values[static_cast<size_t>(v)]) {
        return InvalidArgument("jit: ", node.Describe(), " reads '", graph_.value(v).name,
                               "', which is neither a region input nor computed earlier in the region");
      }
      in.push_back(values[static_cast<size_t>(v)]);
    }
    StatusOr<Operand> out = EmitNode(node, in);
    if (!out.ok()) return out.status();
    const ValueId out_id = node.outputs[0];
    KILN_ASSIGN_OR_RETURN(Kind declared, KindOf(graph_.value(out_id).dtype));
    if (declared != out->kind) {
      return Unsupported("jit: ", node.Describe(), ": output dtype ", DTypeName(graph_.value(out_id).dtype),
                         " does not match what the op computes");
    }
    Operand result = *out;
    result.immediate.reset();
    values[static_cast<size_t>(out_id)] = result;
  }

  for (size_t k = 0; k < region_.outputs.size(); ++k) {
    const std::optional<Operand>& op = values[static_cast<size_t>(region_.outputs[k])];
    if (!op) return InvalidArgument("jit: region output '", graph_.value(region_.outputs[k]).name, "' is not computed");
    llvm::Value* v = op->v;
    llvm::Type* elem = MemElemTy(output_kinds_[k]);
    if (output_kinds_[k] == Kind::kBool) v = b_.CreateZExt(v, llvm::FixedVectorType::get(i8_, lanes_));
    llvm::Value* ptr = b_.CreateInBoundsGEP(elem, output_row_ptr_[k], col);
    const llvm::Align align(output_kinds_[k] == Kind::kFloat ? 4 : 1);
    if (mask == nullptr) {
      b_.CreateAlignedStore(v, ptr, align);
    } else {
      b_.CreateMaskedStore(v, ptr, align, mask);
    }
  }
  return Status::Ok();
}

StatusOr<Operand> RegionEmitter::EmitNode(const Node& node, const std::vector<std::optional<Operand>>& in) {
  const std::string& op = node.op_type;
  if (!node.domain.empty()) return Unsupported("jit: ", node.Describe(), ": domain '", node.domain, "'");
  if (node.outputs.size() != 1 || node.outputs[0] == graph::kNoValue) {
    return Unsupported("jit: ", node.Describe(), ": expected exactly one output");
  }
  // Arity and kind checks shared by the ops below.
  auto require = [&](size_t min_inputs, size_t max_inputs) -> Status {
    if (in.size() < min_inputs || in.size() > max_inputs) {
      return InvalidModel("jit: ", node.Describe(), " has ", in.size(), " inputs");
    }
    for (size_t i = 0; i < min_inputs; ++i) {
      if (!in[i]) return InvalidModel("jit: ", node.Describe(), ": input ", i, " is missing");
    }
    return Status::Ok();
  };
  auto require_float = [&]() -> Status {
    for (const auto& o : in) {
      if (o && o->kind != Kind::kFloat) return Unsupported("jit: ", op, ": bool inputs");
    }
    return Status::Ok();
  };
  auto f = [](llvm::Value* v) { return Operand{v, Kind::kFloat, std::nullopt}; };
  auto mask = [](llvm::Value* v) { return Operand{v, Kind::kBool, std::nullopt}; };

  static const char* const kUnary[] = {"Neg",  "Abs",  "Sqrt", "Reciprocal", "Exp",      "Log",
                                       "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish",
                                       "Erf",  "Gelu", "Softplus", "Elu", "Floor", "Ceil"};
  for (const char* name : kUnary) {
    if (op != name) continue;
    KILN_RETURN_IF_ERROR(require(1, 1));
    KILN_RETURN_IF_ERROR(require_float());
    llvm::Value* x = in[0]->v;
    if (op == "Neg") return f(b_.CreateFNeg(x));
    if (op == "Abs") return f(Intr(llvm::Intrinsic::fabs, x));
    if (op == "Sqrt") return f(Intr(llvm::Intrinsic::sqrt, x));
    if (op == "Reciprocal") return f(b_.CreateFDiv(FConst(1.0), x));
    if (op == "Exp") return f(EmitExp(b_, x));
    if (op == "Log") return f(EmitLog(b_, x));
    if (op == "Floor") return f(Intr(llvm::Intrinsic::floor, x));
    if (op == "Ceil") return f(Intr(llvm::Intrinsic::ceil, x));
    if (op == "Sigmoid") return f(EmitSigmoid(b_, x));
    if (op == "Tanh") return f(EmitTanh(b_, x));
    if (op == "Erf") return f(EmitErf(b_, x));
    // Selects on "x < 0" keep NaN inputs NaN.
    if (op == "Relu") return f(b_.CreateSelect(b_.CreateFCmpOLT(x, FConst(0.0)), FConst(0.0), x));
    if (op == "LeakyRelu") {
      KILN_ASSIGN_OR_RETURN(float alpha, node.GetFloat("alpha", 0.01f));
      return f(b_.CreateSelect(b_.CreateFCmpOLT(x, FConst(0.0)), b_.CreateFMul(x, FConst(alpha)), x));
    }
    if (op == "Elu") {
      KILN_ASSIGN_OR_RETURN(float alpha, node.GetFloat("alpha", 1.0f));
      llvm::Value* neg = b_.CreateFMul(EmitExpm1(b_, x), FConst(alpha));
      return f(b_.CreateSelect(b_.CreateFCmpOLT(x, FConst(0.0)), neg, x));
    }
    if (op == "HardSigmoid") {
      KILN_ASSIGN_OR_RETURN(float alpha, node.GetFloat("alpha", 0.2f));
      KILN_ASSIGN_OR_RETURN(float beta, node.GetFloat("beta", 0.5f));
      return f(Clamp01(b_.CreateFAdd(b_.CreateFMul(x, FConst(alpha)), FConst(beta))));
    }
    if (op == "HardSwish") {
      // x * HardSigmoid(x) with alpha = 1/6, beta = 0.5.
      llvm::Value* hs = Clamp01(b_.CreateFAdd(b_.CreateFMul(x, FConst(1.0f / 6.0f)), FConst(0.5)));
      return f(b_.CreateFMul(x, hs));
    }
    if (op == "Softplus") {
      // log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x.
      llvm::Value* pos = b_.CreateSelect(b_.CreateFCmpOGT(x, FConst(0.0)), x, FConst(0.0));
      llvm::Value* t = EmitExp(b_, b_.CreateFNeg(Intr(llvm::Intrinsic::fabs, x)));
      return f(b_.CreateFAdd(pos, EmitLog1p(b_, t)));
    }
    if (op == "Gelu") {
      KILN_ASSIGN_OR_RETURN(std::string approximate, node.GetString("approximate", "none"));
      llvm::Value* half_x = b_.CreateFMul(x, FConst(0.5));
      if (approximate == "none") {
        llvm::Value* e = EmitErf(b_, b_.CreateFMul(x, FConst(M_SQRT1_2)));
        return f(b_.CreateFMul(half_x, b_.CreateFAdd(e, FConst(1.0))));
      }
      if (approximate == "tanh") {
        llvm::Value* x3 = b_.CreateFMul(b_.CreateFMul(x, x), x);
        llvm::Value* inner = b_.CreateFMul(b_.CreateFAdd(x, b_.CreateFMul(x3, FConst(0.044715))),
                                           FConst(std::sqrt(2.0 / M_PI)));
        return f(b_.CreateFMul(half_x, b_.CreateFAdd(EmitTanh(b_, inner), FConst(1.0))));
      }
      return Unsupported("jit: Gelu: approximate='", approximate, "'");
    }
  }

  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Pow") {
    KILN_RETURN_IF_ERROR(require(2, 2));
    KILN_RETURN_IF_ERROR(require_float());
    llvm::Value* x = in[0]->v;
    llvm::Value* y = in[1]->v;
    if (op == "Add") return f(b_.CreateFAdd(x, y));
    if (op == "Sub") return f(b_.CreateFSub(x, y));
    if (op == "Mul") return f(b_.CreateFMul(x, y));
    if (op == "Div") return f(b_.CreateFDiv(x, y));
    if (in[1]->immediate) {
      // Common constant exponents without exp/log.
      const double e = *in[1]->immediate;
      if (e == 1.0) return f(x);
      if (e == 2.0) return f(b_.CreateFMul(x, x));
      if (e == 3.0) return f(b_.CreateFMul(b_.CreateFMul(x, x), x));
      if (e == 4.0) {
        llvm::Value* x2 = b_.CreateFMul(x, x);
        return f(b_.CreateFMul(x2, x2));
      }
      if (e == 0.0) return f(FConst(1.0));
      if (e == -1.0) return f(b_.CreateFDiv(FConst(1.0), x));
      if (e == 0.5) {
        // pow(-inf, 0.5) is +inf where sqrt gives NaN; pow(-0, 0.5) is +0.
        llvm::Value* s = Intr(llvm::Intrinsic::sqrt, x);
        s = b_.CreateSelect(b_.CreateFCmpOEQ(x, FConst(-std::numeric_limits<double>::infinity())),
                            FConst(std::numeric_limits<double>::infinity()), s);
        return f(b_.CreateSelect(b_.CreateFCmpOEQ(x, FConst(0.0)), FConst(0.0), s));
      }
    }
    return f(EmitPow(b_, x, y));
  }

  if (op == "Min" || op == "Max") {
    if (in.empty()) return InvalidModel("jit: ", node.Describe(), " has no inputs");
    KILN_RETURN_IF_ERROR(require(in.size(), in.size()));
    KILN_RETURN_IF_ERROR(require_float());
    // NaN in any operand gives NaN, like numpy's minimum / maximum.
    llvm::Value* acc = in[0]->v;
    for (size_t i = 1; i < in.size(); ++i) {
      llvm::Value* y = in[i]->v;
      llvm::Value* pick_acc = op == "Min" ? b_.CreateFCmpOLT(acc, y) : b_.CreateFCmpOGT(acc, y);
      llvm::Value* r = b_.CreateSelect(pick_acc, acc, y);
      acc = b_.CreateSelect(b_.CreateFCmpUNO(acc, acc), acc, r);
    }
    return f(acc);
  }

  if (op == "Clip") {
    KILN_RETURN_IF_ERROR(require(1, 3));
    KILN_RETURN_IF_ERROR(require_float());
    llvm::Value* x = in[0]->v;
    llvm::Value* lo = nullptr;
    llvm::Value* hi = nullptr;
    if (node.opset < 11) {
      KILN_ASSIGN_OR_RETURN(float min_attr, node.GetFloat("min", std::numeric_limits<float>::lowest()));
      KILN_ASSIGN_OR_RETURN(float max_attr, node.GetFloat("max", std::numeric_limits<float>::max()));
      lo = FConst(min_attr);
      hi = FConst(max_attr);
    } else {
      // Absent bounds leave that side unbounded.
      if (in.size() > 1 && in[1]) lo = in[1]->v;
      if (in.size() > 2 && in[2]) hi = in[2]->v;
    }
    if (lo != nullptr) x = b_.CreateSelect(b_.CreateFCmpOLT(x, lo), lo, x);
    if (hi != nullptr) x = b_.CreateSelect(b_.CreateFCmpOGT(x, hi), hi, x);
    return f(x);
  }

  if (op == "Where") {
    KILN_RETURN_IF_ERROR(require(3, 3));
    if (in[0]->kind != Kind::kBool) return Unsupported("jit: Where: condition must be bool");
    if (in[1]->kind != in[2]->kind) return Unsupported("jit: Where: branches of different dtypes");
    return Operand{b_.CreateSelect(in[0]->v, in[1]->v, in[2]->v), in[1]->kind, std::nullopt};
  }

  if (op == "Equal" || op == "Less" || op == "Greater") {
    KILN_RETURN_IF_ERROR(require(2, 2));
    if (in[0]->kind != in[1]->kind) return Unsupported("jit: ", op, ": operands of different dtypes");
    llvm::Value* x = in[0]->v;
    llvm::Value* y = in[1]->v;
    if (in[0]->kind == Kind::kBool) {
      if (op != "Equal") return Unsupported("jit: ", op, ": bool inputs");
      return mask(b_.CreateICmpEQ(x, y));
    }
    if (op == "Equal") return mask(b_.CreateFCmpOEQ(x, y));
    if (op == "Less") return mask(b_.CreateFCmpOLT(x, y));
    return mask(b_.CreateFCmpOGT(x, y));
  }

  if (op == "Identity") {
    KILN_RETURN_IF_ERROR(require(1, 1));
    return *in[0];
  }

  return Unsupported("jit: op ", op, " is not supported by the elementwise code generator");
}

// A single-element constant becomes an immediate. Integer scalars are
// accepted here only as values (Pow's exponent may be int64).
std::optional<double> ScalarConstant(const graph::Value& value) {
  if (!value.constant || value.constant->num_elements() != 1) return std::nullopt;
  const Tensor& t = *value.constant;
  switch (t.dtype()) {
    case DType::kFloat32: return static_cast<double>(t.data<float>()[0]);
    case DType::kBool: return t.data<bool>()[0] ? 1.0 : 0.0;
    case DType::kInt64: return static_cast<double>(t.data<int64_t>()[0]);
    case DType::kInt32: return static_cast<double>(t.data<int32_t>()[0]);
    default: return std::nullopt;
  }
}

}  // namespace

StatusOr<std::unique_ptr<CompiledRegion>> CompileElementwiseRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                                   const graph::Region& region,
                                                                   const std::vector<Dims>& input_dims) {
  const auto start = std::chrono::steady_clock::now();
  if (region.kind != graph::RegionKind::kElementwise) {
    return Unsupported("jit: region kind ", graph::RegionKindName(region.kind));
  }
  if (input_dims.size() != region.inputs.size()) {
    return InvalidArgument("jit: region ", region.id, " has ", region.inputs.size(), " inputs but ",
                           input_dims.size(), " dims were given");
  }
  if (region.nodes.empty() || region.outputs.empty()) {
    return InvalidArgument("jit: region ", region.id, " has no nodes or no outputs");
  }

  LoopNest nest;
  std::vector<InputPlan> plans;
  KILN_RETURN_IF_ERROR(PlanLoops(input_dims, nest, plans));
  plans.resize(region.inputs.size());
  for (size_t i = 0; i < region.inputs.size(); ++i) {
    const graph::Value& value = graph.value(region.inputs[i]);
    std::optional<double> scalar = ScalarConstant(value);
    if (scalar) {
      plans[i].baked = true;
      plans[i].immediate = *scalar;
      plans[i].kind = value.constant->dtype() == DType::kBool ? Kind::kBool : Kind::kFloat;
      continue;
    }
    KILN_ASSIGN_OR_RETURN(plans[i].kind, KindOf(value.dtype));
  }

  // Every output must cover the whole domain: the loop writes each output
  // element once per domain element.
  {
    std::vector<std::optional<Dims>> dims(graph.num_values());
    for (size_t i = 0; i < region.inputs.size(); ++i) dims[static_cast<size_t>(region.inputs[i])] = input_dims[i];
    for (graph::NodeId id : region.nodes) {
      const Node& node = graph.node(id);
      Dims out;
      for (ValueId v : node.inputs) {
        if (v == graph::kNoValue) continue;
        if (!dims[static_cast<size_t>(v)]) {
          return InvalidArgument("jit: ", node.Describe(), " reads '", graph.value(v).name,
                                 "' before it is computed (region nodes must be in topological order)");
        }
        KILN_ASSIGN_OR_RETURN(out, Broadcast(out, *dims[static_cast<size_t>(v)]));
      }
      for (ValueId o : node.outputs) {
        if (o != graph::kNoValue) dims[static_cast<size_t>(o)] = out;
      }
    }
    for (ValueId o : region.outputs) {
      if (!dims[static_cast<size_t>(o)]) {
        return InvalidArgument("jit: region output '", graph.value(o).name, "' is not produced by the region");
      }
      if (*dims[static_cast<size_t>(o)] != nest.domain) {
        return Unsupported("jit: region output '", graph.value(o).name, "' has dims ",
                           DimsToString(*dims[static_cast<size_t>(o)]), ", not the region's domain ",
                           DimsToString(nest.domain));
      }
    }
  }

  const std::string name = "kiln_region" + std::to_string(region.id) + "_" + std::to_string(compiler.NextSerial());
  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = std::make_unique<llvm::Module>(name, *context);
  module->setDataLayout(compiler.data_layout());
  module->setTargetTriple(compiler.target_triple());
  {
    RegionEmitter emitter(graph, region, *module, compiler.f32_vector_lanes());
    KILN_RETURN_IF_ERROR(emitter.Emit(name, nest, plans, compiler.cpu_name(), compiler.cpu_features()));
  }

  // Nothing is in the JIT before this point; Compile cleans up after itself.
  llvm::Expected<JitCode> code =
      compiler.Compile(llvm::orc::ThreadSafeModule(std::move(module), std::move(context)), name);
  if (!code) return Internal("jit: compiling region ", region.id, ": ", llvm::toString(code.takeError()));

  CompiledRegion::Info info;
  info.name = name;
  info.num_rows = nest.num_rows;
  info.row_len = nest.row_len;
  for (const InputPlan& p : plans) info.input_baked.push_back(p.baked);
  info.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  auto compiled = std::make_unique<CompiledRegion>(std::move(*code), std::move(info));
  Log().debug("jit: compiled {} ({} nodes, domain {}, {} x {}) in {:.2f} ms, {} code bytes", name,
              region.nodes.size(), DimsToString(nest.domain), compiled->num_rows(), compiled->row_len(),
              compiled->compile_ms(), compiled->code_bytes());
  return compiled;
}

}  // namespace kiln::jit
