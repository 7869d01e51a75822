// The matrix products of kiln's recurrent kernel (recurrent.cc) on oneDNN's
// matmul: C [m, n] = A [m, k] * B^T (+ bias), with B given as [n, k]
// row-major, which is how ONNX stores W and R. oneDNN generates code for the
// host (AVX-512 where there is one, which kiln's compiled-in x86-64-v3 GEMM
// cannot use) and picks a weight layout per m: the input projection of all
// steps (m = seq * batch) and one step's product (m = batch) want different
// blockings. A graph-constant B is reordered into that layout once per plan.
#pragma once

#include <cstdint>
#include <memory>

#include "kernels/dnnl_context.h"
#include "kernels/kernel.h"

namespace kiln::kernels {

class DnnlWeightGemm {
 public:
  struct Plan;

  // A product bound to fixed operand buffers for the span of one kernel
  // call: a recurrence runs the same step product once per time step, so
  // its memory objects, stream and scratchpad are made once.
  class Bound {
   public:
    ~Bound();
    Bound(const Bound&) = delete;
    Bound& operator=(const Bound&) = delete;
    // C = A * B^T (+ bias) on `threads` OpenMP threads (C += ... when
    // bound with `accumulate`).
    Status Run() const;
    // Run with C at `c` instead of the bound C, from now on: another
    // contiguous [m, n] buffer, such as the next time step's rows. Not
    // thread-safe: a binding belongs to one kernel call.
    Status RunInto(float* c) const;

   private:
    friend class DnnlWeightGemm;
    Bound();
    struct State;
    std::unique_ptr<State> state_;
  };

  explicit DnnlWeightGemm(const char* op) : op_(op) {}
  ~DnnlWeightGemm();

  // Binds A [m, k] (contiguous), B [n, k] (contiguous), `bias` (n floats,
  // or null) and C [m, n] (contiguous); they must outlive the result. With
  // `b_constant` (a graph constant, immutable at a fixed address) B's
  // reordered copy is kept for later calls; otherwise it is reordered for
  // this binding alone. `threads` is the OpenMP team Run uses. With
  // `accumulate` the product is added to what C holds. Thread-safe:
  // concurrent calls bind separately. Errors from oneDNN come back as a
  // Status (kUnsupported when it has no implementation).
  StatusOr<std::unique_ptr<Bound>> Bind(const KernelContext& ctx, const float* a, int64_t m, const float* b, int64_t n,
                                        int64_t k, bool b_constant, const float* bias, float* c, int threads,
                                        bool accumulate = false) const;

  // Builds the plan a Bind with these m, n, k, bias (given or not),
  // `threads` and `accumulate` uses and, B being a graph constant, its
  // reordered copy of B, so that such a Bind creates and reorders nothing
  // (OpKernel::TakePreparation's background work). The reorder runs on the
  // calling thread alone.
  Status Prepare(const float* b, int64_t m, int64_t n, int64_t k, bool has_bias, int threads, bool accumulate) const;

  // Drops every plan and reordered B (bindings made before keep theirs), to
  // give back memory that runs no longer need.
  void Release() const;

 private:
  StatusOr<std::shared_ptr<const Plan>> GetPlan(int64_t m, int64_t n, int64_t k, bool has_bias, bool accumulate,
                                                int threads) const;
  // B in the plan's layout: kept on the plan for a constant B (reordered
  // only when it is another B than last time), else reordered for this call.
  dnnl::memory Weights(const KernelContext& ctx, const Plan& plan, const float* b, bool b_constant) const;

  const char* op_;
  ShapeCache<Plan> cache_;
};

}  // namespace kiln::kernels
