#include "kernels/recurrent_gemm.h"

#include <unordered_map>
#include <utility>
#include <vector>

#include <omp.h>

#include "graph/mutex.h"

namespace kiln::kernels {

struct DnnlWeightGemm::Plan {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul primitive;
  dnnl::memory::desc weights_user;
  DnnlReorder weights_reorder;
  // The reordered copy of the last constant B, and where it came from.
  mutable Mutex mu;
  mutable const void* packed_source KILN_GUARDED_BY(mu) = nullptr;
  mutable dnnl::memory packed KILN_GUARDED_BY(mu);
};

struct DnnlWeightGemm::Bound::State {
  const char* op = nullptr;
  std::shared_ptr<const Plan> plan;
  std::unordered_map<int, dnnl::memory> args;
  dnnl::stream stream;
  int threads = 1;
};

DnnlWeightGemm::Bound::Bound() : state_(std::make_unique<State>()) {}
DnnlWeightGemm::Bound::~Bound() = default;
DnnlWeightGemm::~DnnlWeightGemm() = default;

Status DnnlWeightGemm::Bound::Run() const {
  State& s = *state_;
  return GuardDnnl(s.op, [&]() -> Status {
    if (omp_get_max_threads() != s.threads) omp_set_num_threads(s.threads);
    s.plan->primitive.execute(s.stream, s.args);
    s.stream.wait();
    return Status::Ok();
  });
}

Status DnnlWeightGemm::Bound::RunInto(float* c) const {
  State& s = *state_;
  KILN_RETURN_IF_ERROR(GuardDnnl(s.op, [&]() -> Status {
    s.args.at(DNNL_ARG_DST).set_data_handle(c);
    return Status::Ok();
  }));
  return Run();
}

StatusOr<std::shared_ptr<const DnnlWeightGemm::Plan>> DnnlWeightGemm::GetPlan(int64_t m, int64_t n, int64_t k,
                                                                              bool has_bias, bool accumulate,
                                                                              int threads) const {
  const std::vector<int64_t> key = {m, n, k, has_bias, accumulate};
  return cache_.GetOrCreate(key, threads, [&] {
    auto made = std::make_shared<Plan>();
    // B^T [k, n] seen through B [n, k] row-major.
    made->weights_user = StridedF32Desc({k, n}, {1, k});
    dnnl::matmul::desc desc(PlainF32Desc({m, k}), AnyF32Desc({k, n}),
                            has_bias ? PlainF32Desc({1, n}) : dnnl::memory::desc(), PlainF32Desc({m, n}));
    dnnl::primitive_attr attr = UserScratchpadAttr();
    if (accumulate) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    made->pd = dnnl::matmul::primitive_desc(desc, attr, DnnlEngine());
    made->primitive = dnnl::matmul(made->pd);
    made->weights_reorder = MakeReorder(made->weights_user, made->pd.weights_desc());
    return StatusOr<std::shared_ptr<const Plan>>(std::shared_ptr<const Plan>(std::move(made)));
  });
}

dnnl::memory DnnlWeightGemm::Weights(const KernelContext& ctx, const Plan& plan, const float* b,
                                     bool b_constant) const {
  auto pack = [&] {
    dnnl::memory packed(plan.pd.weights_desc(), DnnlEngine());
    ExecuteReorder(ctx, plan.weights_reorder, WrapMemory(plan.weights_user, b), packed);
    return packed;
  };
  if (!b_constant) return pack();
  MutexLock lock(plan.mu);
  if (plan.packed_source != b) {
    plan.packed = pack();
    plan.packed_source = b;
  }
  return plan.packed;
}

namespace {

// A KernelContext for work outside any kernel call (background reorders):
// no inputs, no outputs, one thread.
class NoOutputs final : public OutputAllocator {
 public:
  StatusOr<Tensor> AllocateOutput(int, DType, const Dims&) override {
    return Internal("no outputs outside a kernel call");
  }
};

}  // namespace

Status DnnlWeightGemm::Prepare(const float* b, int64_t m, int64_t n, int64_t k, bool has_bias, int threads,
                               bool accumulate) const {
  return GuardDnnl(op_, [&]() -> Status {
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Plan> plan, GetPlan(m, n, k, has_bias, accumulate, threads));
    const std::vector<const Tensor*> inputs;
    std::vector<Tensor> outputs;
    NoOutputs allocator;
    const SerialRunner serial;
    const KernelContext ctx(inputs, outputs, allocator, serial);
    Weights(ctx, *plan, b, /*b_constant=*/true);
    return Status::Ok();
  });
}

void DnnlWeightGemm::Release() const { cache_.Clear(); }

StatusOr<std::unique_ptr<DnnlWeightGemm::Bound>> DnnlWeightGemm::Bind(const KernelContext& ctx, const float* a,
                                                                      int64_t m, const float* b, int64_t n, int64_t k,
                                                                      bool b_constant, const float* bias, float* c,
                                                                      int threads, bool accumulate) const {
  std::unique_ptr<Bound> bound(new Bound());
  Status status = GuardDnnl(op_, [&]() -> Status {
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Plan> plan, GetPlan(m, n, k, bias != nullptr, accumulate, threads));
    dnnl::memory weights = Weights(ctx, *plan, b, b_constant);
    Bound::State& s = *bound->state_;
    s.op = op_;
    s.threads = threads;
    s.args.emplace(DNNL_ARG_SRC, WrapMemory(plan->pd.src_desc(), a));
    s.args.emplace(DNNL_ARG_WEIGHTS, weights);
    s.args.emplace(DNNL_ARG_DST, WrapMemory(plan->pd.dst_desc(), c));
    if (bias != nullptr)
      s.args.emplace(DNNL_ARG_BIAS, WrapMemory(plan->pd.query_md(dnnl::query::exec_arg_md, DNNL_ARG_BIAS), bias));
    const dnnl::memory::desc scratch = plan->pd.scratchpad_desc();
    if (scratch.get_size() > 0) s.args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratch, DnnlEngine()));
    s.stream = dnnl::stream(DnnlEngine());
    s.plan = std::move(plan);
    return Status::Ok();
  });
  KILN_RETURN_IF_ERROR(status);
  return bound;
}

}  // namespace kiln::kernels
