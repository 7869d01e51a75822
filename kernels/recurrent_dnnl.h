// The recurrent ops on oneDNN's RNN primitives (vanilla RNN, LSTM with or
// without peepholes, GRU, linear-before-reset GRU), for the nodes they can
// run: ONNX's default activations (RNN also Relu and Sigmoid), no clip, no
// input_forget, and every sequence at full length. oneDNN's kernels are
// picked for the host at run time (AVX-512 where there is one), and its
// weights are reordered into the layout the primitive prefers once per
// session and input shape. Everything else, and nodes whose weights
// outgrow L2 (where hoisting the input projection out of the steps wins),
// runs on kiln's own kernel (recurrent.cc), which is also the reference the
// tests compare this with.
#pragma once

#include <memory>

#include "kernels/kernel.h"
#include "kernels/recurrent_spec.h"

namespace kiln::kernels {

class DnnlRecurrent {
 public:
  virtual ~DnnlRecurrent() = default;

  // Null when oneDNN cannot run nodes like `spec` (activations, clip,
  // input_forget).
  static std::unique_ptr<DnnlRecurrent> Create(const RecurrentSpec& spec);

  // Runs the node whose inputs (already checked against `p` by the caller,
  // with no sequence shorter than p.seq) are in `ctx` into the outputs that
  // are not null. Returns kUnsupported, having written nothing the caller
  // relies on, when oneDNN has no implementation for the problem.
  virtual Status Run(const KernelContext& ctx, const RecurrentProblem& p, Tensor* y, Tensor* y_h,
                     Tensor* y_c) const = 0;

  // Creates the primitive Run would create for `p`, with an initial state
  // given or not (`has_state`) and peepholes given or not (`has_p`), for
  // runs of `run_threads` threads, so that such a Run finds it instead of
  // creating it (OpKernel::TakePreparation). An error (kUnsupported when
  // oneDNN has no implementation) leaves Run to meet it again.
  virtual Status Prepare(const RecurrentProblem& p, bool has_state, bool has_p, int run_threads) const = 0;
};

}  // namespace kiln::kernels
