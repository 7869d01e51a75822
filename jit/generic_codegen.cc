#include "jit/generic_codegen.h"

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
#include <string>

#include "graph/log.h"
#include "jit/region_ops.h"

namespace kiln::jit {
namespace {

using graph::ValueId;
using internal::ClassifyInputs;
using internal::InputSpec;
using internal::Kind;
using internal::OpEmitter;
using internal::Operand;
using internal::OutputKinds;

// How one loaded input is read in one version of the inner loop.
enum class Access { kContiguous, kSplat, kGather };

// Outputs must have the domain's shape whatever the input dims are: an
// elementwise value's shape is the broadcast of the inputs it depends on,
// so each output must depend on every input that can have dims other than
// 1 (all but the baked single-element constants).
Status CheckOutputsCoverDomain(const graph::Graph& graph, const graph::Region& region,
                               const std::vector<InputSpec>& specs) {
  const size_t n = region.inputs.size();
  std::vector<std::vector<bool>> depends(graph.num_values());
  for (size_t i = 0; i < n; ++i) {
    std::vector<bool>& d = depends[static_cast<size_t>(region.inputs[i])];
    d.resize(n, false);
    d[i] = true;
  }
  for (graph::NodeId id : region.nodes) {
    const graph::Node& node = graph.node(id);
    std::vector<bool> acc(n, false);
    for (ValueId v : node.inputs) {
      if (v == graph::kNoValue) continue;
      const std::vector<bool>& d = depends[static_cast<size_t>(v)];
      for (size_t i = 0; i < d.size(); ++i) acc[i] = acc[i] || d[i];
    }
    for (ValueId o : node.outputs) {
      if (o != graph::kNoValue) depends[static_cast<size_t>(o)] = acc;
    }
  }
  for (ValueId o : region.outputs) {
    const std::vector<bool>& d = depends[static_cast<size_t>(o)];
    for (size_t i = 0; i < n; ++i) {
      if (specs[i].baked || (i < d.size() && d[i])) continue;
      return Unsupported("jit: generic code for region ", region.id, ": output '", graph.value(o).name,
                         "' does not depend on input '", graph.value(region.inputs[i]).name,
                         "', so its shape is not always the domain's");
    }
  }
  return Status::Ok();
}

class GenericEmitter {
 public:
  GenericEmitter(const graph::Graph& graph, const graph::Region& region, llvm::Module& module, int lanes,
                 bool bit_exact)
      : graph_(graph),
        region_(region),
        module_(module),
        ctx_(module.getContext()),
        b_(ctx_),
        lanes_(lanes),
        ops_(graph, region, b_, lanes, bit_exact) {
    i64_ = llvm::Type::getInt64Ty(ctx_);
  }

  Status Emit(const std::string& name, int rank, const std::vector<InputSpec>& specs, const std::string& cpu,
              const std::string& features);

 private:
  llvm::Value* I64(int64_t v) { return llvm::ConstantInt::get(i64_, v); }
  llvm::Value* I64Vec(llvm::Value* scalar) { return b_.CreateVectorSplat(static_cast<unsigned>(lanes_), scalar); }

  // One version of the inner loop over columns [0, row_len) of the current
  // row, for the given access of each input; branches to `done` at the end.
  Status EmitVersion(const std::vector<Access>& access, llvm::BasicBlock* done);
  // Loads, computes and stores the vector at column `col`; `mask` (null:
  // all lanes) selects the live lanes of the last partial vector.
  Status EmitBody(const std::vector<Access>& access, llvm::Value* col, llvm::Value* mask);

  const graph::Graph& graph_;
  const graph::Region& region_;
  llvm::Module& module_;
  llvm::LLVMContext& ctx_;
  llvm::IRBuilder<> b_;
  int lanes_;
  OpEmitter ops_;
  llvm::Type* i64_;
  llvm::Function* fn_ = nullptr;

