// The interpreter's kernel interface. A kernel is created once per node at
// session creation (its "prepare" step: parse attributes, check what can be
// checked without shapes) and then computed many times, possibly from many
// threads at once: Compute is const, and any cache a kernel keeps (a oneDNN
// primitive per shape, say) must be guarded by the kernel itself.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::kernels {

// Splits [0, n) into chunks of at least `grain` iterations and runs
// fn(begin, end) on each, possibly in parallel; returns when all are done.
// The runtime provides it (its intra-op thread pool); kernels never create
// threads of their own.
class ParallelRunner {
 public:
  virtual ~ParallelRunner() = default;
  virtual void For(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) const = 0;
  virtual int num_threads() const = 0;
};

// Runs everything inline on the calling thread.
class SerialRunner final : public ParallelRunner {
 public:
  void For(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) const override {
    if (n > 0) fn(0, n);
  }
  int num_threads() const override { return 1; }
};

// Gives a kernel its outputs' memory. The interpreter backs it with the
// memory plan; tests back it with plain allocation.
class OutputAllocator {
 public:
  virtual ~OutputAllocator() = default;
  virtual StatusOr<Tensor> AllocateOutput(int index, DType dtype, const Dims& dims) = 0;
};

// One invocation of a kernel: its inputs, a way to allocate outputs, and the
// thread pool.
class KernelContext {
 public:
  // `constant_inputs`, when given, is parallel to `inputs` and marks the
  // inputs that are graph constants: immutable, at a fixed address for the
  // session's life, so a kernel may cache what it derives from them.
  KernelContext(const std::vector<const Tensor*>& inputs, std::vector<Tensor>& outputs, OutputAllocator& allocator,
                const ParallelRunner& parallel, const std::vector<bool>* constant_inputs = nullptr)
      : inputs_(inputs),
        outputs_(outputs),
        allocator_(allocator),
        parallel_(parallel),
        constant_inputs_(constant_inputs) {}

  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  // Null when the optional input is absent (omitted or past the end).
  const Tensor* input(int i) const { return i < num_inputs() ? inputs_[static_cast<size_t>(i)] : nullptr; }
  // Allocates output `i` with the given dtype and dims and returns it. The
  // memory is uninitialised. Fails on overflowing dims or allocation failure.
  StatusOr<Tensor*> Output(int i, DType dtype, const Dims& dims);
  // Sets output `i` to a value the kernel made without the allocator: a
  // sequence or None (kiln/sequence.h), which Output cannot allocate.
  Status SetOutput(int i, Tensor value);
  // The run's allocation hook (SessionOptions::before_allocate_hook), for
  // memory a kernel allocates itself rather than through Output (sequence
  // elements); null for none. Not owned.
  void set_allocation_hook(const std::function<Status(size_t bytes)>* hook) { allocation_hook_ = hook; }
  // Ok when there is no hook or it admits `bytes` more; else its refusal.
  Status AdmitAllocation(size_t bytes) const {
    return allocation_hook_ != nullptr && *allocation_hook_ ? (*allocation_hook_)(bytes) : Status::Ok();
  }
  const ParallelRunner& parallel() const { return parallel_; }
  // True when input `i` is a graph constant (see the constructor).
  bool input_is_constant(int i) const {
    return constant_inputs_ != nullptr && i >= 0 && static_cast<size_t>(i) < constant_inputs_->size() &&
           (*constant_inputs_)[static_cast<size_t>(i)];
  }

 private:
  const std::vector<const Tensor*>& inputs_;
  std::vector<Tensor>& outputs_;
  OutputAllocator& allocator_;
  const ParallelRunner& parallel_;
  const std::vector<bool>* constant_inputs_;
  const std::function<Status(size_t bytes)>* allocation_hook_ = nullptr;
};

class OpKernel {
 public:
  virtual ~OpKernel() = default;
  // Computes the outputs from the inputs. Must validate input dtypes and
  // shapes and return a clear error (never crash) on anything it cannot
  // handle; errors name the op and what is wrong (the interpreter adds the
  // node name).
  virtual Status Compute(KernelContext& ctx) const = 0;

  // Work that builds, from the node's constant inputs and static shapes,
  // state Compute would otherwise build on its first call (a packed weight,
  // a oneDNN primitive), for the runtime to run on a background thread;
  // empty when there is none. Both vectors are parallel to the node's
  // inputs: `constant_inputs` holds the graph constant or null for an input
  // computed at run time; `static_dims` the input's dims when the graph
  // knows them all, else nullopt (also for absent inputs). Called at most
  // once, before any Compute.
  // Once it has returned work, Compute no longer builds that state itself:
  // until the work has run, it computes without it and never waits for it.
  // The results then agree with the prepared path's to float rounding (a
  // packed GEMM's are bit-identical; a convolution or recurrent cell before
  // its oneDNN primitive sums in another order), which is why bitwise tier
  // equivalence waits for all preparation first. The work may run while Compute runs on other
  // threads; the runtime runs it or drops it before the kernel is destroyed.
  virtual std::function<void()> TakePreparation(const std::vector<const Tensor*>& constant_inputs,
                                                const std::vector<std::optional<Dims>>& static_dims) {
    (void)constant_inputs;
    (void)static_dims;
    return {};
  }
};

// Builds a kernel for a node: parses and checks attributes.
using KernelFactory = std::function<StatusOr<std::unique_ptr<OpKernel>>(const graph::Node& node)>;

// end_version of a kernel that serves every opset from its since_version
// on: far beyond any ONNX opset, with headroom left in an int.
inline constexpr int kNoMaxOpset = 1 << 30;

struct KernelDef {
  std::string op_type;
  std::string domain;  // "" = default ONNX domain
  int since_version = 1;
  int end_version = kNoMaxOpset;  // inclusive
  KernelFactory factory;
};

class KernelRegistry {
 public:
  void Register(KernelDef def);

  // The kernel for `node` (op, domain and opset), or kUnsupported naming the
  // op and opset when none is registered, or the factory's error.
  StatusOr<std::unique_ptr<OpKernel>> Create(const graph::Node& node) const;
  bool Supports(const std::string& op_type, const std::string& domain, int opset) const;
  // Every registered op type, sorted; for `kiln info` and docs.
  std::vector<std::string> OpTypes() const;

 private:
  const KernelDef* Find(const std::string& op_type, const std::string& domain, int opset) const;
  std::vector<KernelDef> defs_;
};

// The registry with every kernel kiln ships, built once. The list of kernel
// families lives in registry.cc, in one place, instead of static
// self-registration.
const KernelRegistry& DefaultKernelRegistry();

// A factory for kernels that need no attribute parsing.
template <typename K>
KernelFactory MakeFactory() {
  return [](const graph::Node&) -> StatusOr<std::unique_ptr<OpKernel>> { return std::unique_ptr<OpKernel>(new K()); };
}

}  // namespace kiln::kernels
