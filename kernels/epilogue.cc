#include "kernels/epilogue.h"

#include <algorithm>
#include <cmath>

#include "kernels/fast_math.h"

namespace kiln::kernels {
namespace {

// Runs `fn` over data[0, n) (over data[i] + residual[i] when there is a
// residual, so the sum never leaves a register) in a loop the compiler can
// vectorise: one loop per activation, chosen outside the loop.
// (-O2 does not vectorise such loops by itself; `omp simd` asks for it.)
template <typename Fn>
void Map(float* data, const float* residual, int64_t n, Fn fn) {
  if (residual == nullptr) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) data[i] = fn(data[i]);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) data[i] = fn(data[i] + residual[i]);
  }
}

// FastErf, not std::erf (an out-of-line libm call per element), and forced
// inline: GCC otherwise keeps a lambda this large out of line and calls it
// per element from the simd loop.
struct GeluErf {
  [[gnu::always_inline]] float operator()(float x) const {
    return 0.5f * x * (1.0f + FastErf(x * 0.70710678118654752f));
  }
};

// data[i] = activation(data[i] [+ residual[i]]) for i in [0, n).
void ApplyActivation(const Epilogue& e, float* data, const float* residual, int64_t n) {
  const float a = e.alpha, b = e.beta;
  switch (e.activation) {
    case Activation::kNone:
      if (residual != nullptr) Map(data, residual, n, [](float x) { return x; });
      return;
    case Activation::kRelu: return Map(data, residual, n, [](float x) { return x > 0.0f ? x : 0.0f; });
    case Activation::kLeakyRelu: return Map(data, residual, n, [a](float x) { return x >= 0.0f ? x : a * x; });
    case Activation::kClip:
      return Map(data, residual, n, [a, b](float x) {
        x = x < a ? a : x;
        return x > b ? b : x;
      });
    case Activation::kSigmoid: return Map(data, residual, n, [](float x) { return FastSigmoid(x); });
    case Activation::kTanh: return Map(data, residual, n, [](float x) { return FastTanh(x); });
    case Activation::kHardSwish:
      return Map(data, residual, n, [](float x) {
        float v = x * (1.0f / 6.0f) + 0.5f;
        v = v > 0.0f ? v : 0.0f;
        return x * (v < 1.0f ? v : 1.0f);
      });
    case Activation::kHardSigmoid:
      return Map(data, residual, n, [a, b](float x) {
        float v = a * x + b;
        v = v > 0.0f ? v : 0.0f;
        return v < 1.0f ? v : 1.0f;
      });
    case Activation::kElu: return Map(data, residual, n, [a](float x) { return x >= 0.0f ? x : a * std::expm1(x); });
    case Activation::kGeluErf: return Map(data, residual, n, GeluErf{});
  }
}

}  // namespace

void Epilogue::AppendPostOps(dnnl::post_ops& ops) const {
  using dnnl::algorithm;
  switch (activation) {
    case Activation::kNone: return;
    case Activation::kRelu: ops.append_eltwise(1.0f, algorithm::eltwise_relu, 0.0f, 0.0f); return;
    // oneDNN's relu takes the negative slope as alpha.
    case Activation::kLeakyRelu: ops.append_eltwise(1.0f, algorithm::eltwise_relu, alpha, 0.0f); return;
    case Activation::kClip: ops.append_eltwise(1.0f, algorithm::eltwise_clip, alpha, beta); return;
    case Activation::kSigmoid: ops.append_eltwise(1.0f, algorithm::eltwise_logistic, 0.0f, 0.0f); return;
    case Activation::kTanh: ops.append_eltwise(1.0f, algorithm::eltwise_tanh, 0.0f, 0.0f); return;
    // oneDNN 2.6's hardswish is ONNX's x * clip(x / 6 + 1/2, 0, 1) and takes
    // no parameters.
    case Activation::kHardSwish: ops.append_eltwise(1.0f, algorithm::eltwise_hardswish, 0.0f, 0.0f); return;
    // oneDNN 2.6 has no hardsigmoid: a linear step then a clip to [0, 1].
    case Activation::kHardSigmoid:
      ops.append_eltwise(1.0f, algorithm::eltwise_linear, alpha, beta);
      ops.append_eltwise(1.0f, algorithm::eltwise_clip, 0.0f, 1.0f);
      return;
    case Activation::kElu: ops.append_eltwise(1.0f, algorithm::eltwise_elu, alpha, 0.0f); return;
    case Activation::kGeluErf: ops.append_eltwise(1.0f, algorithm::eltwise_gelu_erf, 0.0f, 0.0f); return;
  }
}

