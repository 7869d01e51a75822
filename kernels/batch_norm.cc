// BatchNormalization in inference mode (float32, any rank >= 2). With the
// statistics fixed, the op is one multiply-add per element with per-channel
// coefficients, which a plain loop does at memory speed; oneDNN would only
// add descriptor overhead, so this kernel does not use it.
#include <cmath>
#include <memory>
#include <vector>

#include "kernels/dnnl_kernels.h"

namespace kiln::kernels {
namespace {

constexpr const char* kOp = "BatchNormalization";

class BatchNormKernel final : public OpKernel {
 public:
  explicit BatchNormKernel(float epsilon) : epsilon_(epsilon) {}

  Status Compute(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (x == nullptr) return InvalidArgument(kOp, ": X is required");
    if (x->dtype() != DType::kFloat32)
      return Unsupported(kOp, ": only float32 is supported, got ", DTypeName(x->dtype()));
    if (x->rank() < 2) return InvalidArgument(kOp, ": X must have rank >= 2, got ", DimsToString(x->dims()));
    const int64_t channels = x->dim(1);
    static const char* const kNames[] = {"scale", "B", "input_mean", "input_var"};
    const float* params[4];
    for (int i = 0; i < 4; ++i) {
      const Tensor* p = ctx.input(i + 1);
      if (p == nullptr) return InvalidArgument(kOp, ": input ", kNames[i], " is required");
      if (p->dtype() != DType::kFloat32) {
        return Unsupported(kOp, ": only float32 is supported, got ", kNames[i], " ", DTypeName(p->dtype()));
      }
      if (p->rank() != 1 || p->dim(0) != channels) {
        return InvalidArgument(kOp, ": ", kNames[i], " ", DimsToString(p->dims()), " must be [", channels, "] for X ",
                               DimsToString(x->dims()));
      }
      params[i] = p->data<float>();
    }
    // y = x * a + c, a = scale / sqrt(var + eps), c = B - mean * a.
    std::vector<float> coef(static_cast<size_t>(2 * channels));
    for (int64_t ch = 0; ch < channels; ++ch) {
      const float a = params[0][ch] / std::sqrt(params[3][ch] + epsilon_);
      coef[static_cast<size_t>(ch)] = a;
      coef[static_cast<size_t>(channels + ch)] = params[1][ch] - params[2][ch] * a;
    }
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kFloat32, x->dims()));
    int64_t plane = 1;
    for (int64_t i = 2; i < x->rank(); ++i) plane *= x->dim(i);
    const int64_t planes = x->dim(0) * channels;
    if (planes == 0 || plane == 0) return Status::Ok();
    const float* in = x->data<float>();
    float* out = y->data<float>();
    const float* scale = coef.data();
    const float* shift = coef.data() + channels;
    // Elements per parallel chunk (128 KiB of floats in, as much out):
    // enough work to pay for handing a chunk to another thread.
    constexpr int64_t kChunkElements = int64_t{1} << 15;
    const int64_t grain = std::max<int64_t>(1, kChunkElements / plane);
    ctx.parallel().For(planes, grain, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float a = scale[p % channels], c = shift[p % channels];
        const float* src = in + p * plane;
        float* dst = out + p * plane;
        for (int64_t i = 0; i < plane; ++i) dst[i] = src[i] * a + c;
      }
    });
    return Status::Ok();
  }

 private:
  float epsilon_;
};

}  // namespace

StatusOr<std::unique_ptr<OpKernel>> CreateBatchNormKernel(const graph::Node& node) {
  KILN_ASSIGN_OR_RETURN(float epsilon, node.GetFloat("epsilon", 1e-5f));
  KILN_ASSIGN_OR_RETURN(int64_t training_mode, node.GetInt("training_mode", 0));
  if (training_mode != 0) return Unsupported(kOp, ": training_mode=1 is not supported (inference only)");
  if (node.opset >= 7 && node.opset < 9) {
    KILN_ASSIGN_OR_RETURN(int64_t spatial, node.GetInt("spatial", 1));
    if (spatial == 0) return Unsupported(kOp, ": spatial=0 is not supported");
  }
  if (node.opset < 14) {
    size_t live = 0;
    for (graph::ValueId v : node.outputs) live += v != graph::kNoValue;
    if (live > 1) return Unsupported(kOp, ": training outputs (mean, var, saved stats) are not supported");
  }
  return std::unique_ptr<OpKernel>(new BatchNormKernel(epsilon));
}

}  // namespace kiln::kernels
