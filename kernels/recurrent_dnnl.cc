#include "kernels/recurrent_dnnl.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <omp.h>

#include "graph/mutex.h"
#include "kernels/dnnl_context.h"

namespace kiln::kernels {
namespace {

constexpr int kX = 0, kW = 1, kR = 2, kB = 3, kInitialH = 5, kInitialC = 6, kP = 7;

using Tag = dnnl::memory::format_tag;

dnnl::memory::desc TaggedDesc(const Dims& dims, Tag tag) {
  return dnnl::memory::desc(ToDnnlDims(dims), dnnl::memory::data_type::f32, tag);
}

// For each of oneDNN's gates, the ONNX gate it is. oneDNN's LSTM runs
// i, f, c~, o where ONNX stores i, o, f, c; its GRU's u, r, o are ONNX's
// z, r, h in the same order.
std::vector<int> GateSources(RecurrentCell cell) {
  switch (cell) {
    case RecurrentCell::kLstm: return {0, 2, 3, 1};
    case RecurrentCell::kGru: return {0, 1, 2};
    case RecurrentCell::kRnn: return {0};
  }
  return {};
}

// The weights in the primitive's layout, with the biases and peepholes in
// oneDNN's gate order: built once per plan for constant weights.
struct PreparedWeights {
  const void* sources[4] = {};  // W, R, B, P as given
  dnnl::memory weights_layer, weights_iter;
  std::vector<float> bias, peephole;
};

struct Plan {
  // oneDNN's brgemm RNN splits each time step over the threads OpenMP had
  // when the primitive was created and joins them at a barrier per step, so
  // it runs with exactly that many: with more cores than the session uses
  // (DnnlCreationThreads' default) a one-thread run would wait at every step
  // for a thread that another process may hold.
  int threads = 1;
  dnnl::primitive_desc pd;
  dnnl::primitive primitive;
  dnnl::memory::desc weights_layer_user, weights_iter_user;
  DnnlReorder weights_layer_reorder, weights_iter_reorder;
  mutable Mutex mu;
  mutable std::shared_ptr<const PreparedWeights> prepared KILN_GUARDED_BY(mu);
  // Scratchpads of finished calls, reused by later ones: the primitive's
  // scratchpad holds every step's gates (megabytes for a long sequence),
  // and a fresh one per call costs its page faults on every call.
  mutable Mutex scratch_mu;
  mutable std::vector<dnnl::memory> free_scratchpads KILN_GUARDED_BY(scratch_mu);
};

// A scratchpad taken from a plan's pool (or made) for one call and given
// back when the call ends. Concurrent calls each get their own.
class PooledScratchpad {
 public:
  explicit PooledScratchpad(const Plan& plan) : plan_(plan) {
    {
      MutexLock lock(plan.scratch_mu);
      if (!plan.free_scratchpads.empty()) {
        memory_ = std::move(plan.free_scratchpads.back());
        plan.free_scratchpads.pop_back();
        return;
      }
    }
    memory_ = dnnl::memory(plan.pd.scratchpad_desc(), DnnlEngine());
  }
  ~PooledScratchpad() {
    // Room for as many as calls that usually overlap; more are freed.
    constexpr size_t kMaxPooled = 4;
    MutexLock lock(plan_.scratch_mu);
    if (plan_.free_scratchpads.size() < kMaxPooled) plan_.free_scratchpads.push_back(std::move(memory_));
  }
  PooledScratchpad(const PooledScratchpad&) = delete;
  PooledScratchpad& operator=(const PooledScratchpad&) = delete;
  const dnnl::memory& memory() const { return memory_; }

 private:
  const Plan& plan_;
  dnnl::memory memory_;
};

class DnnlRecurrentImpl final : public DnnlRecurrent {
 public:
  DnnlRecurrentImpl(const RecurrentSpec& spec, dnnl::algorithm rnn_activation)
      : spec_(spec), rnn_activation_(rnn_activation), op_(RecurrentCellOp(spec.cell)) {}

