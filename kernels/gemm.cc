// Gemm (opsets 1-18, float32): Y = alpha * op(A) * op(B) + beta * C, on
// oneDNN's matmul. Transposition is a strided memory descriptor (no copy),
// alpha an output scale, and beta * C is written into Y first and then
// accumulated by a sum post-op. A fused Gemm (FusedMatMul with Gemm's
// attributes, see graph/fuse_epilogues.h) appends, after that sum, the add
// of its residual R (input 3, [M, N]) as a binary post-op and its
// activation as eltwise post-ops. A constant B (a weight) goes through the
// packed GEMM instead (packed_sgemm.h), with the same steps on each tile.
#include <algorithm>
#include <memory>
#include <utility>

#include "graph/fuse_epilogues.h"
#include "kernels/dnnl_context.h"
#include "kernels/dnnl_kernels.h"
#include "kernels/epilogue.h"
#include "kernels/packed_sgemm.h"

namespace kiln::kernels {
namespace {

constexpr const char* kOp = "Gemm";

class GemmKernel final : public OpKernel {
 public:
  // `fused`: a fused Gemm, which may have a residual input.
  GemmKernel(bool trans_a, bool trans_b, float alpha, float beta, Epilogue epilogue, bool fused)
      : trans_a_(trans_a), trans_b_(trans_b), alpha_(alpha), beta_(beta), epilogue_(epilogue), fused_(fused) {}

  // A constant weight that Compute would pack: packed in the background.
  std::function<void()> TakePreparation(const std::vector<const Tensor*>& constant_inputs,
                                        const std::vector<std::optional<Dims>>&) override {
    const Tensor* b = constant_inputs.size() > 1 ? constant_inputs[1] : nullptr;
    if (trans_a_ || b == nullptr || b->dtype() != DType::kFloat32 || b->rank() != 2) return {};
    const int64_t k = trans_b_ ? b->dim(1) : b->dim(0);
    const int64_t n = trans_b_ ? b->dim(0) : b->dim(1);
    if (k <= 0 || n < PackedMatrixB::kMinColumns) return {};
    return packed_b_.DeferPacking(b->data<float>(), k, n, b->dim(1), trans_b_);
  }

  Status Compute(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    const Tensor* c = ctx.input(2);
    const Tensor* r = fused_ ? ctx.input(graph::kFusedResidualInput) : nullptr;
    if (a == nullptr || b == nullptr) return InvalidArgument(kOp, ": A and B are required");
    if (a->dtype() != DType::kFloat32 || b->dtype() != DType::kFloat32 ||
        (c != nullptr && c->dtype() != DType::kFloat32)) {
      return Unsupported(kOp, ": only float32 is supported, got A ", DTypeName(a->dtype()), " B ",
                         DTypeName(b->dtype()));
    }
    if (a->rank() != 2 || b->rank() != 2) {
      return InvalidArgument(kOp, ": A and B must be 2-D, got ", DimsToString(a->dims()), " and ",
                             DimsToString(b->dims()));
    }
    const int64_t m = trans_a_ ? a->dim(1) : a->dim(0);
    const int64_t k = trans_a_ ? a->dim(0) : a->dim(1);
    const int64_t kb = trans_b_ ? b->dim(1) : b->dim(0);
    const int64_t n = trans_b_ ? b->dim(0) : b->dim(1);
    if (k != kb) {
      return InvalidArgument(kOp, ": inner dimensions differ: A ", DimsToString(a->dims()), (trans_a_ ? "^T" : ""),
                             " x B ", DimsToString(b->dims()), (trans_b_ ? "^T" : ""));
    }
    // C broadcasts unidirectionally to [M, N].
    const bool use_c = c != nullptr && beta_ != 0.0f;
    int64_t c_rows = 1, c_cols = 1;
    if (c != nullptr) {
      if (c->rank() > 2) return InvalidArgument(kOp, ": C must have rank <= 2, got ", DimsToString(c->dims()));
      if (c->rank() >= 1) c_cols = c->dim(c->rank() - 1);
      if (c->rank() == 2) c_rows = c->dim(0);
      if ((c_rows != 1 && c_rows != m) || (c_cols != 1 && c_cols != n)) {
        return InvalidArgument(kOp, ": C ", DimsToString(c->dims()), " does not broadcast to [", m, ", ", n, "]");
      }
    }

    if (r != nullptr) KILN_RETURN_IF_ERROR(CheckResidual(kOp, *r, {m, n}));
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kFloat32, {m, n}));
    if (y->num_elements() == 0) return Status::Ok();
    float* out = y->data<float>();
    if (k > 0 && !trans_a_ && ctx.input_is_constant(1) && n >= PackedMatrixB::kMinColumns) {
      // A weight: packed once (packed_sgemm.h says why that beats oneDNN
      // 2.6 here); alpha, beta * C, R and the activation on each tile.
      const float* cv = use_c ? c->data<float>() : nullptr;
      const float* rv = r != nullptr ? r->data<float>() : nullptr;
      return SgemmWithWeight(packed_b_, a->data<float>(), k, m, b->data<float>(), k, n, b->dim(1), trans_b_, out, n,
                             ctx.parallel(), [&](int64_t row0, int64_t row1, int64_t col0, int64_t col1) {
                               for (int64_t i = row0; i < row1; ++i) {
                                 float* row = out + i * n;
                                 if (alpha_ != 1.0f) {
                                   for (int64_t j = col0; j < col1; ++j) row[j] *= alpha_;
                                 }
                                 if (cv != nullptr) {
                                   const float* c_row = cv + (c_rows == 1 ? 0 : i * c_cols);
                                   for (int64_t j = col0; j < col1; ++j) row[j] += beta_ * c_row[c_cols == 1 ? 0 : j];
                                 }
                                 if (rv != nullptr) AddResidual(row + col0, rv + i * n + col0, col1 - col0);
                                 epilogue_.Apply(row + col0, col1 - col0);
                               }
                             });
    }
    if (use_c) {
      const float* cv = c->data<float>();
      for (int64_t i = 0; i < m; ++i) {
        const float* c_row = cv + (c_rows == 1 ? 0 : i * c_cols);
        float* y_row = out + i * n;
        if (c_cols == 1) {
          std::fill(y_row, y_row + n, beta_ * c_row[0]);
        } else {
          for (int64_t j = 0; j < n; ++j) y_row[j] = beta_ * c_row[j];
        }
      }
    }
    if (k == 0) {
      if (!use_c) std::fill(out, out + m * n, 0.0f);
      if (r != nullptr) AddResidual(out, r->data<float>(), m * n);
      epilogue_.Apply(out, m * n);
      return Status::Ok();
    }

