// MatMul (opset 1+, float32) with numpy semantics on oneDNN's matmul
// primitive: 1-D operands are promoted (and the added dim dropped from the
// result), batch dims broadcast. When B has no real batch, A's batch dims are
// folded into M, which turns the whole op into one 2-D GEMM.
//
// A product of two activations (attention's scores and context) whose
// shapes the graph knows gets its primitive built in the background
// (TakePreparation); until then it runs on kiln's GEMM micro-kernel reading
// B in place (UnpackedSgemm), equal to oneDNN's to float rounding.
//
// FusedMatMul (domain "kiln", see graph/fuse_epilogues.h) is the same kernel
// plus an optional bias [N] (input 2), an optional residual R of the
// output's shape (input 3) and an activation: oneDNN's bias argument, a
// binary add post-op reading R (row-major like dst, so no reorder) and
// eltwise post-ops, or the same steps per row in the small loop and on the
// tiles of the packed GEMM that a constant B (a weight) goes through. A
// FusedMatMul carrying Gemm's attributes is a fused Gemm instead (gemm.cc).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <utility>
#include <vector>

#include "graph/fuse_epilogues.h"
#include "graph/log.h"
#include "kernels/dnnl_context.h"
#include "kernels/dnnl_kernels.h"
#include "kernels/epilogue.h"
#include "kernels/packed_sgemm.h"

namespace kiln::kernels {
namespace {

constexpr const char* kOp = "MatMul";

class MatMulKernel final : public OpKernel {
 public:
  // `fused`: a FusedMatMul, which may have a bias and a residual input.
  MatMulKernel(Epilogue epilogue, bool fused) : epilogue_(epilogue), fused_(fused) {}

  // A constant 2-D weight, which Compute would pack: packed in the
  // background; or an activation B's primitive (TakeActivationPreparation).
  std::function<void()> TakePreparation(const std::vector<const Tensor*>& constant_inputs,
                                        const std::vector<std::optional<Dims>>& static_dims) override {
    const Tensor* b = constant_inputs.size() > 1 ? constant_inputs[1] : nullptr;
    if (b == nullptr) return TakeActivationPreparation(constant_inputs, static_dims);
    if (b->dtype() != DType::kFloat32 || b->rank() != 2) return {};
    const int64_t k = b->dim(0), n = b->dim(1);
    if (k <= 0 || n < PackedMatrixB::kMinColumns) return {};
    return packed_b_.DeferPacking(b->data<float>(), k, n, n, /*transposed=*/false);
  }

  // A product of two activations whose shapes the graph knows: its oneDNN
  // primitive (oneDNN generates code when creating it, which costs more
  // than the product) is built in the background; runs meanwhile compute
  // it with the packed GEMM's micro-kernel reading B in place.
  std::function<void()> TakeActivationPreparation(const std::vector<const Tensor*>& constant_inputs,
                                                  const std::vector<std::optional<Dims>>& static_dims) {
    if (static_dims.size() < 2 || !static_dims[0] || !static_dims[1]) return {};
    const Dims a = *static_dims[0], b = *static_dims[1];
    const bool has_bias = fused_ && ((constant_inputs.size() > 2 && constant_inputs[2] != nullptr) ||
                                     (static_dims.size() > 2 && static_dims[2].has_value()));
    const size_t r = static_cast<size_t>(graph::kFusedResidualInput);
    const bool has_residual = fused_ && static_dims.size() > r && static_dims[r].has_value();
    // Only what would run on a primitive; shapes Compute rejects are left
    // to Compute to report.
    StatusOr<std::shared_ptr<const Plan>> unprepared =
        MakePlan(a, b, has_bias, has_residual, /*constant_b=*/false, /*build_primitive=*/false);
    if (!unprepared.ok() || !(*unprepared)->unpacked) return {};
    std::vector<int64_t> key = PlanKey(a, b, has_bias, has_residual, /*constant_b=*/false);
    prepared_key_ = key;
    preparation_pending_.store(true, std::memory_order_release);
    return [this, key, a, b, has_bias, has_residual] {
      const Status built = GuardDnnl(kOp, [&]() -> Status {
        // For the thread count the runtime gave this thread: that of the
        // session's runs (runtime/preparation_queue.h), as Compute's key.
        const int threads = omp_get_max_threads();
        std::shared_ptr<const Plan> plan;
        {
          DnnlCreationThreads creation_threads(threads);
          KILN_ASSIGN_OR_RETURN(plan, MakePlan(a, b, has_bias, has_residual, /*constant_b=*/false));
        }
        cache_.Insert(key, threads, std::move(plan));
        return Status::Ok();
      });
      // From now on runs take the cache's path: they find the plan, or
      // (preparation failed, or the plan was evicted) build it themselves.
      if (!built.ok()) Log().debug("MatMul: background preparation failed: {}", built.ToString());
      preparation_pending_.store(false, std::memory_order_release);
    };
  }