  Status Run(const KernelContext& ctx, const RecurrentProblem& p, Tensor* y, Tensor* y_h, Tensor* y_c) const override {
    if (p.seq == 0 || p.batch == 0 || p.input == 0 || p.hidden == 0) {
      return Unsupported(op_, ": oneDNN needs non-empty sizes");
    }
    const bool lstm = spec_.cell == RecurrentCell::kLstm;
    // oneDNN takes an LSTM's initial c only beside an initial h: given
    // either, both are passed (zeros for the other).
    const bool has_state = ctx.input(kInitialH) != nullptr || (lstm && ctx.input(kInitialC) != nullptr);
    const bool has_p = lstm && ctx.input(kP) != nullptr;
    return GuardDnnl(op_, [&]() -> Status {
      KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Plan> plan,
                            GetPlan(p, has_state, has_p, ctx.parallel().num_threads()));
      KILN_ASSIGN_OR_RETURN(std::shared_ptr<const PreparedWeights> weights, Prepare(ctx, p, *plan));
      return Execute(ctx, p, *plan, *weights, has_state, y, y_h, y_c);
    });
  }

  Status Prepare(const RecurrentProblem& p, bool has_state, bool has_p, int run_threads) const override {
    if (p.seq == 0 || p.batch == 0 || p.input == 0 || p.hidden == 0) {
      return Unsupported(op_, ": oneDNN needs non-empty sizes");
    }
    const int threads = PrimitiveThreads(p, run_threads);
    return GuardDnnl(op_, [&]() -> Status {
      // Built outside the cache's lock, which runs of other shapes take; the
      // calling thread's OpenMP count is restored afterwards.
      DnnlCreationThreads creation_threads(threads);
      KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Plan> plan, MakePlan(p, has_state, has_p, threads));
      cache_.Insert(PlanKey(p, has_state, has_p), threads, std::move(plan));
      return Status::Ok();
    });
  }

 private:
  // A primitive runs with the thread count it was created for (see
  // Plan::threads), so that count is part of its cache key. Its threads
  // meet at a barrier every time step; below kMinParallelStepFlops a step is
  // too short to split (a few microseconds of work per thread), and on a
  // busy machine each barrier can cost a scheduler time slice.
  static int PrimitiveThreads(const RecurrentProblem& p, int run_threads) {
    constexpr int64_t kMinParallelStepFlops = int64_t{16} << 20;
    const int64_t step_flops = 2 * p.batch * p.gates * p.hidden * (p.hidden + p.input) * p.dirs;
    return step_flops < kMinParallelStepFlops ? 1 : std::max(1, run_threads);
  }
  static std::vector<int64_t> PlanKey(const RecurrentProblem& p, bool has_state, bool has_p) {
    return {p.seq, p.batch, p.input, p.hidden, has_state, has_p};
  }

  // The plan for `p` on runs of `run_threads` threads, from the cache or
  // created now.
  StatusOr<std::shared_ptr<const Plan>> GetPlan(const RecurrentProblem& p, bool has_state, bool has_p,
                                                int run_threads) const {
    const int threads = PrimitiveThreads(p, run_threads);
    return cache_.GetOrCreate(PlanKey(p, has_state, has_p), threads,
                              [&] { return MakePlan(p, has_state, has_p, threads); });
  }

  // Bias gates: linear-before-reset GRU has a fourth, R's h-gate bias.
  int64_t BiasGates() const {
    return spec_.cell == RecurrentCell::kGru && spec_.linear_before_reset ? 4 : RecurrentGateCount(spec_.cell);
  }
  dnnl::rnn_direction Direction() const {
    switch (spec_.direction) {
      case RecurrentDirection::kForward: return dnnl::rnn_direction::unidirectional_left2right;
      case RecurrentDirection::kReverse: return dnnl::rnn_direction::unidirectional_right2left;
      case RecurrentDirection::kBidirectional: return dnnl::rnn_direction::bidirectional_concat;
    }
    return dnnl::rnn_direction::unidirectional_left2right;
  }