  const std::vector<InputSpec>* specs_ = nullptr;
  std::vector<Kind> output_kinds_;
  // Per row (values defined in the row's block, valid in every version).
  llvm::Value* row_len_ = nullptr;
  llvm::Value* iota_ = nullptr;                   // <0, 1, ..., lanes-1> as i64
  std::vector<llvm::Value*> input_row_ptr_;       // element pointer at the row start
  std::vector<llvm::Value*> input_inner_stride_;  // effective stride along the row
  std::vector<llvm::Value*> output_row_ptr_;
  // Per version.
  std::vector<llvm::Value*> splat_;       // kSplat inputs
  std::vector<llvm::Value*> stride_vec_;  // kGather inputs
};

Status GenericEmitter::Emit(const std::string& name, int rank, const std::vector<InputSpec>& specs,
                            const std::string& cpu, const std::string& features) {
  specs_ = &specs;
  const size_t n = specs.size();
  const auto r = static_cast<size_t>(rank);
  KILN_ASSIGN_OR_RETURN(output_kinds_, OutputKinds(graph_, region_));

  // entry: dims, the row count and the clamped row range (and the buffer
  // pointers); nothing to do for an empty range or an empty domain.
  std::vector<bool> baked;
  for (const InputSpec& spec : specs) baked.push_back(spec.baked);
  std::vector<llvm::Value*> dims(r);
  auto param = [&](llvm::Value* params, size_t index, const std::string& what) {
    return b_.CreateAlignedLoad(i64_, b_.CreateConstInBoundsGEP1_64(i64_, params, index), llvm::Align(8), what);
  };
  const internal::EntryPrologue prologue = internal::EmitEntryPrologue(
      module_, b_, name, /*generic=*/true, cpu, features, baked, region_.outputs.size(), [&](llvm::Value* params) {
        for (size_t d = 0; d < r; ++d) dims[d] = param(params, d, "dim" + std::to_string(d));
        llvm::Value* rows = I64(1);
        for (size_t d = 0; d + 1 < r; ++d) rows = b_.CreateMul(rows, dims[d]);
        return rows;
      });
  fn_ = prologue.fn;
  llvm::Function* fn = fn_;
  llvm::Value* row_begin = prologue.row_begin;
  llvm::Value* row_end = prologue.row_end;
  const std::vector<llvm::Value*>& input_base = prologue.inputs;
  const std::vector<llvm::Value*>& output_base = prologue.outputs;

  llvm::BasicBlock* setup = llvm::BasicBlock::Create(ctx_, "setup", fn);
  llvm::BasicBlock* seg_body = llvm::BasicBlock::Create(ctx_, "seg_body", fn);
  llvm::BasicBlock* seg_latch = llvm::BasicBlock::Create(ctx_, "seg_latch", fn);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(ctx_, "exit", fn);

  llvm::Value* row_len = r > 0 ? dims[r - 1] : I64(1);
  llvm::Value* any_work =
      b_.CreateAnd(b_.CreateICmpSLT(row_begin, row_end), b_.CreateICmpSGT(row_len, I64(0)), "any_work");
  // Locals that change per row live in allocas; SROA turns them into SSA.
  llvm::Value* seg_slot = b_.CreateAlloca(i64_, nullptr, "seg.slot");
  llvm::Value* out_off_slot = b_.CreateAlloca(i64_, nullptr, "out_off.slot");
  std::vector<llvm::Value*> idx_slot(r > 0 ? r - 1 : 0);
  for (size_t d = 0; d < idx_slot.size(); ++d) idx_slot[d] = b_.CreateAlloca(i64_, nullptr, "idx.slot");
  std::vector<llvm::Value*> off_slot(n, nullptr);
  for (size_t i = 0; i < n; ++i) {
    if (!specs[i].baked) off_slot[i] = b_.CreateAlloca(i64_, nullptr, "off.slot");
  }
  b_.CreateCondBr(any_work, setup, exit);

  // setup: strides, the loop shape (flat or per row) and the version of
  // the inner loop, all fixed for the whole call.
  b_.SetInsertPoint(setup);
  std::vector<std::vector<llvm::Value*>> strides(n);
  for (size_t i = 0; i < n; ++i) {
    if (specs[i].baked) continue;
    for (size_t d = 0; d < r; ++d) {
      strides[i].push_back(
          param(prologue.params, r + i * r + d, "stride" + std::to_string(i) + "_" + std::to_string(d)));
    }
  }

  // Dense strides of the domain. An input whose strides equal them (dense
  // with the domain's shape) or are all 0 (one element) addresses rows
  // [row_begin, row_end) like one long row; when every loaded input is one
  // of the two, the call runs a single "flat" segment. Dims of size 1 are
  // skipped: their stride is never multiplied by a non-zero index.
  std::vector<llvm::Value*> dense(r);
  {
    llvm::Value* s = I64(1);
    for (size_t d = r; d-- > 0;) {
      dense[d] = s;
      s = b_.CreateMul(s, dims[d]);
    }
  }
  llvm::Value* flat = b_.getTrue();
  std::vector<llvm::Value*> is_dense(n, nullptr);
  for (size_t i = 0; i < n; ++i) {
    if (specs[i].baked) continue;
    llvm::Value* dense_i = b_.getTrue();
    llvm::Value* scalar_i = b_.getTrue();
    for (size_t d = 0; d < r; ++d) {
      llvm::Value* unit = b_.CreateICmpEQ(dims[d], I64(1));
      dense_i = b_.CreateAnd(dense_i, b_.CreateOr(unit, b_.CreateICmpEQ(strides[i][d], dense[d])));
      scalar_i = b_.CreateAnd(scalar_i, b_.CreateOr(unit, b_.CreateICmpEQ(strides[i][d], I64(0))));
    }
    is_dense[i] = dense_i;
    flat = b_.CreateAnd(flat, b_.CreateOr(dense_i, scalar_i));
  }
  input_inner_stride_.assign(n, nullptr);
  for (size_t i = 0; i < n; ++i) {
    if (specs[i].baked) continue;
    llvm::Value* inner = r > 0 ? strides[i][r - 1] : I64(0);
    llvm::Value* flat_stride = b_.CreateSelect(is_dense[i], I64(1), I64(0));
    input_inner_stride_[i] = b_.CreateSelect(flat, flat_stride, inner, "inner_stride" + std::to_string(i));
  }

  // The version: with k loaded inputs, k <= kMaxVersionedInputs, bit j of
  // `version` says loaded input j is splatted (stride 0) rather than loaded
  // contiguously (stride 1), and 2^k is the gather version. Above that,
  // 0 is all-contiguous and 1 gather.
  std::vector<size_t> loaded;
  for (size_t i = 0; i < n; ++i) {
    if (!specs[i].baked) loaded.push_back(i);
  }
  const bool all_versions = loaded.size() <= static_cast<size_t>(kMaxVersionedInputs);
  llvm::Value* unit_strides = b_.getTrue();
  llvm::Value* bits = I64(0);
  for (size_t j = 0; j < loaded.size(); ++j) {
    llvm::Value* s = input_inner_stride_[loaded[j]];
    llvm::Value* zero_stride = b_.CreateICmpEQ(s, I64(0));
    if (all_versions) {
      unit_strides = b_.CreateAnd(unit_strides, b_.CreateOr(zero_stride, b_.CreateICmpEQ(s, I64(1))));
      bits = b_.CreateOr(bits, b_.CreateShl(b_.CreateZExt(zero_stride, i64_), I64(static_cast<int64_t>(j))));
    } else {
      unit_strides = b_.CreateAnd(unit_strides, b_.CreateICmpEQ(s, I64(1)));
    }
  }
  const int64_t gather_version = all_versions ? int64_t{1} << loaded.size() : 1;
  llvm::Value* version = b_.CreateSelect(unit_strides, bits, I64(gather_version), "version");

  llvm::Value* num_rows_run = b_.CreateSub(row_end, row_begin);
  llvm::Value* seg_len = b_.CreateSelect(flat, b_.CreateMul(num_rows_run, row_len), row_len, "seg_len");
  llvm::Value* num_segs = b_.CreateSelect(flat, I64(1), num_rows_run, "num_segs");

  // The outer index of row_begin, by division once per call; the rows
  // after it advance an odometer. Only the outer dims [0, R-1) count: the
  // row itself starts at column 0.
  {
    llvm::Value* rest = row_begin;
    for (size_t d = idx_slot.size(); d-- > 0;) {
      llvm::Value* idx = rest;
      if (d > 0) {
        idx = b_.CreateURem(rest, dims[d]);
        rest = b_.CreateUDiv(rest, dims[d]);
      }
      b_.CreateStore(idx, idx_slot[d]);
      for (size_t i : loaded) {
        llvm::Value* term = b_.CreateMul(idx, strides[i][d]);
        llvm::Value* prev = d + 1 == idx_slot.size() ? I64(0) : b_.CreateLoad(i64_, off_slot[i]);
        b_.CreateStore(b_.CreateAdd(prev, term), off_slot[i]);
      }
    }
    if (idx_slot.empty()) {
      for (size_t i : loaded) b_.CreateStore(I64(0), off_slot[i]);
    }
  }
  b_.CreateStore(b_.CreateMul(row_begin, row_len), out_off_slot);
  b_.CreateStore(I64(0), seg_slot);
  llvm::SmallVector<uint64_t, 16> iota;
  for (int l = 0; l < lanes_; ++l) iota.push_back(static_cast<uint64_t>(l));
  b_.CreateBr(seg_body);

  // seg_body: one segment (a row, or all rows when flat): its pointers,
  // then the chosen version of the inner loop.
  b_.SetInsertPoint(seg_body);
  iota_ = llvm::ConstantDataVector::get(ctx_, llvm::ArrayRef<uint64_t>(iota));
  row_len_ = seg_len;
  input_row_ptr_.assign(n, nullptr);
  for (size_t i : loaded) {
    llvm::Value* off = b_.CreateLoad(i64_, off_slot[i]);
    input_row_ptr_[i] = b_.CreateGEP(ops_.MemElemTy(specs[i].kind), input_base[i], off);
  }
  output_row_ptr_.clear();
  {
    llvm::Value* out_off = b_.CreateLoad(i64_, out_off_slot);
    for (size_t k = 0; k < output_base.size(); ++k) {
      output_row_ptr_.push_back(b_.CreateInBoundsGEP(ops_.MemElemTy(output_kinds_[k]), output_base[k], out_off));
    }
  }
  std::vector<std::pair<int64_t, std::vector<Access>>> versions;
  if (all_versions) {
    for (int64_t v = 0; v < gather_version; ++v) {
      std::vector<Access> access(n, Access::kContiguous);
      for (size_t j = 0; j < loaded.size(); ++j) {
        if ((v >> j) & 1) access[loaded[j]] = Access::kSplat;
      }
      versions.emplace_back(v, std::move(access));
    }
  } else {
    versions.emplace_back(0, std::vector<Access>(n, Access::kContiguous));
  }
  versions.emplace_back(gather_version, std::vector<Access>(n, Access::kGather));
  llvm::BasicBlock* gather_block = llvm::BasicBlock::Create(ctx_, "version_gather", fn, seg_latch);
  llvm::SwitchInst* sw = b_.CreateSwitch(version, gather_block, static_cast<unsigned>(versions.size() - 1));
  for (const auto& [id, access] : versions) {
    llvm::BasicBlock* block = gather_block;
    if (id != gather_version) {
      block = llvm::BasicBlock::Create(ctx_, "version" + std::to_string(id), fn, gather_block);
      sw->addCase(llvm::ConstantInt::get(llvm::cast<llvm::IntegerType>(i64_), id), block);
    }
    b_.SetInsertPoint(block);
    KILN_RETURN_IF_ERROR(EmitVersion(access, seg_latch));
  }

  // seg_latch: next segment. The odometer carries from the innermost
  // outer dim outwards; each step moves every input's offset by that dim's
  // stride (and back by extent * stride on a carry).
  b_.SetInsertPoint(seg_latch);
  llvm::Value* seg_next = b_.CreateAdd(b_.CreateLoad(i64_, seg_slot), I64(1));
  b_.CreateStore(seg_next, seg_slot);
  b_.CreateStore(b_.CreateAdd(b_.CreateLoad(i64_, out_off_slot), seg_len), out_off_slot);
  llvm::BasicBlock* advance = llvm::BasicBlock::Create(ctx_, "advance", fn, exit);
  b_.CreateCondBr(b_.CreateICmpSLT(seg_next, num_segs), advance, exit);
  b_.SetInsertPoint(advance);
  for (size_t d = idx_slot.size(); d-- > 0;) {
    llvm::Value* idx = b_.CreateAdd(b_.CreateLoad(i64_, idx_slot[d]), I64(1));
    for (size_t i : loaded) {
      b_.CreateStore(b_.CreateAdd(b_.CreateLoad(i64_, off_slot[i]), strides[i][d]), off_slot[i]);
    }
    if (d == 0) {
      b_.CreateStore(idx, idx_slot[d]);
      break;
    }
    llvm::BasicBlock* no_carry = llvm::BasicBlock::Create(ctx_, "no_carry", fn, exit);
    llvm::BasicBlock* carry = llvm::BasicBlock::Create(ctx_, "carry", fn, exit);
    b_.CreateCondBr(b_.CreateICmpSLT(idx, dims[d]), no_carry, carry);
    b_.SetInsertPoint(no_carry);
    b_.CreateStore(idx, idx_slot[d]);
    b_.CreateBr(seg_body);
    b_.SetInsertPoint(carry);
    b_.CreateStore(I64(0), idx_slot[d]);
    for (size_t i : loaded) {
      llvm::Value* back = b_.CreateMul(dims[d], strides[i][d]);
      b_.CreateStore(b_.CreateSub(b_.CreateLoad(i64_, off_slot[i]), back), off_slot[i]);
    }
  }
  b_.CreateBr(seg_body);

  b_.SetInsertPoint(exit);
  b_.CreateRetVoid();
  return Status::Ok();
}

Status GenericEmitter::EmitVersion(const std::vector<Access>& access, llvm::BasicBlock* done) {
  const std::vector<InputSpec>& specs = *specs_;
  llvm::Function* fn = fn_;
  // Per-row values of this version: splats are loaded here rather than in
  // the loop, where a possible alias with the outputs would keep LLVM from
  // hoisting them.
  splat_.assign(specs.size(), nullptr);
  stride_vec_.assign(specs.size(), nullptr);
  for (size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].baked) continue;
    if (access[i] == Access::kSplat) splat_[i] = ops_.LoadSplat(specs[i].kind, input_row_ptr_[i]);
    if (access[i] == Access::kGather) stride_vec_[i] = I64Vec(input_inner_stride_[i]);
  }
  llvm::BasicBlock* pre = b_.GetInsertBlock();
  llvm::BasicBlock* vec_body = llvm::BasicBlock::Create(ctx_, "vec_body", fn, done);
  llvm::BasicBlock* tail_check = llvm::BasicBlock::Create(ctx_, "tail_check", fn, done);
  llvm::BasicBlock* tail = llvm::BasicBlock::Create(ctx_, "tail", fn, done);
  // lanes_ is a power of two.
  llvm::Value* full_end = b_.CreateAnd(row_len_, I64(~static_cast<int64_t>(lanes_ - 1)), "full_end");
  b_.CreateCondBr(b_.CreateICmpSGT(full_end, I64(0)), vec_body, tail_check);

