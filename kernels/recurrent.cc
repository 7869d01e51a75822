// LSTM, GRU and RNN (opsets 7+, float32) with the whole of ONNX's
// semantics: forward, reverse and bidirectional; any activation functions;
// clip; GRU's linear_before_reset; LSTM's peepholes and input_forget;
// initial states; per-sequence lengths; both layouts; every optional output.
//
// Each direction runs in two parts. First the input projection of every
// step at once, X [seq * batch, input] times W^T, with both biases added
// (GRU with linear_before_reset keeps the recurrent bias of its h gate
// apart, since the reset gate multiplies it): one large GEMM instead of
// `seq` small ones. Then the recurrence, one step at a time: the previous
// hidden state [batch, hidden] times R^T, then the gate arithmetic row by
// row. GRU without linear_before_reset needs two GEMMs per step, because
// its h gate multiplies R_h by (r . H_prev), which the z and r gates of the
// same step produce. W and R are the GEMMs' right-hand sides: wide ones on
// oneDNN's matmul (recurrent_gemm.h), narrow ones on kiln's packed GEMM
// (packed_sgemm.h), prepared once per session when they are graph
// constants.
//
// Calls oneDNN's RNN primitives can run (recurrent_dnnl.h: default
// activations, no clip, no input_forget, no sequence shorter than X) go
// there, unless their weights outgrow L2 (PrefersOwnKernel); this kernel
// runs the rest.
//
// First runs: a node with static shapes and no sequence_lens has the
// steady path's primitive or products built on the preparation thread
// (TakePreparation). Until they are published, runs of that shape compute
// on W and R as stored, with nothing created, reordered or packed: the
// input projection on UnpackedSgemm, the steps on StoredWeightGemm. A step
// product switches to its prepared form between two steps of the same run.
//
// sequence_lens: a batch entry with length L runs L steps (a reversed
// direction reads its own steps L-1 down to 0); its Y rows past L are
// zero and Y_h (Y_c) hold the state after its last step.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <utility>

#include <unistd.h>

#include "graph/log.h"
#include "kernels/packed_sgemm.h"
#include "kernels/recurrent_cells.h"
#include "kernels/recurrent_dnnl.h"
#include "kernels/recurrent_gemm.h"
#include "kernels/recurrent_kernels.h"
#include "kernels/recurrent_spec.h"
#include "kernels/stored_weight_gemm.h"

namespace kiln::kernels {
namespace {

// Input positions of the ONNX recurrent ops.
constexpr int kX = 0, kW = 1, kR = 2, kB = 3, kSequenceLens = 4, kInitialH = 5, kInitialC = 6, kP = 7;

using Problem = RecurrentProblem;

// The right-hand side of C = A * B^T, with B given as [n, k] row-major
// (how ONNX stores W and R): packed when wide enough to be worth it,
// otherwise used as it is by a plain loop.
struct RightOperand {
  std::shared_ptr<const PackedMatrixB> packed;
  const float* raw = nullptr;
  int64_t n = 0, k = 0;
};

StatusOr<RightOperand> PrepareRight(const float* b, int64_t n, int64_t k, bool constant, const PackedWeightSlot& slot) {
  RightOperand op;
  op.raw = b;
  op.n = n;
  op.k = k;
  if (n < PackedMatrixB::kMinColumns || k == 0) return op;
  if (constant) {
    KILN_ASSIGN_OR_RETURN(op.packed, slot.Get(b, k, n, k, /*transposed=*/true));
  } else {
    // A run-time input may hold other values at the same address on the
    // next call: packed for this call only.
    KILN_ASSIGN_OR_RETURN(op.packed, PackedMatrixB::Pack(b, k, n, k, /*transposed=*/true));
  }
  return op;
}

// C [m, b.n] (row stride ldc) = A [m, b.k] (row stride lda) * B^T, then
// `epilogue` on each finished tile.
void Multiply(const float* a, int64_t lda, int64_t m, const RightOperand& b, float* c, int64_t ldc,
              const ParallelRunner& parallel, const TileEpilogue& epilogue) {
  if (m == 0 || b.n == 0) return;
  if (b.packed != nullptr) {
    PackedSgemm(a, lda, m, *b.packed, c, ldc, parallel, epilogue);
    return;
  }
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < b.n; ++j) {
      const float* a_row = a + i * lda;
      const float* b_row = b.raw + j * b.k;
      float sum = 0.0f;
      for (int64_t p = 0; p < b.k; ++p) sum += a_row[p] * b_row[p];
      c[i * ldc + j] = sum;
    }
  }
  if (epilogue) epilogue(0, m, 0, b.n);
}

// One of a direction's products with fixed operands, C [m, n] = A [m, k] *
// B^T (+ bias), bound once per call and run once (the input projection) or
// once per step: on oneDNN's matmul when the kernel has one for this weight
// (recurrent_gemm.h), else on kiln's packed GEMM or plain loop.
class Product {
 public:
  // `onednn` null: kiln's own GEMM, packed through `slot` when B is a
  // constant. `accumulate` (C += A * B^T) needs `onednn` and m, n, k > 0.
  static StatusOr<Product> Make(const KernelContext& ctx, const DnnlWeightGemm* onednn, const PackedWeightSlot& slot,
                                const float* a, int64_t m, const float* b, int64_t n, int64_t k, bool b_constant,
                                const float* bias, float* c, int threads, bool accumulate = false) {
    Product product;
    product.a_ = a;
    product.m_ = m;
    product.c_ = c;
    product.bias_ = bias;
    if (onednn != nullptr && m > 0 && n > 0 && k > 0) {
      KILN_ASSIGN_OR_RETURN(product.onednn_,
                            onednn->Bind(ctx, a, m, b, n, k, b_constant, bias, c, threads, accumulate));
      return product;
    }
    if (accumulate) return Internal("recurrent Product: accumulating needs oneDNN's matmul and a non-empty product");
    KILN_ASSIGN_OR_RETURN(product.own_, PrepareRight(b, n, k, b_constant, slot));
    return product;
  }