  StatusOr<std::shared_ptr<const Plan>> MakePlan(const RecurrentProblem& p, bool has_state, bool has_p,
                                                 int threads) const {
    // Overrides DnnlCreationThreads' count for this creation (it restores
    // the caller's afterwards).
    omp_set_num_threads(threads);
    const int64_t t = p.seq, n = p.batch, h = p.hidden, d = p.dirs, g = p.gates;
    const Tag seq_tag = spec_.layout == 0 ? Tag::tnc : Tag::ntc;
    const dnnl::memory::desc src_layer = TaggedDesc({t, n, p.input}, seq_tag);
    const dnnl::memory::desc dst_layer = TaggedDesc({t, n, d * h}, seq_tag);
    const dnnl::memory::desc state = TaggedDesc({1, d, n, h}, Tag::ldnc);
    const dnnl::memory::desc src_iter = has_state ? state : dnnl::memory::desc();
    const dnnl::memory::desc src_iter_c = has_state ? state : dnnl::memory::desc();
    const dnnl::memory::desc weights_layer = AnyF32Desc({1, d, p.input, g, h});
    const dnnl::memory::desc weights_iter = AnyF32Desc({1, d, h, g, h});
    const dnnl::memory::desc bias = TaggedDesc({1, d, BiasGates(), h}, Tag::ldgo);
    const auto inference = dnnl::prop_kind::forward_inference;
    const dnnl::primitive_attr attr = UserScratchpadAttr();
    auto plan = std::make_shared<Plan>();
    plan->threads = threads;
    switch (spec_.cell) {
      case RecurrentCell::kLstm: {
        const dnnl::memory::desc peephole = has_p ? TaggedDesc({1, d, 3, h}, Tag::ldgo) : dnnl::memory::desc();
        dnnl::lstm_forward::desc desc(inference, Direction(), src_layer, src_iter, src_iter_c, weights_layer,
                                      weights_iter, peephole, bias, dst_layer, state, state);
        dnnl::lstm_forward::primitive_desc pd(desc, attr, DnnlEngine());
        plan->primitive = dnnl::lstm_forward(pd);
        plan->pd = pd;
        break;
      }
      case RecurrentCell::kGru:
        if (spec_.linear_before_reset) {
          dnnl::lbr_gru_forward::desc desc(inference, Direction(), src_layer, src_iter, weights_layer, weights_iter,
                                           bias, dst_layer, state);
          dnnl::lbr_gru_forward::primitive_desc pd(desc, attr, DnnlEngine());
          plan->primitive = dnnl::lbr_gru_forward(pd);
          plan->pd = pd;
        } else {
          dnnl::gru_forward::desc desc(inference, Direction(), src_layer, src_iter, weights_layer, weights_iter, bias,
                                       dst_layer, state);
          dnnl::gru_forward::primitive_desc pd(desc, attr, DnnlEngine());
          plan->primitive = dnnl::gru_forward(pd);
          plan->pd = pd;
        }
        break;
      case RecurrentCell::kRnn: {
        dnnl::vanilla_rnn_forward::desc desc(inference, rnn_activation_, Direction(), src_layer, src_iter,
                                             weights_layer, weights_iter, bias, dst_layer, state);
        dnnl::vanilla_rnn_forward::primitive_desc pd(desc, attr, DnnlEngine());
        plan->primitive = dnnl::vanilla_rnn_forward(pd);
        plan->pd = pd;
        break;
      }
    }
    // ONNX's W [D, G*H, I] is oneDNN's ldgoi; R likewise with I = H.
    plan->weights_layer_user = TaggedDesc({1, d, p.input, g, h}, Tag::ldgoi);
    plan->weights_iter_user = TaggedDesc({1, d, h, g, h}, Tag::ldgoi);
    plan->weights_layer_reorder =
        MakeReorder(plan->weights_layer_user, plan->pd.query_md(dnnl::query::exec_arg_md, DNNL_ARG_WEIGHTS_LAYER));
    plan->weights_iter_reorder =
        MakeReorder(plan->weights_iter_user, plan->pd.query_md(dnnl::query::exec_arg_md, DNNL_ARG_WEIGHTS_ITER));
    return std::shared_ptr<const Plan>(std::move(plan));
  }