    std::vector<int64_t> key;
    AppendKey(key, a->dims());
    AppendKey(key, b->dims());
    key.push_back(use_c);
    key.push_back(r != nullptr);  // the residual's post-op is part of the primitive
    return GuardDnnl(kOp, [&]() -> Status {
      KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Plan> plan,
                            cache_.GetOrCreate(key, ctx.parallel().num_threads(),
                                               [&] { return MakePlan(m, k, n, use_c, r != nullptr); }));
      std::unordered_map<int, dnnl::memory> args = {
          {DNNL_ARG_SRC, WrapMemory(plan->pd.src_desc(), a->raw_data())},
          {DNNL_ARG_WEIGHTS, WrapMemory(plan->pd.weights_desc(), b->raw_data())},
          {DNNL_ARG_DST, WrapMemory(plan->pd.dst_desc(), out)}};
      if (r != nullptr) args.emplace(plan->residual_arg, WrapMemory(plan->pd.dst_desc(), r->raw_data()));
      ExecuteDnnl(ctx, plan->primitive, plan->pd, std::move(args));
      return Status::Ok();
    });
  }

 private:
  struct Plan {
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul primitive;
    int residual_arg = 0;  // the residual's post-op argument
  };

  StatusOr<std::shared_ptr<const Plan>> MakePlan(int64_t m, int64_t k, int64_t n, bool accumulate,
                                                 bool has_residual) const {
    const Dims a_strides = trans_a_ ? Dims{1, m} : Dims{k, 1};
    const Dims b_strides = trans_b_ ? Dims{1, k} : Dims{n, 1};
    dnnl::matmul::desc desc(StridedF32Desc({m, k}, a_strides), StridedF32Desc({k, n}, b_strides), PlainF32Desc({m, n}));
    dnnl::primitive_attr attr = UserScratchpadAttr();
    if (alpha_ != 1.0f) attr.set_output_scales(0, {alpha_});
    auto plan = std::make_shared<Plan>();
    if (accumulate || has_residual || !epilogue_.empty()) {
      // ONNX's order: (alpha * A * B + beta * C) + R, then the activation.
      dnnl::post_ops ops;
      if (accumulate) ops.append_sum(1.0f);
      if (has_residual) plan->residual_arg = AppendResidualPostOp(ops, PlainF32Desc({m, n}));
      epilogue_.AppendPostOps(ops);
      attr.set_post_ops(ops);
    }
    plan->pd = dnnl::matmul::primitive_desc(desc, attr, DnnlEngine());
    plan->primitive = dnnl::matmul(plan->pd);
    return std::shared_ptr<const Plan>(std::move(plan));
  }

  bool trans_a_, trans_b_;
  float alpha_, beta_;
  Epilogue epilogue_;
  bool fused_;
  ShapeCache<Plan> cache_;
  PackedWeightSlot packed_b_;
};

}  // namespace

namespace {

StatusOr<std::unique_ptr<OpKernel>> CreateGemm(const graph::Node& node, const Epilogue& epilogue, bool fused) {
  KILN_ASSIGN_OR_RETURN(int64_t trans_a, node.GetInt("transA", 0));
  KILN_ASSIGN_OR_RETURN(int64_t trans_b, node.GetInt("transB", 0));
  KILN_ASSIGN_OR_RETURN(float alpha, node.GetFloat("alpha", 1.0f));
  KILN_ASSIGN_OR_RETURN(float beta, node.GetFloat("beta", 1.0f));
  // Opsets before 7 had a `broadcast` attribute; broadcasting C is always
  // allowed here, which is a superset of what broadcast=0 permits.
  return std::unique_ptr<OpKernel>(new GemmKernel(trans_a != 0, trans_b != 0, alpha, beta, epilogue, fused));
}

}  // namespace

StatusOr<std::unique_ptr<OpKernel>> CreateGemmKernel(const graph::Node& node) {
  return CreateGemm(node, Epilogue{}, false);
}

StatusOr<std::unique_ptr<OpKernel>> CreateGemmKernelWithEpilogue(const graph::Node& node, const Epilogue& epilogue) {
  return CreateGemm(node, epilogue, true);
}

}  // namespace kiln::kernels