  static std::vector<int64_t> PlanKey(const Dims& a, const Dims& b, bool has_bias, bool has_residual, bool constant_b) {
    std::vector<int64_t> key;
    AppendKey(key, a);
    AppendKey(key, b);
    key.push_back(has_bias);
    key.push_back(has_residual);  // the residual's post-op is part of the primitive
    key.push_back(constant_b);
    return key;
  }

  Status Compute(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    const Tensor* bias = fused_ ? ctx.input(2) : nullptr;
    const Tensor* residual = fused_ ? ctx.input(graph::kFusedResidualInput) : nullptr;
    if (a == nullptr || b == nullptr) return InvalidArgument(kOp, ": A and B are required");
    if (a->dtype() != DType::kFloat32 || b->dtype() != DType::kFloat32) {
      return Unsupported(kOp, ": only float32 is supported, got ", DTypeName(a->dtype()), " x ", DTypeName(b->dtype()));
    }
    if (a->rank() < 1 || b->rank() < 1) {
      return InvalidArgument(kOp, ": operands must have rank >= 1, got ", DimsToString(a->dims()), " x ",
                             DimsToString(b->dims()));
    }
    if (bias != nullptr) {
      if (bias->dtype() != DType::kFloat32) {
        return Unsupported(kOp, ": only float32 is supported, got bias ", DTypeName(bias->dtype()));
      }
      if (b->rank() < 2 || bias->rank() != 1 || bias->dim(0) != b->dims().back()) {
        return InvalidArgument(kOp, ": bias ", DimsToString(bias->dims()), " must be [N] for B ",
                               DimsToString(b->dims()));
      }
    }
    const bool constant_b = ctx.input_is_constant(1);
    const std::vector<int64_t> key = PlanKey(a->dims(), b->dims(), bias != nullptr, residual != nullptr, constant_b);
    return GuardDnnl(kOp, [&]() -> Status {
      std::shared_ptr<const Plan> plan;
      if (preparation_pending_.load(std::memory_order_acquire) && key == prepared_key_) {
        KILN_ASSIGN_OR_RETURN(plan, MakePlan(a->dims(), b->dims(), bias != nullptr, residual != nullptr, constant_b,
                                             /*build_primitive=*/false));
      } else {
        KILN_ASSIGN_OR_RETURN(plan, cache_.GetOrCreate(key, ctx.parallel().num_threads(), [&] {
          return MakePlan(a->dims(), b->dims(), bias != nullptr, residual != nullptr, constant_b);
        }));
      }
      if (residual != nullptr) KILN_RETURN_IF_ERROR(CheckResidual(kOp, *residual, plan->out_dims));
      KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kFloat32, plan->out_dims));
      if (y->num_elements() == 0) return Status::Ok();
      const float* bias_data = bias != nullptr ? bias->data<float>() : nullptr;
      const float* residual_data = residual != nullptr ? residual->data<float>() : nullptr;
      if (plan->zero_k) {
        std::fill(y->data<float>(), y->data<float>() + y->num_elements(), 0.0f);
        if (bias_data != nullptr || residual_data != nullptr || !epilogue_.empty()) {
          // A 1-D B drops N from the output: each output element is a row.
          const int64_t n = plan->n;
          for (int64_t row = 0; row < y->num_elements() / n; ++row) {
            FinishRow(y->data<float>() + row * n, n, bias_data,
                      residual_data != nullptr ? residual_data + row * n : nullptr);
          }
        }
        return Status::Ok();
      }
      if (plan->small) {
        SmallMatMul(*plan, a->data<float>(), b->data<float>(), bias_data, residual_data, y->data<float>());
        return Status::Ok();
      }
      if (plan->unpacked) {
        // B computed at run time, read in place: per output batch (or once,
        // A's batch dims folded into rows, when B has no batch).
        const float* a_data = a->data<float>();
        const float* b_data = b->data<float>();
        float* out = y->data<float>();
        const int64_t m = plan->packed_rows > 0 ? plan->packed_rows : plan->m, k = plan->k, n = plan->n;
        const size_t batches = plan->packed_rows > 0 ? 1 : plan->a_offsets.size();
        for (size_t batch = 0; batch < batches; ++batch) {
          const int64_t a_offset = plan->packed_rows > 0 ? 0 : plan->a_offsets[batch];
          const int64_t b_offset = plan->packed_rows > 0 ? 0 : plan->b_offsets[batch];
          float* out_batch = out + static_cast<int64_t>(batch) * m * n;
          const float* residual_batch =
              residual_data != nullptr ? residual_data + static_cast<int64_t>(batch) * m * n : nullptr;
          UnpackedSgemm(a_data + a_offset, k, m, b_data + b_offset, k, n, n, /*transposed=*/false, out_batch, n,
                        ctx.parallel(), [&](int64_t row0, int64_t row1, int64_t col0, int64_t col1) {
                          for (int64_t i = row0; i < row1; ++i) {
                            FinishRow(out_batch + i * n + col0, col1 - col0,
                                      bias_data != nullptr ? bias_data + col0 : nullptr,
                                      residual_batch != nullptr ? residual_batch + i * n + col0 : nullptr);
                          }
                        });
        }
        return Status::Ok();
      }
      if (plan->packed_rows > 0) {
        // A's batch dims folded into rows, as for oneDNN's 2-D problem.
        float* out = y->data<float>();
        const int64_t n = plan->n;
        return SgemmWithWeight(
            packed_b_, a->data<float>(), plan->k, plan->packed_rows, b->data<float>(), plan->k, n, n,
            /*transposed=*/false, out, n, ctx.parallel(), [&](int64_t row0, int64_t row1, int64_t col0, int64_t col1) {
              for (int64_t i = row0; i < row1; ++i) {
                FinishRow(out + i * n + col0, col1 - col0, bias_data != nullptr ? bias_data + col0 : nullptr,
                          residual_data != nullptr ? residual_data + i * n + col0 : nullptr);
              }
            });
      }
      std::unordered_map<int, dnnl::memory> args = {
          {DNNL_ARG_SRC, WrapMemory(plan->pd.src_desc(), a->raw_data())},
          {DNNL_ARG_WEIGHTS, WrapMemory(plan->pd.weights_desc(), b->raw_data())},
          {DNNL_ARG_DST, WrapMemory(plan->pd.dst_desc(), y->raw_data())}};
      if (bias_data != nullptr) args.emplace(DNNL_ARG_BIAS, WrapMemory(plan->pd.bias_desc(), bias_data));
      if (residual_data != nullptr) {
        args.emplace(plan->residual_arg, WrapMemory(plan->pd.dst_desc(), residual_data));
      }
      ExecuteDnnl(ctx, plan->primitive, plan->pd, std::move(args));
      return Status::Ok();
    });
  }

