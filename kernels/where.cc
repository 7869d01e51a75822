// Where(condition, X, Y): broadcasting select. Pure data movement, so any
// dtype works through an unsigned type of the same size.
#include <cstdint>
#include <memory>

#include "kernels/broadcast.h"
#include "kernels/elementwise_common.h"

namespace kiln::kernels {
namespace {

template <typename T>
void WhereRun(const bool* c, int64_t sc, const T* x, int64_t sx, const T* y, int64_t sy, T* out, int64_t n) {
  if (sc != 0 && sx != 0 && sy != 0) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = c[i] ? x[i] : y[i];
  } else if (sc == 0) {
    // One condition for the whole run: a copy or a fill.
    const T* src = *c ? x : y;
    const int64_t s = *c ? sx : sy;
    if (s != 0) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) out[i] = src[i];
    } else {
      const T v = *src;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) out[i] = v;
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = c[i] ? x[i * sx] : y[i * sy];
  }
}

template <typename T>
void WhereTyped(const ParallelRunner& parallel, const Tensor& cond, const Tensor& x, const Tensor& y, Tensor& out) {
  const BroadcastIndexer indexer(out.dims(), {&cond.dims(), &x.dims(), &y.dims()});
  const int64_t sc = indexer.run_stride(0);
  const int64_t sx = indexer.run_stride(1);
  const int64_t sy = indexer.run_stride(2);
  const bool* c = cond.data<bool>();
  const T* xd = static_cast<const T*>(x.raw_data());
  const T* yd = static_cast<const T*>(y.raw_data());
  T* od = static_cast<T*>(out.raw_data());
  ParallelElements(parallel, indexer.num_elements(), [&](int64_t begin, int64_t end) {
    indexer.ForRuns(begin, end, [&](const BroadcastIndexer::Offsets& off, int64_t o, int64_t count) {
      WhereRun(c + off[0], sc, xd + off[1], sx, yd + off[2], sy, od + o, count);
    });
  });
}

class WhereKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    const Tensor* cond = ctx.input(0);
    const Tensor* x = ctx.input(1);
    const Tensor* y = ctx.input(2);
    if (cond == nullptr || x == nullptr || y == nullptr) return InvalidArgument("Where: expects 3 inputs");
    if (cond->dtype() != DType::kBool) {
      return InvalidArgument("Where: condition must be bool, got ", DTypeName(cond->dtype()));
    }
    if (x->dtype() != y->dtype()) {
      return InvalidArgument("Where: X and Y have different dtypes ", DTypeName(x->dtype()), " and ",
                             DTypeName(y->dtype()));
    }
    KILN_ASSIGN_OR_RETURN(Dims out_dims, BroadcastDims("Where", {&cond->dims(), &x->dims(), &y->dims()}));
    const size_t size = DTypeSize(x->dtype());
    if (size != 1 && size != 2 && size != 4 && size != 8) {
      return Unsupported("Where: dtype ", DTypeName(x->dtype()), " is not supported");
    }
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x->dtype(), out_dims));
    switch (size) {
      case 1: WhereTyped<uint8_t>(ctx.parallel(), *cond, *x, *y, *out); break;
      case 2: WhereTyped<uint16_t>(ctx.parallel(), *cond, *x, *y, *out); break;
      case 4: WhereTyped<uint32_t>(ctx.parallel(), *cond, *x, *y, *out); break;
      case 8: WhereTyped<uint64_t>(ctx.parallel(), *cond, *x, *y, *out); break;
      default: break;  // excluded above
    }
    return Status::Ok();
  }
};

}  // namespace

void RegisterWhereOp(KernelRegistry& r) {
  r.Register(KernelDef{"Where", "", 9, kNoMaxOpset, MakeFactory<WhereKernel>()});
}

}  // namespace kiln::kernels
