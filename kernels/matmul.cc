// MatMul (opset 1+, float32) with numpy semantics on oneDNN's matmul
// primitive: 1-D operands are promoted (and the added dim dropped from the
// result), batch dims broadcast. When B has no real batch, A's batch dims are
// folded into M, which turns the whole op into one 2-D GEMM.
#include <algorithm>
#include <memory>
#include <utility>

#include "kernels/dnnl_context.h"
#include "kernels/dnnl_kernels.h"

namespace kiln::kernels {
namespace {

constexpr const char* kOp = "MatMul";

class MatMulKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    if (a == nullptr || b == nullptr) return InvalidArgument(kOp, ": A and B are required");
    if (a->dtype() != DType::kFloat32 || b->dtype() != DType::kFloat32) {
      return Unsupported(kOp, ": only float32 is supported, got ", DTypeName(a->dtype()), " x ",
                         DTypeName(b->dtype()));
    }
    if (a->rank() < 1 || b->rank() < 1) {
      return InvalidArgument(kOp, ": operands must have rank >= 1, got ", DimsToString(a->dims()), " x ",
                             DimsToString(b->dims()));
    }
    std::vector<int64_t> key;
    AppendKey(key, a->dims());
    AppendKey(key, b->dims());
    return GuardDnnl(kOp, [&]() -> Status {
      KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Plan> plan,
                            cache_.GetOrCreate(key, [&] { return MakePlan(a->dims(), b->dims()); }));
      KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kFloat32, plan->out_dims));
      if (y->num_elements() == 0) return Status::Ok();
      if (plan->zero_k) {
        std::fill(y->data<float>(), y->data<float>() + y->num_elements(), 0.0f);
        return Status::Ok();
      }
      ExecuteDnnl(ctx, plan->primitive, plan->pd,
                  {{DNNL_ARG_SRC, WrapMemory(plan->pd.src_desc(), a->raw_data())},
                   {DNNL_ARG_WEIGHTS, WrapMemory(plan->pd.weights_desc(), b->raw_data())},
                   {DNNL_ARG_DST, WrapMemory(plan->pd.dst_desc(), y->raw_data())}});
      return Status::Ok();
    });
  }

 private:
  struct Plan {
    Dims out_dims;
    bool zero_k = false;  // K == 0: the result is all zeros
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul primitive;
  };

  static StatusOr<std::shared_ptr<const Plan>> MakePlan(const Dims& a_in, const Dims& b_in) {
    Dims a = a_in, b = b_in;
    const bool a_vector = a.size() == 1, b_vector = b.size() == 1;
    if (a_vector) a.insert(a.begin(), 1);
    if (b_vector) b.push_back(1);
    const int64_t m = a[a.size() - 2], k = a.back(), n = b.back();
    if (b[b.size() - 2] != k) {
      return InvalidArgument(kOp, ": inner dimensions differ: A ", DimsToString(a_in), " x B ",
                             DimsToString(b_in));
    }
    // Broadcast the batch dims (right-aligned, numpy rules).
    const size_t batch_rank = std::max(a.size(), b.size()) - 2;
    Dims a_batch(batch_rank, 1), b_batch(batch_rank, 1), out_batch(batch_rank, 1);
    std::copy(a.begin(), a.end() - 2, a_batch.end() - static_cast<std::ptrdiff_t>(a.size() - 2));
    std::copy(b.begin(), b.end() - 2, b_batch.end() - static_cast<std::ptrdiff_t>(b.size() - 2));
    for (size_t i = 0; i < batch_rank; ++i) {
      if (a_batch[i] != b_batch[i] && a_batch[i] != 1 && b_batch[i] != 1) {
        return InvalidArgument(kOp, ": batch dims do not broadcast: A ", DimsToString(a_in), " x B ",
                               DimsToString(b_in));
      }
      out_batch[i] = a_batch[i] == 1 ? b_batch[i] : a_batch[i];
    }
    auto plan = std::make_shared<Plan>();
    plan->out_dims = out_batch;
    if (!a_vector) plan->out_dims.push_back(m);
    if (!b_vector) plan->out_dims.push_back(n);
    plan->zero_k = k == 0;
    if (HasZeroDim(plan->out_dims) || plan->zero_k) return plan;

    int64_t b_batch_size = 1, a_batch_size = 1;
    for (size_t i = 0; i < batch_rank; ++i) {
      b_batch_size *= b_batch[i];
      a_batch_size *= a_batch[i];
    }
    Dims a_md, b_md, y_md;
    if (b_batch_size == 1) {
      // One weight matrix for every batch: a single [batch*M, K] x [K, N].
      a_md = {a_batch_size * m, k};
      b_md = {k, n};
      y_md = {a_batch_size * m, n};
    } else {
      if (batch_rank + 2 > DNNL_MAX_NDIMS) {
        return Unsupported(kOp, ": more than ", DNNL_MAX_NDIMS - 2, " batch dims");
      }
      a_md = a_batch;
      a_md.insert(a_md.end(), {m, k});
      b_md = b_batch;
      b_md.insert(b_md.end(), {k, n});
      y_md = out_batch;
      y_md.insert(y_md.end(), {m, n});
    }
    dnnl::matmul::desc desc(PlainF32Desc(a_md), PlainF32Desc(b_md), PlainF32Desc(y_md));
    plan->pd = dnnl::matmul::primitive_desc(desc, UserScratchpadAttr(), DnnlEngine());
    plan->primitive = dnnl::matmul(plan->pd);
    return std::shared_ptr<const Plan>(std::move(plan));
  }

  ShapeCache<Plan> cache_;
};

}  // namespace

StatusOr<std::unique_ptr<OpKernel>> CreateMatMulKernel(const graph::Node&) {
  return std::unique_ptr<OpKernel>(new MatMulKernel());
}

}  // namespace kiln::kernels