 private:
  // Below this many multiply-adds, oneDNN's fixed cost per call (several
  // microseconds: stream, memory objects, dispatch) exceeds the work; a plain
  // loop wins (measured: 1x64x64 takes ~4 us in oneDNN, ~0.5 us here).
  static constexpr int64_t kSmallWork = 16384;

  struct Plan {
    Dims out_dims;
    bool zero_k = false;  // K == 0: the result is all zeros
    bool small = false;   // computed by SmallMatMul
    // > 0: computed by PackedSgemm over this many rows (A's batch dims
    // folded in) against the constant B, packed once; no oneDNN primitive.
    int64_t packed_rows = 0;
    // Computed by UnpackedSgemm on B as it is (B not a constant): once over
    // packed_rows rows when B has no batch, else per output batch at
    // a_offsets / b_offsets; no oneDNN primitive.
    bool unpacked = false;
    int64_t m = 0, k = 0, n = 0;                // set for every plan (n is 1 for a 1-D B)
    int residual_arg = 0;                       // the residual's post-op argument
    std::vector<int64_t> a_offsets, b_offsets;  // per output batch, when small
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul primitive;
  };

  // Element offsets of each output batch's A and B matrices, broadcast
  // batch dims contributing nothing.
  static void SetBatchOffsets(Plan& plan, const Dims& a_batch, const Dims& b_batch, const Dims& out_batch,
                              int64_t out_batch_size) {
    const size_t batch_rank = out_batch.size();
    Dims idx(batch_rank, 0);
    for (int64_t i = 0; i < out_batch_size; ++i) {
      int64_t a_off = 0, b_off = 0;
      for (size_t d = 0; d < batch_rank; ++d) {
        a_off = a_off * a_batch[d] + (a_batch[d] == 1 ? 0 : idx[d]);
        b_off = b_off * b_batch[d] + (b_batch[d] == 1 ? 0 : idx[d]);
      }
      plan.a_offsets.push_back(a_off * plan.m * plan.k);
      plan.b_offsets.push_back(b_off * plan.k * plan.n);
      for (size_t d = batch_rank; d-- > 0;) {
        if (++idx[d] < out_batch[d]) break;
        idx[d] = 0;
      }
    }
  }

