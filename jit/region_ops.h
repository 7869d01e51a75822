// Internal to jit/: what the code generators share. The specialized
// (elementwise_codegen.cc) and shape-generic (generic_codegen.cc)
// elementwise generators emit the same vector body for a region — the chain
// of ops on one vector of every input — and differ only in the loop nest and
// addressing around it, so the op emission and the vector loads and stores
// live here once; the row-reduction generator (row_reduction_codegen.cc)
// uses the per-node emission (OpEmitter::EmitNode) for its elementwise
// members. All three declare their entry and unpack its arguments with
// EmitEntryPrologue. The LLVM-free input classification is in
// region_inputs.h.
#pragma once

#include <llvm/IR/IRBuilder.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph/fusible_ops.h"
#include "graph/graph.h"
#include "graph/region.h"
#include "jit/jit_compiler.h"
#include "jit/region_inputs.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::jit::internal {

// A value in registers with its kind and, for immediates, its value (Pow
// specializes on constant exponents).
struct Operand {
  llvm::Value* v = nullptr;
  Kind kind = Kind::kFloat;
  std::optional<double> immediate;
};

// Emits vectors of `lanes` elements through `b`. Holds no IR state of its
// own, so one emitter may generate the body any number of times (the
// generic generator emits it once per loop version). With `bit_exact`, each
// op is computed as the interpreter's kernel computes it (bit_exact_ops.cc),
// and ops that cannot be are refused.
class OpEmitter {
 public:
  OpEmitter(const graph::Graph& graph, const graph::Region& region, llvm::IRBuilderBase& b, int lanes,
            bool bit_exact = false);

  llvm::Type* VecTy(Kind kind) const;
  // In memory: float, or one byte per bool.
  llvm::Type* MemElemTy(Kind kind) const;
  int lanes() const { return lanes_; }

  // The vector operand of a baked input.
  Operand Immediate(const InputSpec& spec) const;
  // `lanes` consecutive elements at `ptr`; `mask` (null: all lanes) limits
  // the access to the live lanes, others read as 0.
  llvm::Value* LoadVector(Kind kind, llvm::Value* ptr, llvm::Value* mask);
  // One element at `ptr` broadcast to every lane.
  llvm::Value* LoadSplat(Kind kind, llvm::Value* ptr);
  // Elements at ptr[indices[l]] for the live lanes of `mask` (null: all).
  llvm::Value* Gather(Kind kind, llvm::Value* ptr, llvm::Value* indices, llvm::Value* mask);
  void StoreVector(Kind kind, llvm::Value* v, llvm::Value* ptr, llvm::Value* mask);

  // Computes every node of the region, in order, from `inputs` (one operand
  // per region input) and returns the values of the region outputs.
  // kUnsupported names an op, attribute or dtype the generator does not
  // handle; kInvalidModel/kInvalidArgument a malformed region.
  StatusOr<std::vector<Operand>> EmitOps(const std::vector<Operand>& inputs);

  // Computes one elementwise node from its operands (nullopt for an omitted
  // optional input). Errors as for EmitOps. The row-reduction generator
  // calls this directly, since it evaluates a region's nodes on demand.
  StatusOr<Operand> EmitNode(const graph::Node& node, const std::vector<std::optional<Operand>>& in);

  // A float vector with every lane `v`.
  llvm::Value* FConst(double v) const;

 private:
  llvm::Value* Intr(llvm::Intrinsic::ID id, llvm::Value* x) { return b_.CreateIntrinsic(id, {x->getType()}, {x}); }
  llvm::Value* Clamp01(llvm::Value* x);
  // EmitNode's bit-exact mode, after its arity and dtype checks.
  StatusOr<Operand> EmitBitExact(const graph::Node& node, graph::FusibleOp op,
                                 const std::vector<std::optional<Operand>>& in);

  const graph::Graph& graph_;
  const graph::Region& region_;
  llvm::IRBuilderBase& b_;
  int lanes_;
  bool bit_exact_;
};

// True when OpEmitter's ordinary emission of `op` computes exactly what the
// interpreter's kernel computes, bit for bit (bit_exact_ops.cc).
bool DefaultFormIsBitExact(graph::FusibleOp op);

// Declares the region's entry function `name` in `module` with
// CompiledRegion's ABI: EntryFn (inputs, outputs, row_begin, row_end), or
// GenericEntryFn with a fifth `params` argument when `generic`; tuned for
// `cpu`/`features`, nounwind, its pointer arguments read-only and not
// captured. The caller emits the body.
llvm::Function* DeclareEntry(llvm::Module& module, const std::string& name, bool generic, const std::string& cpu,
                             const std::string& features);

// An entry function (DeclareEntry) with its arguments unpacked in its first
// block.
struct EntryPrologue {
  llvm::Function* fn = nullptr;
  llvm::BasicBlock* entry = nullptr;
  llvm::Value* params = nullptr;      // GenericEntryFn's params argument; null for EntryFn
  std::vector<llvm::Value*> inputs;   // per region input, its buffer; null for a baked input (never read)
  std::vector<llvm::Value*> outputs;  // per region output, its buffer
  llvm::Value* row_begin = nullptr;   // max(row_begin, 0)
  llvm::Value* row_end = nullptr;     // min(row_end, rows)
};

// Declares the entry `name` in `module` (DeclareEntry's arguments) and
// emits its "entry" block through `b`: the number of rows, from `rows`
// (called there with the params argument, null without `generic`, so that
// generic code may load it); the row range clamped to [0, rows); and the
// buffer pointers of the inputs not `baked` (one flag per region input) and
// of `num_outputs` outputs. Leaves `b` at the end of the entry block, which
// the caller terminates.
EntryPrologue EmitEntryPrologue(llvm::Module& module, llvm::IRBuilderBase& b, const std::string& name, bool generic,
                                const std::string& cpu, const std::string& features, const std::vector<bool>& baked,
                                size_t num_outputs, const std::function<llvm::Value*(llvm::Value* params)>& rows);

// Code for a region: compiled now, or reused from the JIT's CodeCache.
struct RegionCode {
  std::shared_ptr<const JitCode> code;
  bool reused = false;
  // Linked from the PersistentCodeCache: no optimisation or code generation.
  bool from_disk = false;
};

// The key under which the CodeCache and the PersistentCodeCache keep the
// code of `module`, whose entry function is `name`: the module's bitcode with
// the two names that differ between otherwise identical regions (the
// module's and the entry's, both `name`) replaced by fixed ones; `module` is
// left as it was. Everything else that decides the machine code (ops,
// constants, shapes, target attributes) is in the bitcode, so two keys are
// equal exactly when the optimiser and code generator would see the same
// input. Bitcode rather than the printed IR: writing it takes a small part
// of the time (printing spells out every element of every vector constant
// in decimal) and the key is several times shorter.
std::string ModuleCacheKey(llvm::Module& module, const std::string& name);

// Creates a module named `name` for the JIT's data layout and target and
// lets `emit` fill it (in a fresh LLVMContext) with the entry function
// `name`. When the compiler's CodeCache holds live code for the same module
// (ModuleCacheKey), returns that; otherwise compiles the module and
// records it. Nothing stays in the JIT on failure.
StatusOr<RegionCode> EmitAndCompile(JitCompiler& compiler, const std::string& name,
                                    const std::function<Status(llvm::Module&)>& emit);

}  // namespace kiln::jit::internal