  // The weights for this call: the plan's prepared copy when W, R, B and P
  // are the constants it was built from, else built now (and kept when
  // they are all constants). May throw dnnl::error.
  StatusOr<std::shared_ptr<const PreparedWeights>> Prepare(const KernelContext& ctx, const RecurrentProblem& p,
                                                           const Plan& plan) const {
    const int inputs[4] = {kW, kR, kB, kP};
    const void* sources[4];
    bool constant = true;
    for (int i = 0; i < 4; ++i) {
      const Tensor* t = inputs[i] == kP && spec_.cell != RecurrentCell::kLstm ? nullptr : ctx.input(inputs[i]);
      sources[i] = t != nullptr ? t->raw_data() : nullptr;
      constant = constant && (t == nullptr || ctx.input_is_constant(inputs[i]));
    }
    MutexLock lock(plan.mu);
    if (constant && plan.prepared != nullptr && std::equal(sources, sources + 4, plan.prepared->sources)) {
      return plan.prepared;
    }
    auto prepared = std::make_shared<PreparedWeights>();
    std::copy(sources, sources + 4, prepared->sources);
    const int64_t h = p.hidden, g = p.gates;
    const std::vector<int> gate_sources = GateSources(spec_.cell);
    // W and R with their gate blocks in oneDNN's order, then reordered into
    // the primitive's layout.
    auto pack = [&](const Tensor& onnx, int64_t k, const DnnlReorder& reorder, const dnnl::memory::desc& user) {
      std::vector<float> shuffled(static_cast<size_t>(onnx.num_elements()));
      const int64_t block = h * k;
      for (int d = 0; d < p.dirs; ++d) {
        for (int64_t gate = 0; gate < g; ++gate) {
          const float* from = onnx.data<float>() + (d * g + gate_sources[static_cast<size_t>(gate)]) * block;
          std::copy_n(from, block, shuffled.data() + (d * g + gate) * block);
        }
      }
      dnnl::memory packed(reorder.pd.dst_desc(), DnnlEngine());
      ExecuteReorder(ctx, reorder, WrapMemory(user, shuffled.data()), packed);
      return packed;
    };
    prepared->weights_layer = pack(*ctx.input(kW), p.input, plan.weights_layer_reorder, plan.weights_layer_user);
    prepared->weights_iter = pack(*ctx.input(kR), h, plan.weights_iter_reorder, plan.weights_iter_user);

    // Wb + Rb per gate; linear-before-reset GRU keeps Rb_h as its 4th gate.
    const int64_t bias_gates = BiasGates();
    const bool lbr = spec_.cell == RecurrentCell::kGru && spec_.linear_before_reset;
    prepared->bias.assign(static_cast<size_t>(p.dirs * bias_gates * h), 0.0f);
    if (const Tensor* b = ctx.input(kB)) {
      for (int d = 0; d < p.dirs; ++d) {
        const float* wb = b->data<float>() + d * 2 * g * h;
        const float* rb = wb + g * h;
        float* out = prepared->bias.data() + d * bias_gates * h;
        for (int64_t gate = 0; gate < g; ++gate) {
          const int64_t src = gate_sources[static_cast<size_t>(gate)];
          const bool recurrent_apart = lbr && gate == 2;
          for (int64_t j = 0; j < h; ++j) {
            out[gate * h + j] = wb[src * h + j] + (recurrent_apart ? 0.0f : rb[src * h + j]);
          }
        }
        if (lbr) std::copy_n(rb + 2 * h, h, out + 3 * h);
      }
    }
    // ONNX's peepholes are i, o, f; oneDNN's i, f, o.
    if (const Tensor* peephole = spec_.cell == RecurrentCell::kLstm ? ctx.input(kP) : nullptr) {
      prepared->peephole.resize(static_cast<size_t>(p.dirs * 3 * h));
      const int order[3] = {0, 2, 1};
      for (int d = 0; d < p.dirs; ++d) {
        for (int k = 0; k < 3; ++k) {
          std::copy_n(peephole->data<float>() + (d * 3 + order[k]) * h, h, prepared->peephole.data() + (d * 3 + k) * h);
        }
      }
    }
    std::shared_ptr<const PreparedWeights> result = std::move(prepared);
    if (constant) plan.prepared = result;
    return result;
  }