  // The same product on B as stored, with nothing created, packed or
  // reordered (a first run while the prepared products are built in the
  // background): few rows of A on StoredWeightGemm, many (the input
  // projection) on UnpackedSgemm. `accumulate` as in Make, for any m.
  static Product MakeFirstRun(const float* a, int64_t m, const float* b, int64_t n, int64_t k, const float* bias,
                              float* c, bool accumulate = false) {
    Product product;
    product.a_ = a;
    product.m_ = m;
    product.c_ = c;
    product.bias_ = bias;
    product.own_.raw = b;
    product.own_.n = n;
    product.own_.k = k;
    product.first_run_ = true;
    product.accumulate_ = accumulate;
    return product;
  }

  bool first_run() const { return first_run_; }

  // C += A * B^T into `c`, a C-shaped buffer, for a product made with
  // `accumulate`.
  Status AccumulateInto(float* c, const ParallelRunner& parallel) const {
    if (first_run_) {
      StoredWeightGemm(a_, own_.k, m_, own_.raw, own_.k, own_.n, own_.k, c, own_.n, /*accumulate=*/true, parallel);
      return Status::Ok();
    }
    return onednn_->RunInto(c);
  }

  Status Run(const ParallelRunner& parallel) const {
    if (onednn_ != nullptr) return onednn_->Run();
    if (first_run_) return RunFirstRun(parallel);
    Multiply(a_, own_.k, m_, own_, c_, own_.n, parallel, BiasEpilogue());
    return Status::Ok();
  }

 private:
  // Below this many rows of A, StoredWeightGemm's dot products (B streamed
  // once per four rows) beat UnpackedSgemm's copying of B's panels.
  static constexpr int64_t kMaxStoredWeightRows = 8;

  // Adds the bias to C's tiles as the product finishes them; empty without
  // a bias.
  TileEpilogue BiasEpilogue() const {
    if (bias_ == nullptr) return {};
    return [this](int64_t row0, int64_t row1, int64_t col0, int64_t col1) {
      for (int64_t i = row0; i < row1; ++i) {
        float* row = c_ + i * own_.n;
        for (int64_t j = col0; j < col1; ++j) row[j] += bias_[j];
      }
    };
  }

  Status RunFirstRun(const ParallelRunner& parallel) const {
    if (m_ == 0 || own_.n == 0) return Status::Ok();
    if (accumulate_ || m_ <= kMaxStoredWeightRows) {
      StoredWeightGemm(a_, own_.k, m_, own_.raw, own_.k, own_.n, own_.k, c_, own_.n, accumulate_, parallel);
      if (bias_ != nullptr) BiasEpilogue()(0, m_, 0, own_.n);
      return Status::Ok();
    }
    UnpackedSgemm(a_, own_.k, m_, own_.raw, own_.k, own_.n, own_.k, /*transposed=*/true, c_, own_.n, parallel,
                  BiasEpilogue());
    return Status::Ok();
  }

  std::unique_ptr<DnnlWeightGemm::Bound> onednn_;
  RightOperand own_;
  const float* a_ = nullptr;
  int64_t m_ = 0;
  float* c_ = nullptr;
  const float* bias_ = nullptr;
  bool first_run_ = false;
  bool accumulate_ = false;
};

// The L2 cache of one core, as the C library reports it (1 MB when it
// cannot tell).
int64_t L2CacheBytes() {
  static const int64_t bytes = [] {
    const long reported = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return reported > 0 ? int64_t{reported} : int64_t{1} << 20;
  }();
  return bytes;
}

// Uninitialised float scratch, or kResourceExhausted.
StatusOr<std::unique_ptr<float[]>> AllocateScratch(const char* op, int64_t count) {
  std::unique_ptr<float[]> p(new (std::nothrow) float[static_cast<size_t>(std::max<int64_t>(count, 1))]);
  if (p == nullptr) return ResourceExhausted(op, ": cannot allocate ", count, " floats of scratch memory");
  return p;
}

class RecurrentKernel final : public OpKernel {
 public:
  RecurrentKernel(RecurrentSpec spec, std::unique_ptr<DnnlRecurrent> onednn, bool onednn_gemms)
      : spec_(std::move(spec)), op_(RecurrentCellOp(spec_.cell)), onednn_(std::move(onednn)) {
    if (onednn_gemms) {
      for (int d = 0; d < 2; ++d) {
        w_gemms_[d] = std::make_unique<DnnlWeightGemm>(op_);
        r_gemms_[d] = std::make_unique<DnnlWeightGemm>(op_);
        rh_gemms_[d] = std::make_unique<DnnlWeightGemm>(op_);
      }
    }
  }