void Epilogue::Apply(float* data, int64_t n) const { ApplyActivation(*this, data, nullptr, n); }

void Epilogue::ApplyWithResidual(const KernelContext& ctx, float* data, const float* residual, int64_t n) const {
  // One pass; split in chunks only to spread a large output over threads.
  constexpr int64_t kChunk = 16384;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  ctx.parallel().For(chunks, 4, [&](int64_t begin, int64_t end) {
    const int64_t start = begin * kChunk;
    const int64_t stop = std::min(end * kChunk, n);
    ApplyActivation(*this, data + start, residual != nullptr ? residual + start : nullptr, stop - start);
  });
}

int AppendResidualPostOp(dnnl::post_ops& ops, const dnnl::memory::desc& desc) {
  const int index = ops.len();
  ops.append_binary(dnnl::algorithm::binary_add, desc);
  return DNNL_ARG_ATTR_MULTIPLE_POST_OP(index) | DNNL_ARG_SRC_1;
}

void AddResidual(float* data, const float* residual, int64_t n) {
  for (int64_t i = 0; i < n; ++i) data[i] += residual[i];
}

Status CheckResidual(const char* op, const Tensor& residual, const Dims& out_dims) {
  if (residual.dtype() != DType::kFloat32) {
    return Unsupported(op, ": only float32 is supported, got residual ", DTypeName(residual.dtype()));
  }
  if (residual.dims() != out_dims) {
    return InvalidArgument(op, ": residual ", DimsToString(residual.dims()), " must have the output's shape ",
                           DimsToString(out_dims));
  }
  return Status::Ok();
}

StatusOr<Epilogue> ParseEpilogue(const graph::Node& node, const char* op) {
  KILN_ASSIGN_OR_RETURN(std::string name, node.GetString("activation", ""));
  Epilogue e;
  KILN_ASSIGN_OR_RETURN(e.alpha, node.GetFloat("activation_alpha", 0.0f));
  KILN_ASSIGN_OR_RETURN(e.beta, node.GetFloat("activation_beta", 0.0f));
  if (name.empty()) {
    e.activation = Activation::kNone;
  } else if (name == "Relu") {
    e.activation = Activation::kRelu;
  } else if (name == "LeakyRelu") {
    e.activation = Activation::kLeakyRelu;
  } else if (name == "Clip") {
    e.activation = Activation::kClip;
    if (!(e.alpha <= e.beta)) {
      return InvalidModel(op, ": Clip epilogue needs min <= max, got [", e.alpha, ", ", e.beta, "]");
    }
  } else if (name == "Sigmoid") {
    e.activation = Activation::kSigmoid;
  } else if (name == "Tanh") {
    e.activation = Activation::kTanh;
  } else if (name == "HardSwish") {
    e.activation = Activation::kHardSwish;
  } else if (name == "HardSigmoid") {
    e.activation = Activation::kHardSigmoid;
  } else if (name == "Elu") {
    e.activation = Activation::kElu;
  } else if (name == "Gelu") {
    e.activation = Activation::kGeluErf;
  } else {
    return Unsupported(op, ": activation '", name, "' is not supported");
  }
  return e;
}

}  // namespace kiln::kernels