  Status Execute(const KernelContext& ctx, const RecurrentProblem& p, const Plan& plan, const PreparedWeights& weights,
                 bool has_state, Tensor* y, Tensor* y_h, Tensor* y_c) const {
    const int64_t t = p.seq, n = p.batch, h = p.hidden, d = p.dirs;
    const bool layout0 = spec_.layout == 0;
    const int64_t state_size = d * n * h;
    // oneDNN's states are [D, N, H]; layout 1's are [N, D, H]: the same
    // memory when D == 1.
    const bool state_direct = layout0 || d == 1;
    // Y: oneDNN writes [T, N, D*H] (tnc) or [N, T, D*H] (ntc); ONNX's
    // layout 1 Y [N, T, D, H] is the latter, layout 0's [T, D, N, H] the
    // former only when D == 1.
    const bool y_direct = y != nullptr && (!layout0 || d == 1);
    auto md = [&](int arg) { return plan.pd.query_md(dnnl::query::exec_arg_md, arg); };

    std::vector<float> transposed_h0, transposed_c0, y_scratch, h_scratch, c_scratch;
    // An initial state in oneDNN's layout; zeros when absent.
    auto to_onednn_state = [&](const Tensor* onnx, std::vector<float>& scratch) -> const float* {
      if (onnx != nullptr && state_direct) return onnx->data<float>();
      scratch.assign(static_cast<size_t>(state_size), 0.0f);
      if (onnx == nullptr) return scratch.data();
      for (int64_t b = 0; b < n; ++b) {
        for (int64_t dir = 0; dir < d; ++dir) {
          std::copy_n(onnx->data<float>() + (b * d + dir) * h, h, scratch.data() + (dir * n + b) * h);
        }
      }
      return scratch.data();
    };
    std::unordered_map<int, dnnl::memory> args;
    args.emplace(DNNL_ARG_SRC_LAYER, WrapMemory(md(DNNL_ARG_SRC_LAYER), ctx.input(kX)->raw_data()));
    const bool lstm = spec_.cell == RecurrentCell::kLstm;
    if (has_state) {
      args.emplace(DNNL_ARG_SRC_ITER,
                   WrapMemory(md(DNNL_ARG_SRC_ITER), to_onednn_state(ctx.input(kInitialH), transposed_h0)));
      if (lstm) {
        args.emplace(DNNL_ARG_SRC_ITER_C,
                     WrapMemory(md(DNNL_ARG_SRC_ITER_C), to_onednn_state(ctx.input(kInitialC), transposed_c0)));
      }
    }
    args.emplace(DNNL_ARG_WEIGHTS_LAYER, weights.weights_layer);
    args.emplace(DNNL_ARG_WEIGHTS_ITER, weights.weights_iter);
    args.emplace(DNNL_ARG_BIAS, WrapMemory(md(DNNL_ARG_BIAS), weights.bias.data()));
    if (!weights.peephole.empty()) {
      args.emplace(DNNL_ARG_WEIGHTS_PEEPHOLE, WrapMemory(md(DNNL_ARG_WEIGHTS_PEEPHOLE), weights.peephole.data()));
    }
    float* dst_layer = nullptr;
    if (y_direct) {
      dst_layer = y->data<float>();
    } else {
      y_scratch.resize(static_cast<size_t>(t * n * d * h));
      dst_layer = y_scratch.data();
    }
    args.emplace(DNNL_ARG_DST_LAYER, WrapMemory(md(DNNL_ARG_DST_LAYER), dst_layer));
    auto state_out = [&](Tensor* out, std::vector<float>& scratch) -> float* {
      if (out != nullptr && state_direct) return out->data<float>();
      scratch.resize(static_cast<size_t>(state_size));
      return scratch.data();
    };
    float* dst_h = state_out(y_h, h_scratch);
    args.emplace(DNNL_ARG_DST_ITER, WrapMemory(md(DNNL_ARG_DST_ITER), dst_h));
    float* dst_c = nullptr;
    if (lstm) {
      dst_c = state_out(y_c, c_scratch);
      args.emplace(DNNL_ARG_DST_ITER_C, WrapMemory(md(DNNL_ARG_DST_ITER_C), dst_c));
    }
    if (omp_get_max_threads() != plan.threads) omp_set_num_threads(plan.threads);
    std::optional<PooledScratchpad> scratchpad;
    if (plan.pd.scratchpad_desc().get_size() > 0) {
      scratchpad.emplace(plan);
      args.emplace(DNNL_ARG_SCRATCHPAD, scratchpad->memory());
    }
    dnnl::stream stream(DnnlEngine());
    plan.primitive.execute(stream, args);
    stream.wait();

    // Scatter what oneDNN wrote in its layout into ONNX's.
    if (y != nullptr && !y_direct) {
      for (int64_t step = 0; step < t; ++step) {
        for (int64_t b = 0; b < n; ++b) {
          for (int64_t dir = 0; dir < d; ++dir) {
            std::copy_n(y_scratch.data() + ((step * n + b) * d + dir) * h, h,
                        y->data<float>() + ((step * d + dir) * n + b) * h);
          }
        }
      }
    }
    auto state_back = [&](Tensor* out, const float* from) {
      if (out == nullptr || state_direct) return;
      for (int64_t b = 0; b < n; ++b) {
        for (int64_t dir = 0; dir < d; ++dir) {
          std::copy_n(from + (dir * n + b) * h, h, out->data<float>() + (b * d + dir) * h);
        }
      }
    };
    state_back(y_h, dst_h);
    if (lstm) state_back(y_c, dst_c);
    return Status::Ok();
  }