  // A node with static shapes and no sequence_lens has what its runs of
  // that shape need built in the background: oneDNN's RNN primitive when
  // oneDNN runs it, else (graph-constant W and R) the products of this
  // kernel's own path, oneDNN matmuls with their weights reordered and kiln
  // GEMMs with theirs packed, direction by direction. Until then, runs of
  // that shape compute on the own path with nothing created, reordered or
  // packed (Product::MakeFirstRun), switching each product to its prepared
  // form as soon as it is published, even between the steps of one run. Sums
  // come in another order than the prepared path's.
  std::function<void()> TakePreparation(const std::vector<const Tensor*>& constant_inputs,
                                        const std::vector<std::optional<Dims>>& static_dims) override {
    auto constant = [&](int i) -> const Tensor* {
      const size_t at = static_cast<size_t>(i);
      return at < constant_inputs.size() ? constant_inputs[at] : nullptr;
    };
    auto given = [&](int i) {
      return constant(i) != nullptr ||
             (static_cast<size_t>(i) < static_dims.size() && static_dims[static_cast<size_t>(i)].has_value());
    };
    auto dims = [&](int i) -> const Dims* {
      const size_t at = static_cast<size_t>(i);
      return at < static_dims.size() && static_dims[at].has_value() ? &*static_dims[at] : nullptr;
    };
    const Dims* x = dims(kX);
    const Dims* r = dims(kR);
    const bool lstm = spec_.cell == RecurrentCell::kLstm;
    // Whether a run pads is only known from sequence_lens' values; shapes
    // Compute would reject are left to Compute to report.
    if (x == nullptr || r == nullptr || x->size() != 3 || r->size() != 3 || given(kSequenceLens)) return {};
    Problem p;
    p.dirs = spec_.num_directions();
    p.gates = RecurrentGateCount(spec_.cell);
    p.seq = spec_.layout == 0 ? (*x)[0] : (*x)[1];
    p.batch = spec_.layout == 0 ? (*x)[1] : (*x)[0];
    p.input = (*x)[2];
    p.hidden = (*r)[2];
    if (spec_.hidden_size > 0 && spec_.hidden_size != p.hidden) return {};
    const Tensor* w_constant = constant(kW);
    const Tensor* r_constant = constant(kR);
    const Dims w_dims = {p.dirs, p.gates * p.hidden, p.input};
    const Dims r_dims = {p.dirs, p.gates * p.hidden, p.hidden};
    const bool primitive = onednn_ != nullptr && !PrefersOwnKernel(p);
    const bool constant_weights = w_constant != nullptr && r_constant != nullptr &&
                                  w_constant->dtype() == DType::kFloat32 && r_constant->dtype() == DType::kFloat32 &&
                                  w_constant->dims() == w_dims && r_constant->dims() == r_dims;
    if (!primitive && !constant_weights) return {};
    const bool has_state = given(kInitialH) || (lstm && given(kInitialC));
    const bool has_p = lstm && given(kP);
    prepared_key_ = PreparationKey(p, has_state, has_p);
    preparation_pending_.store(true, std::memory_order_release);
    const float* w = constant_weights ? w_constant->data<float>() : nullptr;
    const float* rw = constant_weights ? r_constant->data<float>() : nullptr;
    if (primitive) {
      // Where the first-run path is much slower than oneDNN's, the own
      // path's step products come first, for the first run to switch to
      // between steps while the primitive is built, and are dropped once it
      // is. Not the input projections: by the time they were built, the run
      // that could use them would mostly have computed them already, and
      // the next node's preparation would wait for them.
      const bool bridge =
          constant_weights && w_gemms_[0] != nullptr && p.gates * p.hidden * p.hidden >= kMinBridgedWeights;
      return [this, p, has_state, has_p, bridge, w, rw] {
        // For the thread count the runtime gave this thread: that of the
        // session's runs (runtime/preparation_queue.h).
        const int threads = omp_get_max_threads();
        if (bridge) {
          const Status bridged = PrepareOwnProducts(p, w, rw, threads, /*projections=*/false);
          if (!bridged.ok()) Log().debug("{}: background preparation failed: {}", op_, bridged.ToString());
        }
        const Status built = onednn_->Prepare(p, has_state, has_p, threads);
        // From now on runs take oneDNN's path: they find the primitive, or
        // (it failed, or was built for another thread count) create it.
        if (!built.ok()) Log().debug("{}: background preparation failed: {}", op_, built.ToString());
        if (bridge && built.ok()) ReleaseOwnProducts();
        preparation_pending_.store(false, std::memory_order_release);
      };
    }
    return [this, p, w, rw] {
      const Status built = PrepareOwnProducts(p, w, rw, omp_get_max_threads(), /*projections=*/true);
      // A product that failed is built by the runs that need it.
      if (!built.ok()) Log().debug("{}: background preparation failed: {}", op_, built.ToString());
      preparation_pending_.store(false, std::memory_order_release);
    };
  }

