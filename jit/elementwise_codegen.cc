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
#include <optional>
#include <string>

#include "graph/log.h"
#include "jit/region_ops.h"

namespace kiln::jit {
namespace {

using graph::Node;
using graph::ValueId;
using internal::Broadcast;
using internal::ClassifyInputs;
using internal::InputSpec;
using internal::Kind;
using internal::OpEmitter;
using internal::Operand;
using internal::OutputKinds;

// How one region input is read.
struct InputPlan {
  InputSpec spec;                      // kind, baked immediate
  bool inner_broadcast = false;        // one element per row, splatted
  bool contiguous = false;             // offset = row * row_len
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
    std::vector<bool> broadcast;  // per input
    std::vector<int64_t> stride;  // per input, elements (0 when broadcast)
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
    // Float lanes of one AVX-512 register (two AVX2 ones).
    constexpr int64_t kPreferredMultiple = 16;
    for (int64_t step : {kPreferredMultiple, int64_t{1}}) {
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

class RegionEmitter {
 public:
  RegionEmitter(const graph::Graph& graph, const graph::Region& region, llvm::Module& module, int lanes, bool bit_exact)
      : graph_(graph),
        region_(region),
        module_(module),
        ctx_(module.getContext()),
        b_(ctx_),
        lanes_(lanes),
        ops_(graph, region, b_, lanes, bit_exact) {
    i1_ = llvm::Type::getInt1Ty(ctx_);
    i64_ = llvm::Type::getInt64Ty(ctx_);
  }

  Status Emit(const std::string& name, const LoopNest& nest, const std::vector<InputPlan>& plans,
              const std::string& cpu, const std::string& features);

 private:
  llvm::Type* VecTy(Kind kind) const { return ops_.VecTy(kind); }
  llvm::Type* MemElemTy(Kind kind) const { return ops_.MemElemTy(kind); }

  // Loads, computes and stores one vector of the row starting at column
  // `col`; `mask` selects the live lanes of a partial vector (null: all).
  Status EmitBlock(llvm::Value* col, llvm::Value* mask);

  const graph::Graph& graph_;
  const graph::Region& region_;
  llvm::Module& module_;
  llvm::LLVMContext& ctx_;
  llvm::IRBuilder<> b_;
  int lanes_;
  OpEmitter ops_;
  llvm::Type* i1_;
  llvm::Type* i64_;

  // Per-row state used by EmitBlock.
  const std::vector<InputPlan>* plans_ = nullptr;
  std::vector<llvm::Value*> input_row_ptr_;    // element pointer at the row start (loaded inputs)
  std::vector<llvm::Value*> input_row_splat_;  // per-row value for inner-broadcast inputs
  std::vector<llvm::Value*> output_row_ptr_;
  std::vector<Kind> output_kinds_;
};

Status RegionEmitter::Emit(const std::string& name, const LoopNest& nest, const std::vector<InputPlan>& plans,
                           const std::string& cpu, const std::string& features) {
  plans_ = &plans;
  KILN_ASSIGN_OR_RETURN(output_kinds_, OutputKinds(graph_, region_));
  std::vector<bool> baked;
  for (const InputPlan& p : plans) baked.push_back(p.spec.baked);
  // entry: the clamped row range and the buffer pointers.
  const internal::EntryPrologue prologue =
      internal::EmitEntryPrologue(module_, b_, name, /*generic=*/false, cpu, features, baked, region_.outputs.size(),
                                  [&](llvm::Value*) { return llvm::ConstantInt::get(i64_, nest.num_rows); });
  llvm::Function* fn = prologue.fn;
  llvm::BasicBlock* entry = prologue.entry;
  llvm::Value* row_begin = prologue.row_begin;
  llvm::Value* row_end = prologue.row_end;
  const std::vector<llvm::Value*>& input_base = prologue.inputs;
  const std::vector<llvm::Value*>& output_base = prologue.outputs;
  llvm::Value* zero = llvm::ConstantInt::get(i64_, 0);

  llvm::BasicBlock* row_check = llvm::BasicBlock::Create(ctx_, "row_check", fn);
  llvm::BasicBlock* row_body = llvm::BasicBlock::Create(ctx_, "row_body", fn);
  llvm::BasicBlock* row_latch = llvm::BasicBlock::Create(ctx_, "row_latch", fn);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(ctx_, "exit", fn);
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
    if (p.spec.baked) continue;
    llvm::Value* offset = zero;
    if (p.contiguous) {
      offset = row_start;
    } else {
      for (size_t d = 0; d < outer_index.size(); ++d) {
        if (p.outer_strides[d] == 0) continue;
        offset = b_.CreateAdd(offset, b_.CreateMul(outer_index[d], llvm::ConstantInt::get(i64_, p.outer_strides[d])));
      }
    }
    input_row_ptr_[i] = b_.CreateInBoundsGEP(MemElemTy(p.spec.kind), input_base[i], offset);
    if (p.inner_broadcast) {
      // Loaded once per row here rather than in the vector loop, where a
      // possible alias with the outputs would keep LLVM from hoisting it.
      input_row_splat_[i] = ops_.LoadSplat(p.spec.kind, input_row_ptr_[i]);
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
  std::vector<Operand> inputs(plans.size());
  for (size_t i = 0; i < plans.size(); ++i) {
    const InputPlan& p = plans[i];
    if (p.spec.baked) {
      inputs[i] = ops_.Immediate(p.spec);
    } else if (p.inner_broadcast) {
      inputs[i] = Operand{input_row_splat_[i], p.spec.kind, std::nullopt};
    } else {
      llvm::Value* ptr = b_.CreateInBoundsGEP(MemElemTy(p.spec.kind), input_row_ptr_[i], col);
      inputs[i] = Operand{ops_.LoadVector(p.spec.kind, ptr, mask), p.spec.kind, std::nullopt};
    }
  }
  KILN_ASSIGN_OR_RETURN(std::vector<Operand> outputs, ops_.EmitOps(inputs));
  for (size_t k = 0; k < outputs.size(); ++k) {
    llvm::Value* ptr = b_.CreateInBoundsGEP(MemElemTy(output_kinds_[k]), output_row_ptr_[k], col);
    ops_.StoreVector(output_kinds_[k], outputs[k].v, ptr, mask);
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<CompiledRegion>> CompileElementwiseRegion(JitCompiler& compiler, const graph::Graph& graph,
                                                                   const graph::Region& region,
                                                                   const std::vector<Dims>& input_dims) {
  const auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(std::vector<InputSpec> specs, ClassifyInputs(graph, region));
  if (input_dims.size() != region.inputs.size()) {
    return InvalidArgument("jit: region ", region.id, " has ", region.inputs.size(), " inputs but ", input_dims.size(),
                           " dims were given");
  }

  LoopNest nest;
  std::vector<InputPlan> plans;
  KILN_RETURN_IF_ERROR(PlanLoops(input_dims, nest, plans));
  plans.resize(region.inputs.size());
  for (size_t i = 0; i < region.inputs.size(); ++i) plans[i].spec = specs[i];

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
  KILN_ASSIGN_OR_RETURN(internal::RegionCode code, internal::EmitAndCompile(compiler, name, [&](llvm::Module& module) {
                          RegionEmitter emitter(graph, region, module, compiler.f32_vector_lanes(),
                                                compiler.bit_exact());
                          return emitter.Emit(name, nest, plans, compiler.cpu_name(), compiler.cpu_features());
                        }));

  CompiledRegion::Info info;
  info.name = code.code->symbol();
  info.reused_code = code.reused;
  info.from_disk_cache = code.from_disk;
  info.num_rows = nest.num_rows;
  info.row_len = nest.row_len;
  for (const InputPlan& p : plans) info.input_baked.push_back(p.spec.baked);
  info.output_dims.assign(region.outputs.size(), nest.domain);
  info.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  auto compiled = std::make_unique<CompiledRegion>(std::move(code.code), std::move(info));
  Log().debug("jit: {} {} for region {} ({} nodes, domain {}, {} x {}) in {:.2f} ms, {} code bytes",
              compiled->reused_code()       ? "reused"
              : compiled->from_disk_cache() ? "linked from cache"
                                            : "compiled",
              compiled->name(), region.id, region.nodes.size(), DimsToString(nest.domain), compiled->num_rows(),
              compiled->row_len(), compiled->compile_ms(), compiled->code_bytes());
  return compiled;
}

}  // namespace kiln::jit