  RecurrentSpec spec_;
  dnnl::algorithm rnn_activation_;
  const char* op_;
  ShapeCache<Plan> cache_;
};

}  // namespace

std::unique_ptr<DnnlRecurrent> DnnlRecurrent::Create(const RecurrentSpec& spec) {
  if (spec.clip > 0.0f || spec.input_forget) return nullptr;
  dnnl::algorithm rnn_activation = dnnl::algorithm::eltwise_tanh;
  if (spec.cell == RecurrentCell::kRnn) {
    // One primitive runs both directions, so they must agree.
    const RecurrentActivation& f = spec.activation(0, 0);
    if (spec.num_directions() == 2 && !(spec.activation(1, 0) == f)) return nullptr;
    switch (f.kind) {
      case RecurrentActivation::Kind::kTanh: rnn_activation = dnnl::algorithm::eltwise_tanh; break;
      case RecurrentActivation::Kind::kRelu: rnn_activation = dnnl::algorithm::eltwise_relu; break;
      case RecurrentActivation::Kind::kSigmoid: rnn_activation = dnnl::algorithm::eltwise_logistic; break;
      default: return nullptr;
    }
  } else if (!spec.default_activations()) {
    return nullptr;
  }
  return std::unique_ptr<DnnlRecurrent>(new DnnlRecurrentImpl(spec, rnn_activation));
}

}  // namespace kiln::kernels