  Status Compute(KernelContext& ctx) const override {
    KILN_ASSIGN_OR_RETURN(Problem p, Check(ctx));
    const int max_outputs = spec_.cell == RecurrentCell::kLstm ? 3 : 2;
    if (ctx.num_outputs() > max_outputs) {
      return InvalidModel(op_, ": has ", ctx.num_outputs(), " outputs, at most ", max_outputs, " are defined");
    }
    // Sequence lengths, validated before any output is touched.
    std::vector<int64_t> lengths(static_cast<size_t>(p.batch), p.seq);
    bool padded = false;
    if (const Tensor* lens = ctx.input(kSequenceLens)) {
      for (int64_t b = 0; b < p.batch; ++b) {
        const int64_t len = lens->dtype() == DType::kInt32 ? lens->data<int32_t>()[b] : lens->data<int64_t>()[b];
        if (len < 0 || len > p.seq) {
          return InvalidArgument(op_, ": sequence_lens[", b, "] = ", len, " is outside [0, ", p.seq,
                                 "] (the sequence length of X)");
        }
        lengths[static_cast<size_t>(b)] = len;
        padded = padded || len < p.seq;
      }
    }

    const int64_t h = p.hidden;
    const Dims y_dims = spec_.layout == 0 ? Dims{p.seq, p.dirs, p.batch, h} : Dims{p.batch, p.seq, p.dirs, h};
    const Dims state_dims = spec_.layout == 0 ? Dims{p.dirs, p.batch, h} : Dims{p.batch, p.dirs, h};
    Tensor* y = nullptr;
    Tensor* y_h = nullptr;
    Tensor* y_c = nullptr;
    if (ctx.num_outputs() > 0) {
      KILN_ASSIGN_OR_RETURN(y, ctx.Output(0, DType::kFloat32, y_dims));
    }
    if (ctx.num_outputs() > 1) {
      KILN_ASSIGN_OR_RETURN(y_h, ctx.Output(1, DType::kFloat32, state_dims));
    }
    if (ctx.num_outputs() > 2) {
      KILN_ASSIGN_OR_RETURN(y_c, ctx.Output(2, DType::kFloat32, state_dims));
    }
    if (y != nullptr && padded) std::fill(y->data<float>(), y->data<float>() + y->num_elements(), 0.0f);
    if (p.batch == 0 || h == 0) return Status::Ok();
    const bool has_state =
        ctx.input(kInitialH) != nullptr || (spec_.cell == RecurrentCell::kLstm && ctx.input(kInitialC) != nullptr);
    const bool has_p = spec_.cell == RecurrentCell::kLstm && ctx.input(kP) != nullptr;
    const bool unprepared =
        preparation_pending_.load(std::memory_order_acquire) && PreparationKey(p, has_state, has_p) == prepared_key_;
    if (onednn_ != nullptr && !padded && !PrefersOwnKernel(p) && !unprepared) {
      Status status = onednn_->Run(ctx, p, y, y_h, y_c);
      // Without an implementation for this problem, kiln's own runs it.
      if (status.code() != StatusCode::kUnsupported) return status;
    }

    int64_t projection = 0;  // seq * batch * gates * hidden, checked
    if (__builtin_mul_overflow(p.seq * p.batch, p.gates * h, &projection)) {
      return ResourceExhausted(op_, ": the input projection of ", p.seq, " steps would overflow");
    }
    const int64_t gate_width = p.gates * h;
    // XW, then per batch row: step GEMM result, h state, c state, GRU's
    // r . H_prev and its h GEMM result, and one row of temporaries.
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<float[]> scratch,
                          AllocateScratch(op_, projection + p.batch * (gate_width + 4 * h) + h));
    Buffers buf;
    buf.xw = scratch.get();
    buf.gates = buf.xw + projection;
    buf.h = buf.gates + p.batch * gate_width;
    buf.c = buf.h + p.batch * h;
    buf.reset_h = buf.c + p.batch * h;
    buf.candidate = buf.reset_h + p.batch * h;
    buf.row = buf.candidate + p.batch * h;