  // vec_body: for (col = 0; col < full_end; col += lanes)
  b_.SetInsertPoint(vec_body);
  llvm::PHINode* col = b_.CreatePHI(i64_, 2, "col");
  col->addIncoming(I64(0), pre);
  KILN_RETURN_IF_ERROR(EmitBody(access, col, nullptr));
  llvm::Value* next = b_.CreateAdd(col, I64(lanes_), "col_next", true, true);
  col->addIncoming(next, b_.GetInsertBlock());
  llvm::BasicBlock* vec_end = b_.GetInsertBlock();
  b_.CreateCondBr(b_.CreateICmpSLT(next, full_end), vec_body, tail_check);

  // tail: the last partial vector with masked accesses.
  b_.SetInsertPoint(tail_check);
  llvm::PHINode* tail_col = b_.CreatePHI(i64_, 2, "tail_col");
  tail_col->addIncoming(I64(0), pre);
  tail_col->addIncoming(next, vec_end);
  b_.CreateCondBr(b_.CreateICmpSLT(tail_col, row_len_), tail, done);
  b_.SetInsertPoint(tail);
  llvm::Value* lane_col = b_.CreateAdd(I64Vec(tail_col), iota_);
  llvm::Value* mask = b_.CreateICmpSLT(lane_col, I64Vec(row_len_), "tail_mask");
  KILN_RETURN_IF_ERROR(EmitBody(access, tail_col, mask));
  b_.CreateBr(done);
  return Status::Ok();
}