  // `build_primitive` false: a product of two activations that would run on
  // a oneDNN primitive gets an `unpacked` plan instead (when it qualifies).
  StatusOr<std::shared_ptr<const Plan>> MakePlan(const Dims& a_in, const Dims& b_in, bool has_bias, bool has_residual,
                                                 bool constant_b, bool build_primitive = true) const {
    Dims a = a_in, b = b_in;
    const bool a_vector = a.size() == 1, b_vector = b.size() == 1;
    if (a_vector) a.insert(a.begin(), 1);
    if (b_vector) b.push_back(1);
    const int64_t m = a[a.size() - 2], k = a.back(), n = b.back();
    if (b[b.size() - 2] != k) {
      return InvalidArgument(kOp, ": inner dimensions differ: A ", DimsToString(a_in), " x B ", DimsToString(b_in));
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
    plan->m = m;
    plan->k = k;
    plan->n = n;
    if (HasZeroDim(plan->out_dims) || plan->zero_k) return plan;

    int64_t b_batch_size = 1, a_batch_size = 1, out_batch_size = 1;
    for (size_t i = 0; i < batch_rank; ++i) {
      b_batch_size *= b_batch[i];
      a_batch_size *= a_batch[i];
      out_batch_size *= out_batch[i];
    }
    if (out_batch_size * m * k * n <= kSmallWork) {
      plan->small = true;
      SetBatchOffsets(*plan, a_batch, b_batch, out_batch, out_batch_size);
      return std::shared_ptr<const Plan>(std::move(plan));
    }
    if (b_batch_size == 1 && !b_vector && constant_b && n >= PackedMatrixB::kMinColumns) {
      // A weight: packed once, no per-call repacking (packed_sgemm.h says
      // why that beats oneDNN 2.6 here).
      plan->packed_rows = a_batch_size * m;
      return std::shared_ptr<const Plan>(std::move(plan));
    }
    if (!build_primitive && !b_vector && !constant_b && n >= PackedMatrixB::kMinColumns) {
      // Two activations (attention's scores and context) while their
      // primitive is being built in the background: the packed GEMM's
      // micro-kernel reading B in place, with no code to generate.
      plan->unpacked = true;
      if (b_batch_size == 1) {
        plan->packed_rows = a_batch_size * m;
      } else {
        SetBatchOffsets(*plan, a_batch, b_batch, out_batch, out_batch_size);
      }
      return std::shared_ptr<const Plan>(std::move(plan));
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
    // The bias broadcasts over every dim but the last.
    Dims bias_md(y_md.size(), 1);
    bias_md.back() = n;
    dnnl::matmul::desc desc(PlainF32Desc(a_md), PlainF32Desc(b_md),
                            has_bias ? PlainF32Desc(bias_md) : dnnl::memory::desc(), PlainF32Desc(y_md));
    dnnl::primitive_attr attr = UserScratchpadAttr();
    if (has_residual || !epilogue_.empty()) {
      dnnl::post_ops ops;
      // R has the output's dims, so the same memory as dst's y_md.
      if (has_residual) plan->residual_arg = AppendResidualPostOp(ops, PlainF32Desc(y_md));
      epilogue_.AppendPostOps(ops);
      attr.set_post_ops(ops);
    }
    plan->pd = dnnl::matmul::primitive_desc(desc, attr, DnnlEngine());
    plan->primitive = dnnl::matmul(plan->pd);
    return std::shared_ptr<const Plan>(std::move(plan));
  }

  // Row-times-matrix loops (i, k, j order) so the inner loop is a
  // contiguous, vectorizable axpy over B's row. The epilogue runs on each
  // row while it is still in L1.
  void SmallMatMul(const Plan& plan, const float* a, const float* b, const float* bias, const float* residual,
                   float* y) const {
    const int64_t m = plan.m, k = plan.k, n = plan.n;
    for (size_t batch = 0; batch < plan.a_offsets.size(); ++batch) {
      const float* ab = a + plan.a_offsets[batch];
      const float* bb = b + plan.b_offsets[batch];
      const int64_t batch_offset = static_cast<int64_t>(batch) * m * n;
      float* yb = y + batch_offset;
      for (int64_t i = 0; i < m; ++i) {
        float* row = yb + i * n;
        std::fill(row, row + n, 0.0f);
        for (int64_t t = 0; t < k; ++t) {
          const float av = ab[i * k + t];
          const float* brow = bb + t * n;
          // -O2's cheap cost model leaves this loop scalar (n is unknown);
          // each element's sum keeps its order either way.
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) row[j] += av * brow[j];
        }
        FinishRow(row, n, bias, residual != nullptr ? residual + batch_offset + i * n : nullptr);
      }
    }
  }

  // Adds the bias and then the residual row (each when given) and applies
  // the activation to one output row, in ONNX's order.
  void FinishRow(float* row, int64_t n, const float* bias, const float* residual_row) const {
    if (bias != nullptr) {
      for (int64_t j = 0; j < n; ++j) row[j] += bias[j];
    }
    if (residual_row != nullptr) AddResidual(row, residual_row, n);
    epilogue_.Apply(row, n);
  }

  Epilogue epilogue_;
  bool fused_;
  ShapeCache<Plan> cache_;
  PackedWeightSlot packed_b_;
  // The shape key TakeActivationPreparation builds a primitive for in the
  // background (empty: none), and whether that is still under way.
  std::vector<int64_t> prepared_key_;
  std::atomic<bool> preparation_pending_{false};
};

}  // namespace

StatusOr<std::unique_ptr<OpKernel>> CreateMatMulKernel(const graph::Node&) {
  return std::unique_ptr<OpKernel>(new MatMulKernel(Epilogue{}, false));
}

StatusOr<std::unique_ptr<OpKernel>> CreateFusedMatMulKernel(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(Epilogue epilogue, ParseEpilogue(node, "FusedMatMul"));
  // The pass writes all of Gemm's attributes for a fused Gemm, none for a
  // fused MatMul.
  for (const char* gemm_attr : {"transA", "transB", "alpha", "beta"}) {
    if (node.FindAttribute(gemm_attr) != nullptr) return CreateGemmKernelWithEpilogue(node, epilogue);
  }
  return std::unique_ptr<OpKernel>(new MatMulKernel(epilogue, true));
}

}  // namespace kiln::kernels