    for (int d = 0; d < p.dirs; ++d) {
      KILN_RETURN_IF_ERROR(RunDirection(ctx, p, d, lengths, unprepared, buf, y));
      // The final states.
      for (int64_t b = 0; b < p.batch; ++b) {
        const int64_t offset = StateOffset(p, d, b);
        if (y_h != nullptr) std::copy_n(buf.h + b * h, h, y_h->data<float>() + offset);
        if (y_c != nullptr) std::copy_n(buf.c + b * h, h, y_c->data<float>() + offset);
      }
    }
    return Status::Ok();
  }

 private:
  struct Buffers {
    float* xw;         // [seq * batch, gates * hidden], rows in X's order
    float* gates;      // [batch, gates * hidden]: H_prev * R^T of one step
    float* h;          // [batch, hidden]
    float* c;          // [batch, hidden] (LSTM)
    float* reset_h;    // [batch, hidden]: GRU's r . H_prev
    float* candidate;  // [batch, hidden]: GRU's (r . H_prev) * R_h^T
    float* row;        // [hidden]
  };

  // The oneDNN matmul of direction d's weight [n, k], or null for kiln's
  // own GEMM: below 64 KB of weight a primitive call's fixed cost (about a
  // microsecond) outweighs what its AVX-512 code saves.
  static const DnnlWeightGemm* Gemm(const std::unique_ptr<DnnlWeightGemm> (&gemms)[2], int d, int64_t n, int64_t k) {
    constexpr int64_t kMinWeights = 16 << 10;
    return n * k >= kMinWeights ? gemms[d].get() : nullptr;
  }

  // Whether this kernel, on oneDNN's matmul, beats oneDNN's RNN primitive
  // for `p`. The primitive multiplies every step by W and R together; once
  // one direction's W and R outgrow a core's L2 cache, each step streams
  // them from L3. This kernel multiplies all steps by W at once, so a step
  // reads R alone, which halves its traffic (2-layer LSTM, hidden 256: 1.5-2
  // MB of W and R, 1 MB of R). Below that the primitive's fused cell is the
  // faster one.
  static std::vector<int64_t> PreparationKey(const Problem& p, bool has_state, bool has_p) {
    return {p.seq, p.batch, p.input, p.hidden, has_state, has_p};
  }

  bool PrefersOwnKernel(const Problem& p) const {
    if (w_gemms_[0] == nullptr) return false;
    const int64_t weight_bytes = p.gates * p.hidden * (p.input + p.hidden) * int64_t{sizeof(float)};
    return weight_bytes > L2CacheBytes();
  }

  // Drops what PrepareOwnProducts built once runs take oneDNN's primitive
  // instead (a run still on the own path builds what it needs again).
  void ReleaseOwnProducts() const {
    for (int d = 0; d < 2; ++d) {
      projection_ready_[d].store(false, std::memory_order_release);
      step_ready_[d].store(false, std::memory_order_release);
      candidate_ready_[d].store(false, std::memory_order_release);
      for (const auto* gemms : {&w_gemms_, &r_gemms_, &rh_gemms_}) {
        if ((*gemms)[d] != nullptr) (*gemms)[d]->Release();
      }
    }
  }

  // Whether a direction's step product is added in place to the input
  // projection (see RunDirection) rather than written apart.
  bool Accumulates(const Problem& p, const DnnlWeightGemm* step_gemm, bool padded) const {
    return step_gemm != nullptr && spec_.cell != RecurrentCell::kGru && spec_.layout == 0 && !padded && p.seq > 0;
  }

  // Builds one product as Product::Make will want it: the oneDNN matmul's
  // plan and reordered B, or kiln's packed B.
  static Status PrepareProduct(const DnnlWeightGemm* onednn, const PackedWeightSlot& slot, const float* b, int64_t m,
                               int64_t n, int64_t k, bool has_bias, int threads, bool accumulate) {
    if (onednn != nullptr && m > 0 && n > 0 && k > 0) return onednn->Prepare(b, m, n, k, has_bias, threads, accumulate);
    if (n >= PackedMatrixB::kMinColumns && k > 0) return slot.Get(b, k, n, k, /*transposed=*/true).status();
    return Status::Ok();
  }

  // The products RunDirection makes for full-length runs of `p` on the
  // graph constants W and R, each published once built: per direction the
  // recurrent ones first, which a first run can switch to between steps,
  // then (with `projections`) the input projection, which a run that has
  // begun has already computed.
  Status PrepareOwnProducts(const Problem& p, const float* w, const float* r, int threads, bool projections) const {
    const int64_t h = p.hidden;
    const int64_t gate_width = p.gates * h;
    const bool gru_split = spec_.cell == RecurrentCell::kGru && !spec_.linear_before_reset;
    const int64_t step_width = gru_split ? 2 * h : gate_width;
    const int step_threads = StepThreads(p, step_width, threads);
    for (int d = 0; d < p.dirs; ++d) {
      const float* w_d = w + d * gate_width * p.input;
      const float* r_d = r + d * gate_width * h;
      const DnnlWeightGemm* step_gemm = Gemm(r_gemms_, d, step_width, h);
      KILN_RETURN_IF_ERROR(PrepareProduct(step_gemm, r_slots_[d], r_d, p.batch, step_width, h, false, step_threads,
                                          Accumulates(p, step_gemm, false)));
      step_ready_[d].store(true, std::memory_order_release);
      if (gru_split) {
        KILN_RETURN_IF_ERROR(PrepareProduct(Gemm(rh_gemms_, d, h, h), rh_slots_[d], r_d + 2 * h * h, p.batch, h, h,
                                            false, step_threads, false));
        candidate_ready_[d].store(true, std::memory_order_release);
      }
      if (!projections) continue;
      KILN_RETURN_IF_ERROR(PrepareProduct(Gemm(w_gemms_, d, gate_width, p.input), w_slots_[d], w_d, p.seq * p.batch,
                                          gate_width, p.input, /*has_bias=*/true, threads, false));
      projection_ready_[d].store(true, std::memory_order_release);
    }
    return Status::Ok();
  }

  // The OpenMP team of one step's product: the session's threads once R is
  // large enough that each thread's share of it is worth a fork and join
  // per step (ExecuteDnnl's rule for any primitive), else one.
  static int StepThreads(const Problem& p, int64_t step_width, int threads) {
    constexpr int64_t kMinParallelBytes = int64_t{256} << 10;
    return step_width * p.hidden * int64_t{sizeof(float)} < kMinParallelBytes ? 1 : threads;
  }

  // Offset of (direction d, batch b) in initial_h, Y_h and friends.
  int64_t StateOffset(const Problem& p, int d, int64_t b) const {
    return (spec_.layout == 0 ? d * p.batch + b : b * p.dirs + d) * p.hidden;
  }
  // Row of (step t, batch b) in X and in the input projection.
  int64_t InputRow(const Problem& p, int64_t t, int64_t b) const {
    return spec_.layout == 0 ? t * p.batch + b : b * p.seq + t;
  }
  int64_t OutputOffset(const Problem& p, int64_t t, int d, int64_t b) const {
    return (spec_.layout == 0 ? (t * p.dirs + d) * p.batch + b : (b * p.seq + t) * p.dirs + d) * p.hidden;
  }

  // With `first_run` (the call's shape is being prepared in the background),
  // each product not yet published runs as Product::MakeFirstRun; the
  // recurrent ones switch to the prepared form at the first step after it
  // is published (for full-length sequences, the case prepared).
  Status RunDirection(const KernelContext& ctx, const Problem& p, int d, const std::vector<int64_t>& lengths,
                      bool first_run, const Buffers& buf, Tensor* y) const {
    const int64_t h = p.hidden;
    const int64_t gate_width = p.gates * h;
    const bool lbr = spec_.linear_before_reset;
    const bool gru_split = spec_.cell == RecurrentCell::kGru && !lbr;
    const Tensor& x = *ctx.input(kX);
    const float* w = ctx.input(kW)->data<float>() + d * gate_width * p.input;
    const float* r = ctx.input(kR)->data<float>() + d * gate_width * h;
    const Tensor* bias = ctx.input(kB);
    const Tensor* peephole = spec_.cell == RecurrentCell::kLstm ? ctx.input(kP) : nullptr;

    // Both biases folded into one, except GRU's recurrent h-gate bias under
    // linear_before_reset, which the reset gate scales.
    std::vector<float> input_bias(static_cast<size_t>(gate_width), 0.0f);
    std::vector<float> recurrent_h_bias(static_cast<size_t>(h), 0.0f);
    if (bias != nullptr) {
      const float* wb = bias->data<float>() + d * 2 * gate_width;
      const float* rb = wb + gate_width;
      for (int64_t j = 0; j < gate_width; ++j) input_bias[static_cast<size_t>(j)] = wb[j] + rb[j];
      if (lbr) {
        for (int64_t j = 0; j < h; ++j) {
          input_bias[static_cast<size_t>(2 * h + j)] = wb[2 * h + j];
          recurrent_h_bias[static_cast<size_t>(j)] = rb[2 * h + j];
        }
      }
    }

    // The input projection of every step.
    const int threads = std::max(1, ctx.parallel().num_threads());
    // Where the own path is the steady one, a product large enough loses
    // more on its first-run form than building the prepared one costs: the
    // run builds it (or, when the preparation thread is building it, waits
    // for it under the plan cache's lock) instead.
    const bool own_steady = onednn_ == nullptr || PrefersOwnKernel(p);
    auto worth_building = [&](int64_t multiply_adds) { return own_steady && multiply_adds >= kMinBuiltMultiplyAdds; };
    if (first_run && !projection_ready_[d].load(std::memory_order_acquire) &&
        !worth_building(p.seq * p.batch * gate_width * p.input)) {
      const Product projection =
          Product::MakeFirstRun(x.data<float>(), p.seq * p.batch, w, gate_width, p.input, input_bias.data(), buf.xw);
      KILN_RETURN_IF_ERROR(projection.Run(ctx.parallel()));
    } else {
      KILN_ASSIGN_OR_RETURN(
          Product projection,
          Product::Make(ctx, Gemm(w_gemms_, d, gate_width, p.input), w_slots_[d], x.data<float>(), p.seq * p.batch, w,
                        gate_width, p.input, ctx.input_is_constant(kW), input_bias.data(), buf.xw, threads));
      KILN_RETURN_IF_ERROR(projection.Run(ctx.parallel()));
    }

    // The recurrent products: all gates, or GRU's z and r rows and its h
    // rows.
    const int64_t step_width = gru_split ? 2 * h : gate_width;
    const int step_threads = StepThreads(p, step_width, threads);
    const DnnlWeightGemm* step_gemm = Gemm(r_gemms_, d, step_width, h);
    // LSTM and RNN on oneDNN's matmul, with each step's rows of the input
    // projection contiguous (layout 0, every sequence full length): a step's
    // product is added to those rows in place, and the gate rows read that
    // one sum. By then R's stream has pushed the projection out of L2; the
    // product loads it among its own arithmetic, where the latency hides,
    // instead of the gate rows stalling on it.
    const bool padded = std::any_of(lengths.begin(), lengths.end(), [&](int64_t len) { return len != p.seq; });
    const bool accumulate = Accumulates(p, step_gemm, padded);
    auto make_step = [&] {
      return Product::Make(ctx, step_gemm, r_slots_[d], buf.h, p.batch, r, step_width, h, ctx.input_is_constant(kR),
                           nullptr, accumulate ? buf.xw : buf.gates, step_threads, accumulate);
    };
    auto make_candidate = [&] {
      return Product::Make(ctx, Gemm(rh_gemms_, d, h, h), rh_slots_[d], buf.reset_h, p.batch, r + 2 * h * h, h, h,
                           ctx.input_is_constant(kR), nullptr, buf.candidate, step_threads);
    };
    // Whether the prepared form of a first-run product may be switched to:
    // it was published, for the problem this call has.
    auto published = [&](const std::atomic<bool>& ready) { return !padded && ready.load(std::memory_order_acquire); };
    Product step, candidate;
    if (first_run && !published(step_ready_[d]) && !worth_building(p.seq * p.batch * step_width * h)) {
      step =
          Product::MakeFirstRun(buf.h, p.batch, r, step_width, h, nullptr, accumulate ? buf.xw : buf.gates, accumulate);
    } else {
      KILN_ASSIGN_OR_RETURN(step, make_step());
    }
    if (gru_split) {
      if (first_run && !published(candidate_ready_[d]) && !worth_building(p.seq * p.batch * h * h)) {
        candidate = Product::MakeFirstRun(buf.reset_h, p.batch, r + 2 * h * h, h, h, nullptr, buf.candidate);
      } else {
        KILN_ASSIGN_OR_RETURN(candidate, make_candidate());
      }
    }
    // With `accumulate`, the gate rows get the sum as their `gates` and
    // these zeros as their input projection.
    std::vector<float> zero_projection(accumulate ? static_cast<size_t>(gate_width) : 0, 0.0f);

    // Initial states.
    const Tensor* initial_h = ctx.input(kInitialH);
    const Tensor* initial_c = spec_.cell == RecurrentCell::kLstm ? ctx.input(kInitialC) : nullptr;
    for (int64_t b = 0; b < p.batch; ++b) {
      const int64_t offset = StateOffset(p, d, b);
      if (initial_h != nullptr) {
        std::copy_n(initial_h->data<float>() + offset, h, buf.h + b * h);
      } else {
        std::fill_n(buf.h + b * h, h, 0.0f);
      }
      if (initial_c != nullptr) {
        std::copy_n(initial_c->data<float>() + offset, h, buf.c + b * h);
      } else {
        std::fill_n(buf.c + b * h, h, 0.0f);
      }
    }

    // Rows whose sequence has ended still go through the h gate's GEMM.
    if (gru_split) std::fill_n(buf.reset_h, p.batch * h, 0.0f);

    std::vector<float> zeros;
    const float* peep = nullptr;
    if (peephole != nullptr) {
      peep = peephole->data<float>() + d * 3 * h;
    } else if (spec_.cell == RecurrentCell::kLstm) {
      zeros.assign(static_cast<size_t>(3 * h), 0.0f);
      peep = zeros.data();
    }

    const int64_t steps = *std::max_element(lengths.begin(), lengths.end());
    const bool reversed = spec_.reversed(d);
    const float clip = spec_.clip;
    const RecurrentActivation& f = spec_.activation(d, 0);
    for (int64_t s = 0; s < steps; ++s) {
      if (step.first_run() && published(step_ready_[d])) {
        KILN_ASSIGN_OR_RETURN(step, make_step());
      }
      if (gru_split && candidate.first_run() && published(candidate_ready_[d])) {
        KILN_ASSIGN_OR_RETURN(candidate, make_candidate());
      }
      // The step of batch entry b, or -1 when its sequence has ended.
      auto step_of = [&](int64_t b) -> int64_t {
        const int64_t len = lengths[static_cast<size_t>(b)];
        if (s >= len) return -1;
        return reversed ? len - 1 - s : s;
      };
      if (accumulate) {
        // Every batch entry is at the same step t; its rows start at row
        // t * batch.
        float* sums = buf.xw + InputRow(p, step_of(0), 0) * gate_width;
        KILN_RETURN_IF_ERROR(step.AccumulateInto(sums, ctx.parallel()));
        for (int64_t b = 0; b < p.batch; ++b) {
          float* row = sums + b * gate_width;
          if (spec_.cell == RecurrentCell::kLstm) {
            LstmRow(zero_projection.data(), row, peep, h, clip, spec_.input_forget, f, spec_.activation(d, 1),
                    spec_.activation(d, 2), buf.c + b * h, buf.h + b * h, buf.row);
          } else {
            RnnRow(zero_projection.data(), row, h, clip, f, buf.h + b * h);
          }
        }
        if (y != nullptr) {
          for (int64_t b = 0; b < p.batch; ++b) {
            std::copy_n(buf.h + b * h, h, y->data<float>() + OutputOffset(p, step_of(b), d, b));
          }
        }
        continue;
      }
      KILN_RETURN_IF_ERROR(step.Run(ctx.parallel()));
      if (spec_.cell == RecurrentCell::kLstm) {
        const RecurrentActivation& g = spec_.activation(d, 1);
        const RecurrentActivation& hf = spec_.activation(d, 2);
        for (int64_t b = 0; b < p.batch; ++b) {
          const int64_t t = step_of(b);
          if (t < 0) continue;
          LstmRow(buf.xw + InputRow(p, t, b) * gate_width, buf.gates + b * gate_width, peep, h, clip,
                  spec_.input_forget, f, g, hf, buf.c + b * h, buf.h + b * h, buf.row);
        }
      } else if (spec_.cell == RecurrentCell::kGru) {
        const RecurrentActivation& g = spec_.activation(d, 1);
        if (lbr) {
          for (int64_t b = 0; b < p.batch; ++b) {
            const int64_t t = step_of(b);
            if (t < 0) continue;
            GruLinearBeforeResetRow(buf.xw + InputRow(p, t, b) * gate_width, buf.gates + b * gate_width,
                                    recurrent_h_bias.data(), h, clip, f, g, buf.h + b * h);
          }
        } else {
          for (int64_t b = 0; b < p.batch; ++b) {
            const int64_t t = step_of(b);
            if (t < 0) continue;
            GruGatesRow(buf.xw + InputRow(p, t, b) * gate_width, buf.gates + b * step_width, h, clip, f, buf.h + b * h,
                        buf.reset_h + b * h);
          }
          KILN_RETURN_IF_ERROR(candidate.Run(ctx.parallel()));
          for (int64_t b = 0; b < p.batch; ++b) {
            const int64_t t = step_of(b);
            if (t < 0) continue;
            GruUpdateRow(buf.xw + InputRow(p, t, b) * gate_width + 2 * h, buf.gates + b * step_width,
                         buf.candidate + b * h, h, clip, g, buf.h + b * h);
          }
        }
      } else {
        for (int64_t b = 0; b < p.batch; ++b) {
          const int64_t t = step_of(b);
          if (t < 0) continue;
          RnnRow(buf.xw + InputRow(p, t, b) * gate_width, buf.gates + b * gate_width, h, clip, f, buf.h + b * h);
        }
      }
      if (y != nullptr) {
        for (int64_t b = 0; b < p.batch; ++b) {
          const int64_t t = step_of(b);
          if (t >= 0) std::copy_n(buf.h + b * h, h, y->data<float>() + OutputOffset(p, t, d, b));
        }
      }
    }
    return Status::Ok();
  }

  // Checks dtypes and shapes of every input against each other.
  StatusOr<Problem> Check(const KernelContext& ctx) const {
    const Tensor* x = ctx.input(kX);
    const Tensor* w = ctx.input(kW);
    const Tensor* r = ctx.input(kR);
    if (x == nullptr || w == nullptr || r == nullptr) return InvalidArgument(op_, ": X, W and R are required");
    const bool lstm = spec_.cell == RecurrentCell::kLstm;
    const int num_inputs = lstm ? 8 : 6;
    for (int i = num_inputs; i < ctx.num_inputs(); ++i) {
      if (ctx.input(i) != nullptr)
        return InvalidModel(op_, ": has ", ctx.num_inputs(), " inputs, at most ", num_inputs);
    }
    for (int i : {kX, kW, kR, kB, kInitialH, kInitialC, kP}) {
      if (i >= num_inputs) continue;
      const Tensor* t = ctx.input(i);
      if (t != nullptr && t->dtype() != DType::kFloat32) {
        return Unsupported(op_, ": only float32 is supported, input ", i, " is ", DTypeName(t->dtype()));
      }
    }
    Problem p;
    p.dirs = spec_.num_directions();
    p.gates = RecurrentGateCount(spec_.cell);
    if (x->rank() != 3) {
      return InvalidArgument(
          op_, ": X must be 3-D ",
          spec_.layout == 0 ? "[seq_length, batch_size, input_size]" : "[batch_size, seq_length, input_size]", ", got ",
          DimsToString(x->dims()));
    }
    p.seq = spec_.layout == 0 ? x->dim(0) : x->dim(1);
    p.batch = spec_.layout == 0 ? x->dim(1) : x->dim(0);
    p.input = x->dim(2);
    if (r->rank() != 3) return InvalidArgument(op_, ": R must be 3-D, got ", DimsToString(r->dims()));
    p.hidden = spec_.hidden_size > 0 ? spec_.hidden_size : r->dim(2);
    const int64_t g = p.gates;
    const char* gate_names = lstm                                ? "4*hidden_size"
                             : spec_.cell == RecurrentCell::kGru ? "3*hidden_size"
                                                                 : "hidden_size";
    if (r->dim(2) != p.hidden) {
      return InvalidArgument(op_, ": hidden_size is ", p.hidden, " but R ", DimsToString(r->dims()),
                             " has a last dim of ", r->dim(2));
    }
    auto expect = [&](const Tensor* t, const char* name, const Dims& dims, const std::string& meaning) -> Status {
      if (t == nullptr || t->dims() == dims) return Status::Ok();
      return InvalidArgument(op_, ": ", name, " has shape ", DimsToString(t->dims()), ", expected ", DimsToString(dims),
                             " (", meaning, ")");
    };
    const std::string dirs = "num_directions=" + std::to_string(p.dirs);
    const std::string gates = std::string(gate_names) + "=" + std::to_string(g * p.hidden);
    KILN_RETURN_IF_ERROR(expect(w, "W", {p.dirs, g * p.hidden, p.input},
                                dirs + ", " + gates + ", input_size=" + std::to_string(p.input)));
    KILN_RETURN_IF_ERROR(expect(r, "R", {p.dirs, g * p.hidden, p.hidden},
                                dirs + ", " + gates + ", hidden_size=" + std::to_string(p.hidden)));
    KILN_RETURN_IF_ERROR(
        expect(ctx.input(kB), "B", {p.dirs, 2 * g * p.hidden}, dirs + ", 2*" + gates + " for Wb and Rb"));
    const Dims state = spec_.layout == 0 ? Dims{p.dirs, p.batch, p.hidden} : Dims{p.batch, p.dirs, p.hidden};
    const std::string state_meaning = spec_.layout == 0 ? "num_directions, batch_size, hidden_size"
                                                        : "batch_size, num_directions, hidden_size (layout=1)";
    KILN_RETURN_IF_ERROR(expect(ctx.input(kInitialH), "initial_h", state, state_meaning));
    if (lstm) {
      KILN_RETURN_IF_ERROR(expect(ctx.input(kInitialC), "initial_c", state, state_meaning));
      KILN_RETURN_IF_ERROR(
          expect(ctx.input(kP), "P", {p.dirs, 3 * p.hidden}, dirs + ", 3*hidden_size for the i, o, f peepholes"));
    }
    if (const Tensor* lens = ctx.input(kSequenceLens)) {
      if (lens->dtype() != DType::kInt32 && lens->dtype() != DType::kInt64) {
        return InvalidArgument(op_, ": sequence_lens must be int32, got ", DTypeName(lens->dtype()));
      }
      KILN_RETURN_IF_ERROR(expect(lens, "sequence_lens", {p.batch}, "batch_size"));
    }
    return p;
  }

  RecurrentSpec spec_;
  const char* op_;
  // Null when oneDNN cannot run this node's attributes.
  std::unique_ptr<DnnlRecurrent> onednn_;
  // The problem TakePreparation has oneDNN's primitive created for (empty:
  // none), and whether that is still under way: runs of it then take this
  // kernel's own path.
  std::vector<int64_t> prepared_key_;
  std::atomic<bool> preparation_pending_{false};
  // R's size (gates * hidden * hidden floats) from which the first-run path
  // is enough slower than oneDNN's to build the own path's oneDNN products
  // before the primitive: below it they would only delay the primitive.
  static constexpr int64_t kMinBridgedWeights = int64_t{32} << 10;
  // A first-run product's multiply-adds over a run from which building its
  // prepared form on the run's thread pays back: creating a matmul plan and
  // reordering its weight costs about what this many multiply-adds lose on
  // StoredWeightGemm or UnpackedSgemm against oneDNN's AVX-512 kernels.
  static constexpr int64_t kMinBuiltMultiplyAdds = int64_t{48} << 20;
  // Per direction, whether PrepareOwnProducts has published the input
  // projection, the step product and GRU's h-gate product.
  mutable std::atomic<bool> projection_ready_[2] = {}, step_ready_[2] = {}, candidate_ready_[2] = {};
  // W, R (GRU without linear_before_reset: R's z and r rows) and GRU's h
  // rows of R, per direction, packed on first use.
  PackedWeightSlot w_slots_[2], r_slots_[2], rh_slots_[2];
  // The same products on oneDNN's matmul; null when the kernel was made
  // without oneDNN.
  std::unique_ptr<DnnlWeightGemm> w_gemms_[2], r_gemms_[2], rh_gemms_[2];
};

}  // namespace

StatusOr<std::unique_ptr<OpKernel>> CreateRecurrentKernel(const graph::Node& node, RecurrentCell cell,
                                                          bool use_onednn) {
  KILN_ASSIGN_OR_RETURN(RecurrentSpec spec, ParseRecurrentSpec(node, cell));
  std::unique_ptr<DnnlRecurrent> onednn = use_onednn ? DnnlRecurrent::Create(spec) : nullptr;
  return std::unique_ptr<OpKernel>(new RecurrentKernel(std::move(spec), std::move(onednn), use_onednn));
}

}  // namespace kiln::kernels