Status GenericEmitter::EmitBody(const std::vector<Access>& access, llvm::Value* col, llvm::Value* mask) {
  const std::vector<InputSpec>& specs = *specs_;
  std::vector<Operand> inputs(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const InputSpec& spec = specs[i];
    if (spec.baked) {
      inputs[i] = ops_.Immediate(spec);
      continue;
    }
    llvm::Value* v = nullptr;
    switch (access[i]) {
      case Access::kContiguous:
        v = ops_.LoadVector(spec.kind, b_.CreateGEP(ops_.MemElemTy(spec.kind), input_row_ptr_[i], col), mask);
        break;
      case Access::kSplat: v = splat_[i]; break;
      case Access::kGather: {
        llvm::Value* indices = b_.CreateMul(b_.CreateAdd(I64Vec(col), iota_), stride_vec_[i]);
        v = ops_.Gather(spec.kind, input_row_ptr_[i], indices, mask);
        break;
      }
    }
    inputs[i] = Operand{v, spec.kind, std::nullopt};
  }
  KILN_ASSIGN_OR_RETURN(std::vector<Operand> outputs, ops_.EmitOps(inputs));
  for (size_t k = 0; k < outputs.size(); ++k) {
    llvm::Value* ptr = b_.CreateInBoundsGEP(ops_.MemElemTy(output_kinds_[k]), output_row_ptr_[k], col);
    ops_.StoreVector(output_kinds_[k], outputs[k].v, ptr, mask);
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<CompiledRegion>> CompileElementwiseRegionGeneric(JitCompiler& compiler,
                                                                          const graph::Graph& graph,
                                                                          const graph::Region& region,
                                                                          int domain_rank) {
  const auto start = std::chrono::steady_clock::now();
  if (domain_rank < 0 || domain_rank > kMaxGenericRank) {
    return InvalidArgument("jit: generic domain rank ", domain_rank, " is outside [0, ", kMaxGenericRank, "]");
  }
  KILN_ASSIGN_OR_RETURN(std::vector<InputSpec> specs, ClassifyInputs(graph, region));
  KILN_RETURN_IF_ERROR(CheckOutputsCoverDomain(graph, region, specs));

  const std::string name = "kiln_region" + std::to_string(region.id) + "_generic_r" + std::to_string(domain_rank) +
                           "_" + std::to_string(compiler.NextSerial());
  KILN_ASSIGN_OR_RETURN(internal::RegionCode code, internal::EmitAndCompile(compiler, name, [&](llvm::Module& module) {
                          GenericEmitter emitter(graph, region, module, compiler.f32_vector_lanes(),
                                                 compiler.bit_exact());
                          return emitter.Emit(name, domain_rank, specs, compiler.cpu_name(), compiler.cpu_features());
                        }));

  CompiledRegion::Info info;
  info.name = code.code->symbol();
  info.reused_code = code.reused;
  info.from_disk_cache = code.from_disk;
  info.generic = true;
  info.domain_rank = domain_rank;
  for (const InputSpec& s : specs) info.input_baked.push_back(s.baked);
  info.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  auto compiled = std::make_unique<CompiledRegion>(std::move(code.code), std::move(info));
  Log().debug("jit: {} {} for region {} ({} nodes, generic rank {}) in {:.2f} ms, {} code bytes",
              compiled->reused_code()       ? "reused"
              : compiled->from_disk_cache() ? "linked from cache"
                                            : "compiled",
              compiled->name(), region.id, region.nodes.size(), domain_rank, compiled->compile_ms(),
              compiled->code_bytes());
  return compiled;
}

Status FillGenericParams(const std::vector<Dims>& input_dims, int domain_rank, std::vector<int64_t>& params,
                         Dims& domain_dims) {
  if (domain_rank < 0 || domain_rank > kMaxGenericRank) {
    return InvalidArgument("jit: generic domain rank ", domain_rank, " is outside [0, ", kMaxGenericRank, "]");
  }
  const auto r = static_cast<size_t>(domain_rank);
  Dims domain(r, 1);
  for (size_t i = 0; i < input_dims.size(); ++i) {
    const Dims& dims = input_dims[i];
    if (dims.size() > r) {
      return InvalidArgument("jit: input ", i, " has dims ", DimsToString(dims), " of rank above the generic code's ",
                             domain_rank);
    }
    for (int64_t d : dims) {
      if (d < 0) return InvalidArgument("jit: input ", i, " has a negative dim in ", DimsToString(dims));
    }
    KILN_RETURN_IF_ERROR(CheckedNumElements(dims, DType::kFloat32).status());
    KILN_ASSIGN_OR_RETURN(domain, internal::Broadcast(domain, dims));
  }
  KILN_RETURN_IF_ERROR(CheckedNumElements(domain, DType::kFloat32).status());

  // Validated: from here on only the outputs are written.
  params.assign(r + input_dims.size() * r, 0);
  for (size_t d = 0; d < r; ++d) params[d] = domain[d];
  for (size_t i = 0; i < input_dims.size(); ++i) {
    const Dims& dims = input_dims[i];
    const size_t lead = r - dims.size();
    int64_t stride = 1;
    for (size_t k = dims.size(); k-- > 0;) {
      // Broadcast dims read the same element whatever the index.
      params[r + i * r + lead + k] = dims[k] == 1 ? 0 : stride;
      stride *= dims[k];
    }
  }
  domain_dims = std::move(domain);
  return Status::Ok();
}

}  // namespace kiln::jit
