// LSTM, GRU and RNN against a plain double-precision implementation of
// ONNX's equations written here, one batch entry and one step at a time, on
// random sizes and every attribute combination (through the registry's
// kernel: oneDNN where it applies, kiln's own elsewhere); oneDNN's path
// against kiln's own kernel; and the errors bad nodes and inputs give.
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>

#include "kernels/recurrent_dnnl.h"
#include "kernels/recurrent_kernels.h"
#include "kernels/recurrent_spec.h"
#include "test/kernels/kernel_test_util.h"

namespace kiln::testing {
namespace {

graph::Attribute StringsAttr(std::vector<std::string> v) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::kStrings;
  a.strings = std::move(v);
  return a;
}

struct Activation {
  std::string name;
  float alpha = 0, beta = 0;
  bool takes_alpha = false, takes_beta = false;
};

double Activate(const Activation& a, double x) {
  if (a.name == "Sigmoid") return 1.0 / (1.0 + std::exp(-x));
  if (a.name == "Tanh") return std::tanh(x);
  if (a.name == "Relu") return x > 0 ? x : 0;
  if (a.name == "Affine") return a.alpha * x + a.beta;
  if (a.name == "LeakyRelu") return x >= 0 ? x : a.alpha * x;
  if (a.name == "ThresholdedRelu") return x > a.alpha ? x : 0;
  if (a.name == "ScaledTanh") return a.alpha * std::tanh(a.beta * x);
  if (a.name == "HardSigmoid") return std::min(1.0, std::max(0.0, a.alpha * x + a.beta));
  if (a.name == "Elu") return x >= 0 ? x : a.alpha * (std::exp(x) - 1);
  if (a.name == "Softsign") return x / (1 + std::fabs(x));
  if (a.name == "Softplus") return std::log1p(std::exp(x));
  ADD_FAILURE() << "unknown activation " << a.name;
  return 0;
}

Activation Named(const std::string& name) {
  Activation a{name};
  if (name == "Sigmoid" || name == "Tanh" || name == "Relu" || name == "Softsign" || name == "Softplus") return a;
  a.takes_alpha = true;
  if (name == "Affine" || name == "ScaledTanh" || name == "HardSigmoid") a.takes_beta = true;
  return a;
}

struct Case {
  std::string op = "LSTM";
  std::string direction = "forward";
  int64_t layout = 0;
  int64_t seq = 3, batch = 2, input = 4, hidden = 5;
  bool bias = false, initial_h = false, initial_c = false, peephole = false, seq_lens = false;
  float clip = 0;
  bool linear_before_reset = false, input_forget = false;
  bool hidden_size_attr = true;
  // Empty: the defaults, not given as an attribute.
  std::vector<Activation> activations;

  int gates() const { return op == "LSTM" ? 4 : op == "GRU" ? 3 : 1; }
  int per_direction() const { return op == "LSTM" ? 3 : op == "GRU" ? 2 : 1; }
  int dirs() const { return direction == "bidirectional" ? 2 : 1; }
};

struct Inputs {
  Tensor x, w, r, b, lens, h0, c0, p;
  std::vector<int32_t> lengths;
};

Inputs MakeInputs(const Case& c, uint32_t seed) {
  Inputs in;
  const int64_t g = c.gates(), h = c.hidden, d = c.dirs();
  const Dims x_dims = c.layout == 0 ? Dims{c.seq, c.batch, c.input} : Dims{c.batch, c.seq, c.input};
  const Dims state = c.layout == 0 ? Dims{d, c.batch, h} : Dims{c.batch, d, h};
  in.x = ValueOrAbort(RandomTensor(x_dims, seed));
  in.w = ValueOrAbort(RandomTensor({d, g * h, c.input}, seed + 1, -0.6f, 0.6f));
  in.r = ValueOrAbort(RandomTensor({d, g * h, h}, seed + 2, -0.6f, 0.6f));
  if (c.bias) in.b = ValueOrAbort(RandomTensor({d, 2 * g * h}, seed + 3, -0.5f, 0.5f));
  if (c.initial_h) in.h0 = ValueOrAbort(RandomTensor(state, seed + 4));
  if (c.initial_c) in.c0 = ValueOrAbort(RandomTensor(state, seed + 5));
  if (c.peephole) in.p = ValueOrAbort(RandomTensor({d, 3 * h}, seed + 6, -0.5f, 0.5f));
  std::mt19937 rng(seed + 7);
  for (int64_t b = 0; b < c.batch; ++b) {
    in.lengths.push_back(c.seq_lens ? static_cast<int32_t>(rng() % (c.seq + 1)) : static_cast<int32_t>(c.seq));
  }
  if (c.seq_lens) in.lens = MakeTensor<int32_t>({c.batch}, in.lengths);
  return in;
}

struct Outputs {
  std::vector<float> y, y_h, y_c;
};

// ONNX's equations, literally: one batch entry, one step, one unit at a time.
Outputs Reference(const Case& c, const Inputs& in) {
  const int64_t H = c.hidden, I = c.input, B = c.batch, S = c.seq, D = c.dirs(), G = c.gates();
  std::vector<Activation> acts = c.activations;
  if (acts.empty()) {
    for (int64_t d = 0; d < D; ++d) {
      if (c.op == "LSTM") {
        acts.insert(acts.end(), {Named("Sigmoid"), Named("Tanh"), Named("Tanh")});
      } else if (c.op == "GRU") {
        acts.insert(acts.end(), {Named("Sigmoid"), Named("Tanh")});
      } else {
        acts.push_back(Named("Tanh"));
      }
    }
  }
  auto at = [](const Tensor& t, std::initializer_list<int64_t> idx) {
    int64_t off = 0, k = 0;
    for (int64_t i : idx) off = off * t.dim(k++) + i;
    return static_cast<double>(t.data<float>()[off]);
  };
  auto clip = [&](double v) { return c.clip > 0 ? std::min<double>(c.clip, std::max<double>(-c.clip, v)) : v; };
  auto x_at = [&](int64_t t, int64_t b, int64_t i) {
    return c.layout == 0 ? at(in.x, {t, b, i}) : at(in.x, {b, t, i});
  };
  auto state_at = [&](const Tensor& s, int64_t d, int64_t b, int64_t j) {
    if (!s.defined()) return 0.0;
    return c.layout == 0 ? at(s, {d, b, j}) : at(s, {b, d, j});
  };
  Outputs out;
  out.y.assign(static_cast<size_t>(S * D * B * H), 0.0f);
  out.y_h.assign(static_cast<size_t>(D * B * H), 0.0f);
  out.y_c.assign(static_cast<size_t>(D * B * H), 0.0f);
  for (int64_t d = 0; d < D; ++d) {
    const bool rev = c.direction == "reverse" || d == 1;
    const Activation& f = acts[static_cast<size_t>(d * c.per_direction())];
    const Activation& g = acts[static_cast<size_t>(d * c.per_direction() + (c.per_direction() > 1 ? 1 : 0))];
    const Activation& hact = acts[static_cast<size_t>(d * c.per_direction() + (c.per_direction() > 2 ? 2 : 0))];
    for (int64_t b = 0; b < B; ++b) {
      std::vector<double> h(static_cast<size_t>(H)), cs(static_cast<size_t>(H));
      for (int64_t j = 0; j < H; ++j) {
        h[static_cast<size_t>(j)] = state_at(in.h0, d, b, j);
        cs[static_cast<size_t>(j)] = state_at(in.c0, d, b, j);
      }
      const int64_t len = in.lengths[static_cast<size_t>(b)];
      for (int64_t k = 0; k < len; ++k) {
        const int64_t t = rev ? len - 1 - k : k;
        // Wx (+Wb) and Rh (+Rb) per gate unit; GRU's h gate's Rh is done below.
        auto wx = [&](int64_t q, int64_t j) {
          double s = c.bias ? at(in.b, {d, q * H + j}) : 0.0;
          for (int64_t i = 0; i < I; ++i) s += at(in.w, {d, q * H + j, i}) * x_at(t, b, i);
          return s;
        };
        auto rh = [&](int64_t q, int64_t j, const std::vector<double>& v) {
          double s = c.bias ? at(in.b, {d, G * H + q * H + j}) : 0.0;
          for (int64_t i = 0; i < H; ++i) s += at(in.r, {d, q * H + j, i}) * v[static_cast<size_t>(i)];
          return s;
        };
        std::vector<double> next(static_cast<size_t>(H)), next_c = cs;
        if (c.op == "LSTM") {
          auto peep = [&](int64_t q, int64_t j) { return c.peephole ? at(in.p, {d, q * H + j}) : 0.0; };
          for (int64_t j = 0; j < H; ++j) {
            const size_t u = static_cast<size_t>(j);
            const double i_g = Activate(f, clip(wx(0, j) + rh(0, j, h) + peep(0, j) * cs[u]));
            const double f_g =
                c.input_forget ? 1 - i_g : Activate(f, clip(wx(2, j) + rh(2, j, h) + peep(2, j) * cs[u]));
            const double c_g = Activate(g, clip(wx(3, j) + rh(3, j, h)));
            next_c[u] = f_g * cs[u] + i_g * c_g;
            const double o_g = Activate(f, clip(wx(1, j) + rh(1, j, h) + peep(1, j) * next_c[u]));
            next[u] = o_g * Activate(hact, next_c[u]);
          }
        } else if (c.op == "GRU") {
          std::vector<double> z(static_cast<size_t>(H)), r(static_cast<size_t>(H)), rh_prod(static_cast<size_t>(H));
          for (int64_t j = 0; j < H; ++j) {
            z[static_cast<size_t>(j)] = Activate(f, clip(wx(0, j) + rh(0, j, h)));
            r[static_cast<size_t>(j)] = Activate(f, clip(wx(1, j) + rh(1, j, h)));
            rh_prod[static_cast<size_t>(j)] = r[static_cast<size_t>(j)] * h[static_cast<size_t>(j)];
          }
          for (int64_t j = 0; j < H; ++j) {
            const size_t u = static_cast<size_t>(j);
            const double cand = c.linear_before_reset ? Activate(g, clip(wx(2, j) + r[u] * rh(2, j, h)))
                                                      : Activate(g, clip(wx(2, j) + rh(2, j, rh_prod)));
            next[u] = (1 - z[u]) * cand + z[u] * h[u];
          }
        } else {
          for (int64_t j = 0; j < H; ++j) next[static_cast<size_t>(j)] = Activate(f, clip(wx(0, j) + rh(0, j, h)));
        }
        h = next;
        cs = next_c;
        for (int64_t j = 0; j < H; ++j) {
          const int64_t off = c.layout == 0 ? ((t * D + d) * B + b) * H + j : ((b * S + t) * D + d) * H + j;
          out.y[static_cast<size_t>(off)] = static_cast<float>(h[static_cast<size_t>(j)]);
        }
      }
      for (int64_t j = 0; j < H; ++j) {
        const int64_t off = (c.layout == 0 ? d * B + b : b * D + d) * H + j;
        out.y_h[static_cast<size_t>(off)] = static_cast<float>(h[static_cast<size_t>(j)]);
        out.y_c[static_cast<size_t>(off)] = static_cast<float>(cs[static_cast<size_t>(j)]);
      }
    }
  }
  return out;
}

graph::Node MakeNode(const Case& c) {
  graph::Node node;
  node.name = "rnn";
  node.op_type = c.op;
  node.opset = 14;
  node.attributes["direction"] = StringAttr(c.direction);
  if (c.hidden_size_attr) node.attributes["hidden_size"] = IntAttr(c.hidden);
  if (c.layout != 0) node.attributes["layout"] = IntAttr(c.layout);
  if (c.clip > 0) node.attributes["clip"] = FloatAttr(c.clip);
  if (c.op == "GRU") node.attributes["linear_before_reset"] = IntAttr(c.linear_before_reset);
  if (c.op == "LSTM" && c.input_forget) node.attributes["input_forget"] = IntAttr(1);
  if (!c.activations.empty()) {
    std::vector<std::string> names;
    std::vector<float> alphas, betas;
    for (const Activation& a : c.activations) {
      names.push_back(a.name);
      if (a.takes_alpha) alphas.push_back(a.alpha);
      if (a.takes_beta) betas.push_back(a.beta);
    }
    node.attributes["activations"] = StringsAttr(names);
    if (!alphas.empty()) node.attributes["activation_alpha"] = FloatsAttr(alphas);
    if (!betas.empty()) node.attributes["activation_beta"] = FloatsAttr(betas);
  }
  return node;
}

std::vector<const Tensor*> InputList(const Case& c, const Inputs& in) {
  auto opt = [](const Tensor& t) { return t.defined() ? &t : nullptr; };
  std::vector<const Tensor*> list = {&in.x, &in.w, &in.r, opt(in.b), opt(in.lens), opt(in.h0)};
  if (c.op == "LSTM") {
    list.push_back(opt(in.c0));
    list.push_back(opt(in.p));
  }
  return list;
}

void CheckCase(const Case& c, uint32_t seed, const std::vector<bool>* constant = nullptr,
               const kernels::ParallelRunner* runner = nullptr) {
  SCOPED_TRACE(c.op + " " + c.direction + " layout " + std::to_string(c.layout) + " seq " + std::to_string(c.seq) +
               " batch " + std::to_string(c.batch) + " input " + std::to_string(c.input) + " hidden " +
               std::to_string(c.hidden) + " seed " + std::to_string(seed));
  const Inputs in = MakeInputs(c, seed);
  const Outputs want = Reference(c, in);
  const int num_outputs = c.op == "LSTM" ? 3 : 2;
  auto kernel = kernels::DefaultKernelRegistry().Create(MakeNode(c));
  ASSERT_TRUE(kernel.ok()) << kernel.status().ToString();
  std::vector<const Tensor*> inputs = InputList(c, in);
  // Twice: the second call reuses whatever the first packed.
  for (int call = 0; call < 2; ++call) {
    std::vector<Tensor> outputs(static_cast<size_t>(num_outputs));
    PlainAllocator allocator;
    const kernels::SerialRunner serial;
    kernels::KernelContext ctx(inputs, outputs, allocator, runner != nullptr ? *runner : serial, constant);
    Status s = (*kernel)->Compute(ctx);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ExpectNear(ToVector<float>(outputs[0]), want.y, 1e-4, 2e-5);
    ExpectNear(ToVector<float>(outputs[1]), want.y_h, 1e-4, 2e-5);
    if (c.op == "LSTM") ExpectNear(ToVector<float>(outputs[2]), want.y_c, 1e-4, 2e-5);
  }
}

const char* const kOps[] = {"LSTM", "GRU", "RNN"};
const char* const kDirections[] = {"forward", "reverse", "bidirectional"};

TEST(RecurrentTest, DefaultsEveryDirectionAndLayout) {
  uint32_t seed = 1;
  for (const char* op : kOps) {
    for (const char* direction : kDirections) {
      for (int64_t layout : {0, 1}) {
        Case c;
        c.op = op;
        c.direction = direction;
        c.layout = layout;
        CheckCase(c, seed++);
      }
    }
  }
}

// Random sizes and every optional input and attribute, chosen at random
// per case; hidden sizes on both sides of the packed GEMM's threshold.
TEST(RecurrentTest, RandomCasesMatchReference) {
  std::mt19937 rng(42);
  const std::vector<std::string> pool = {"Sigmoid",         "Tanh",       "Relu",        "Affine", "LeakyRelu",
                                         "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu",    "Softsign",
                                         "Softplus"};
  auto coin = [&] { return rng() % 2 == 0; };
  for (int i = 0; i < 120; ++i) {
    Case c;
    c.op = kOps[i % 3];
    c.direction = kDirections[(i / 3) % 3];
    c.layout = coin() ? 1 : 0;
    c.seq = 1 + static_cast<int64_t>(rng() % 7);
    c.batch = 1 + static_cast<int64_t>(rng() % 5);
    c.input = 1 + static_cast<int64_t>(rng() % 9);
    c.hidden = std::vector<int64_t>{1, 2, 3, 7, 8, 16, 21}[rng() % 7];
    c.bias = coin();
    c.initial_h = coin();
    c.initial_c = c.op == "LSTM" && coin();
    c.peephole = c.op == "LSTM" && coin();
    c.seq_lens = coin();
    c.clip = rng() % 3 == 0 ? 0.5f + static_cast<float>(rng() % 3) : 0.0f;
    c.linear_before_reset = c.op == "GRU" && coin();
    c.input_forget = c.op == "LSTM" && rng() % 4 == 0;
    c.hidden_size_attr = coin();
    if (rng() % 3 != 0) {
      for (int k = 0; k < c.per_direction() * c.dirs(); ++k) {
        Activation a = Named(pool[rng() % pool.size()]);
        a.alpha = 0.1f + 0.2f * static_cast<float>(rng() % 5);
        a.beta = 0.1f * static_cast<float>(rng() % 5);
        c.activations.push_back(a);
      }
    }
    CheckCase(c, 100 + static_cast<uint32_t>(i));
  }
}

TEST(RecurrentTest, ConstantWeightsArePackedOnceAndReused) {
  for (const char* op : kOps) {
    for (bool lbr : {false, true}) {
      Case c;
      c.op = op;
      c.direction = "bidirectional";
      c.seq = 6;
      c.batch = 3;
      c.input = 10;
      c.hidden = 24;
      c.bias = true;
      c.linear_before_reset = lbr;
      const std::vector<bool> constant = {false, true, true, true, false, false, false, true};
      CheckCase(c, 7, &constant);
    }
  }
}

// Products wide enough for oneDNN's matmul (recurrent_gemm.h), on kiln's
// kernel (padded sequences, or LSTM and GRU at hidden 257, whose weights
// outgrow L2) or on oneDNN's RNN primitive: odd hidden sizes, batch 1 and
// more, both layouts, every direction, weights as graph constants (reordered
// once, reused by the second call) and as run-time inputs.
TEST(RecurrentTest, WideProductsMatchReference) {
  std::mt19937 rng(11);
  auto coin = [&] { return rng() % 2 == 0; };
  const std::vector<bool> constant = {false, true, true, true, false, false, false, true};
  int i = 0;
  for (const char* op : kOps) {
    for (int64_t hidden : {37, 129, 257}) {
      // An RNN's weights stay below L2 at hidden 257 (oneDNN's primitive
      // runs it), and its tanh over 371 products per step drifts from the
      // reference's summation order past the tolerance.
      if (op == std::string("RNN") && hidden == 257) continue;
      for (const char* direction : kDirections) {
        Case c;
        c.op = op;
        c.direction = direction;
        c.layout = i % 2;
        c.seq = 2 + static_cast<int64_t>(rng() % 6);
        c.batch = i % 3 == 0 ? 1 : 1 + static_cast<int64_t>(rng() % 5);
        c.input = 100 + static_cast<int64_t>(rng() % 60);
        c.hidden = hidden;
        c.bias = coin();
        c.initial_h = coin();
        c.initial_c = c.op == std::string("LSTM") && coin();
        c.peephole = c.op == std::string("LSTM") && coin();
        c.seq_lens = coin();
        c.linear_before_reset = c.op == std::string("GRU") && coin();
        CheckCase(c, 900 + static_cast<uint32_t>(i), i % 2 == 0 ? &constant : nullptr);
        ++i;
      }
    }
  }
}

// Layout 0, every sequence full length, a step product on oneDNN's matmul
// and kiln's own kernel: each step's product is added to its rows of the
// input projection in place (recurrent.cc's `accumulate`). LSTM with the
// default activations (weights past a 2 MB L2, so kiln's kernel runs
// rather than oneDNN's primitive) and, through clip, which oneDNN's
// primitive does not take, LSTM's general gate row and RNN; odd batches,
// one step and several, every direction.
TEST(RecurrentTest, StepProductsAddedToTheProjectionMatchReference) {
  const std::vector<bool> constant = {false, true, true, true, false, false, false, true};
  int i = 0;
  for (const char* direction : kDirections) {
    for (int64_t seq : {1, 4}) {
      for (int variant = 0; variant < 3; ++variant) {
        Case c;
        c.op = variant == 2 ? "RNN" : "LSTM";
        c.direction = direction;
        c.seq = seq;
        c.batch = 3;
        c.input = 130;
        c.hidden = variant == 0 ? 320 : 129;
        c.clip = variant == 0 ? 0.0f : 1000.0f;
        c.bias = true;
        c.initial_h = i % 2 == 0;
        c.initial_c = c.op == std::string("LSTM") && i % 3 == 0;
        c.peephole = variant == 1;
        CheckCase(c, 990 + static_cast<uint32_t>(i), i % 2 == 0 ? &constant : nullptr);
        ++i;
      }
    }
  }
}

// With two threads, the products whose weights are large enough run on a
// two-thread OpenMP team (recurrent.cc's StepThreads); against the
// reference.
TEST(RecurrentTest, TwoThreadProductsMatchReference) {
  const TwoThreadRunner two;
  const std::vector<bool> constant = {false, true, true, true, false, false, false, true};
  int i = 0;
  for (const char* op : kOps) {
    for (bool padded : {false, true}) {
      Case c;
      c.op = op;
      c.direction = i % 2 == 0 ? "bidirectional" : "forward";
      c.layout = i % 2;
      c.seq = 5;
      c.batch = 3;
      c.input = 130;
      c.hidden = c.op == std::string("RNN") ? 129 : 257;
      c.bias = true;
      c.initial_h = true;
      c.seq_lens = padded;
      c.linear_before_reset = c.op == std::string("GRU") && padded;
      CheckCase(c, 950 + static_cast<uint32_t>(i), padded ? &constant : nullptr, &two);
      ++i;
    }
  }
}

// Concurrent calls of one kernel share its plans, prepared weights and
// scratchpad pool (ThreadSanitizer runs this too); each gets the serial
// result.
TEST(RecurrentTest, ConcurrentCallsAgree) {
  for (int i = 0; i < 7; ++i) {
    const char* op = kOps[i % 3];
    Case c;
    c.op = op;
    c.direction = "bidirectional";
    c.seq = 12;
    c.batch = 3;
    c.input = 16;
    c.hidden = 32;
    c.bias = true;
    c.initial_h = true;
    if (i >= 3 && i < 6) {
      // Padded sequences on kiln's kernel, products on oneDNN's matmul.
      c.seq_lens = true;
      c.input = 160;
      c.hidden = 96;
    } else if (i == 6) {
      // An LSTM past a 2 MB L2 on kiln's kernel, its step products added to
      // the input projection in place.
      c.input = 130;
      c.hidden = 320;
    }
    const Inputs in = MakeInputs(c, 21);
    const int num_outputs = c.op == "LSTM" ? 3 : 2;
    auto kernel = kernels::DefaultKernelRegistry().Create(MakeNode(c));
    ASSERT_TRUE(kernel.ok()) << kernel.status().ToString();
    const std::vector<const Tensor*> inputs = InputList(c, in);
    const std::vector<bool> constant = {false, true, true, true, false, false, false, true};
    auto run = [&](std::vector<Tensor>& outputs) {
      outputs.assign(static_cast<size_t>(num_outputs), Tensor());
      PlainAllocator allocator;
      const kernels::SerialRunner serial;
      kernels::KernelContext ctx(inputs, outputs, allocator, serial, &constant);
      return (*kernel)->Compute(ctx);
    };
    std::vector<Tensor> want;
    ASSERT_TRUE(run(want).ok());
    constexpr int kThreads = 4;
    std::vector<std::vector<Tensor>> got(kThreads);
    std::vector<Status> status(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 5 && status[static_cast<size_t>(t)].ok(); ++i)
          status[static_cast<size_t>(t)] = run(got[static_cast<size_t>(t)]);
      });
    }
    for (std::thread& t : threads) t.join();
    for (int t = 0; t < kThreads; ++t) {
      ASSERT_TRUE(status[static_cast<size_t>(t)].ok()) << status[static_cast<size_t>(t)].ToString();
      for (int o = 0; o < num_outputs; ++o) {
        EXPECT_EQ(ToVector<float>(got[static_cast<size_t>(t)][static_cast<size_t>(o)]),
                  ToVector<float>(want[static_cast<size_t>(o)]))
            << op << " thread " << t << " output " << o;
      }
    }
  }
}

// A bidirectional node may list one direction's activations, used for both.
TEST(RecurrentTest, OneDirectionsActivationsServeBoth) {
  Case c;
  c.op = "GRU";
  c.direction = "bidirectional";
  graph::Node node = MakeNode(c);
  node.attributes["activations"] = StringsAttr({"HardSigmoid", "Softsign"});
  node.attributes["activation_alpha"] = FloatsAttr({0.3f});
  node.attributes["activation_beta"] = FloatsAttr({0.4f});
  Case both = c;
  Activation hs = Named("HardSigmoid");
  hs.alpha = 0.3f;
  hs.beta = 0.4f;
  both.activations = {hs, Named("Softsign"), hs, Named("Softsign")};
  const Inputs in = MakeInputs(c, 3);
  auto got = RunNode(node, InputList(c, in), kernels::SerialRunner(), 2);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  // The second direction's list as given repeats alpha and beta too.
  graph::Node explicit_node = MakeNode(both);
  explicit_node.attributes["activation_alpha"] = FloatsAttr({0.3f, 0.3f});
  explicit_node.attributes["activation_beta"] = FloatsAttr({0.4f, 0.4f});
  auto want = RunNode(explicit_node, InputList(c, in), kernels::SerialRunner(), 2);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  EXPECT_EQ(ToVector<float>((*got)[0]), ToVector<float>((*want)[0]));
}

TEST(RecurrentTest, OnlyTheRequestedOutputs) {
  Case c;
  c.op = "LSTM";
  c.seq_lens = true;
  const Inputs in = MakeInputs(c, 9);
  const Outputs want = Reference(c, in);
  auto got = RunNode(MakeNode(c), InputList(c, in), kernels::SerialRunner(), 1);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectNear(ToVector<float>((*got)[0]), want.y, 1e-4, 2e-5);
}

TEST(RecurrentTest, ZeroLengthSequencesKeepTheInitialState) {
  Case c;
  c.op = "GRU";
  c.direction = "bidirectional";
  c.initial_h = true;
  c.seq_lens = true;
  Inputs in = MakeInputs(c, 11);
  in.lengths = {0, static_cast<int32_t>(c.seq)};
  in.lens = MakeTensor<int32_t>({c.batch}, in.lengths);
  const Outputs want = Reference(c, in);
  auto got = RunNode(MakeNode(c), InputList(c, in), kernels::SerialRunner(), 2);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectNear(ToVector<float>((*got)[0]), want.y, 1e-4, 2e-5);
  ExpectNear(ToVector<float>((*got)[1]), want.y_h, 1e-4, 2e-5);
}

kernels::RecurrentCell CellOf(const std::string& op) {
  return op == "LSTM"  ? kernels::RecurrentCell::kLstm
         : op == "GRU" ? kernels::RecurrentCell::kGru
                       : kernels::RecurrentCell::kRnn;
}

// oneDNN's primitives, called directly (so that a silent fallback cannot
// pass), against kiln's own kernel on random sizes and every attribute
// combination oneDNN takes.
TEST(RecurrentTest, OneDnnMatchesOwnKernel) {
  std::mt19937 rng(7);
  auto coin = [&] { return rng() % 2 == 0; };
  for (int i = 0; i < 60; ++i) {
    Case c;
    c.op = kOps[i % 3];
    c.direction = kDirections[(i / 3) % 3];
    c.layout = (i / 9) % 2;
    c.seq = 1 + static_cast<int64_t>(rng() % 12);
    c.batch = 1 + static_cast<int64_t>(rng() % 6);
    c.input = 1 + static_cast<int64_t>(rng() % 40);
    c.hidden = 1 + static_cast<int64_t>(rng() % 70);
    c.bias = coin();
    c.initial_h = coin();
    c.initial_c = c.op == "LSTM" && coin();
    c.peephole = c.op == "LSTM" && coin();
    c.linear_before_reset = c.op == "GRU" && coin();
    if (c.op == "RNN" && coin())
      c.activations.assign(static_cast<size_t>(c.dirs()), Named(coin() ? "Relu" : "Sigmoid"));
    // Full-length sequence_lens are oneDNN's too.
    c.seq_lens = false;
    SCOPED_TRACE(c.op + " " + c.direction + " layout " + std::to_string(c.layout) + " seq " + std::to_string(c.seq) +
                 " batch " + std::to_string(c.batch) + " input " + std::to_string(c.input) + " hidden " +
                 std::to_string(c.hidden) + " case " + std::to_string(i));
    const Inputs in = MakeInputs(c, 500 + static_cast<uint32_t>(i));
    const graph::Node node = MakeNode(c);
    const int num_outputs = c.op == "LSTM" ? 3 : 2;
    auto own = kernels::CreateRecurrentKernel(node, CellOf(c.op), /*use_onednn=*/false);
    ASSERT_TRUE(own.ok()) << own.status().ToString();
    std::vector<const Tensor*> inputs = InputList(c, in);
    const kernels::SerialRunner serial;
    PlainAllocator allocator;
    std::vector<Tensor> want(static_cast<size_t>(num_outputs));
    kernels::KernelContext own_ctx(inputs, want, allocator, serial);
    ASSERT_TRUE((*own)->Compute(own_ctx).ok());

    auto spec = kernels::ParseRecurrentSpec(node, CellOf(c.op));
    ASSERT_TRUE(spec.ok());
    std::unique_ptr<kernels::DnnlRecurrent> onednn = kernels::DnnlRecurrent::Create(*spec);
    ASSERT_NE(onednn, nullptr);
    kernels::RecurrentProblem p;
    p.seq = c.seq;
    p.batch = c.batch;
    p.input = c.input;
    p.hidden = c.hidden;
    p.dirs = c.dirs();
    p.gates = c.gates();
    std::vector<Tensor> got(static_cast<size_t>(num_outputs));
    for (int o = 0; o < num_outputs; ++o) {
      got[static_cast<size_t>(o)] =
          ValueOrAbort(Tensor::Allocate(DType::kFloat32, want[static_cast<size_t>(o)].dims()));
    }
    kernels::KernelContext ctx(inputs, got, allocator, serial);
    Status s = onednn->Run(ctx, p, &got[0], &got[1], num_outputs > 2 ? &got[2] : nullptr);
    ASSERT_TRUE(s.ok()) << s.ToString();
    // Relu RNNs grow without bound and amplify rounding order over steps.
    for (int o = 0; o < num_outputs; ++o) {
      ExpectNear(ToVector<float>(got[static_cast<size_t>(o)]), ToVector<float>(want[static_cast<size_t>(o)]), 1e-3,
                 2e-5);
    }
  }
}

TEST(RecurrentTest, OneDnnTakesOnlyWhatItImplements) {
  Case c;
  c.op = "LSTM";
  graph::Node node = MakeNode(c);
  EXPECT_NE(kernels::DnnlRecurrent::Create(*kernels::ParseRecurrentSpec(node, kernels::RecurrentCell::kLstm)), nullptr);
  node.attributes["clip"] = FloatAttr(1.0f);
  EXPECT_EQ(kernels::DnnlRecurrent::Create(*kernels::ParseRecurrentSpec(node, kernels::RecurrentCell::kLstm)), nullptr);
  node = MakeNode(c);
  node.attributes["input_forget"] = IntAttr(1);
  EXPECT_EQ(kernels::DnnlRecurrent::Create(*kernels::ParseRecurrentSpec(node, kernels::RecurrentCell::kLstm)), nullptr);
  node = MakeNode(c);
  node.attributes["activations"] = StringsAttr({"Sigmoid", "Relu", "Tanh"});
  EXPECT_EQ(kernels::DnnlRecurrent::Create(*kernels::ParseRecurrentSpec(node, kernels::RecurrentCell::kLstm)), nullptr);
}

// --- bad nodes and inputs --------------------------------------------------

std::string CreateError(const graph::Node& node) {
  auto kernel = kernels::DefaultKernelRegistry().Create(node);
  return kernel.ok() ? std::string("created") : kernel.status().ToString();
}

std::string RunError(const Case& c, const Inputs& in) {
  auto got = RunNode(MakeNode(c), InputList(c, in), kernels::SerialRunner(), c.op == "LSTM" ? 3 : 2);
  return got.ok() ? std::string("ran") : got.status().ToString();
}

TEST(RecurrentErrorTest, UnknownActivation) {
  Case c;
  graph::Node node = MakeNode(c);
  node.attributes["activations"] = StringsAttr({"Sigmoid", "Swish", "Tanh"});
  EXPECT_THAT(CreateError(node), ::testing::HasSubstr("unknown activation function 'Swish'"));
}

TEST(RecurrentErrorTest, WrongActivationCount) {
  Case c;
  c.op = "GRU";
  graph::Node node = MakeNode(c);
  node.attributes["activations"] = StringsAttr({"Sigmoid", "Tanh", "Tanh"});
  EXPECT_THAT(CreateError(node), ::testing::HasSubstr("activations lists 3 functions, expected 2"));
}

TEST(RecurrentErrorTest, BadAttributes) {
  Case c;
  graph::Node node = MakeNode(c);
  node.attributes["direction"] = StringAttr("sideways");
  EXPECT_THAT(CreateError(node), ::testing::HasSubstr("direction 'sideways'"));
  node = MakeNode(c);
  node.attributes["layout"] = IntAttr(2);
  EXPECT_THAT(CreateError(node), ::testing::HasSubstr("layout must be 0 or 1"));
  node = MakeNode(c);
  node.attributes["clip"] = FloatAttr(-1.0f);
  EXPECT_THAT(CreateError(node), ::testing::HasSubstr("clip must be positive"));
  node = MakeNode(c);
  node.attributes["hidden_size"] = IntAttr(0);
  EXPECT_THAT(CreateError(node), ::testing::HasSubstr("hidden_size must be positive"));
}

TEST(RecurrentErrorTest, WrongWeightShape) {
  Case c;
  Inputs in = MakeInputs(c, 1);
  in.w = ValueOrAbort(RandomTensor({1, 3 * c.hidden, c.input}, 1));
  EXPECT_THAT(RunError(c, in), ::testing::HasSubstr("W has shape [1, 15, 4], expected [1, 20, 4]"));
}

TEST(RecurrentErrorTest, HiddenSizeMismatch) {
  Case c;
  c.op = "RNN";
  Inputs in = MakeInputs(c, 1);
  c.hidden = 6;  // the attribute now disagrees with R
  EXPECT_THAT(RunError(c, in), ::testing::HasSubstr("hidden_size is 6 but R [1, 5, 5]"));
}

TEST(RecurrentErrorTest, WrongStateAndBiasShapes) {
  Case c;
  c.op = "GRU";
  c.direction = "bidirectional";
  c.batch = 3;
  c.bias = true;
  c.initial_h = true;
  Inputs in = MakeInputs(c, 1);
  Inputs bad = in;
  bad.b = ValueOrAbort(RandomTensor({2, 3 * c.hidden}, 1));
  EXPECT_THAT(RunError(c, bad), ::testing::HasSubstr("B has shape [2, 15], expected [2, 30]"));
  bad = in;
  bad.h0 = ValueOrAbort(RandomTensor({c.batch, 2, c.hidden}, 1));  // layout 1's order under layout 0
  EXPECT_THAT(RunError(c, bad), ::testing::HasSubstr("initial_h has shape [3, 2, 5], expected [2, 3, 5]"));
}

TEST(RecurrentErrorTest, SequenceLengthOutOfRange) {
  Case c;
  c.seq_lens = true;
  Inputs in = MakeInputs(c, 1);
  in.lens = MakeTensor<int32_t>({c.batch}, {1, 4});
  EXPECT_THAT(RunError(c, in), ::testing::HasSubstr("sequence_lens[1] = 4 is outside [0, 3]"));
  in.lens = MakeTensor<int32_t>({3}, {1, 1, 1});
  EXPECT_THAT(RunError(c, in), ::testing::HasSubstr("sequence_lens has shape [3], expected [2]"));
}

TEST(RecurrentErrorTest, WrongRankAndDtype) {
  Case c;
  Inputs in = MakeInputs(c, 1);
  Inputs bad = in;
  bad.x = ValueOrAbort(RandomTensor({3, 8}, 1));
  EXPECT_THAT(RunError(c, bad), ::testing::HasSubstr("X must be 3-D"));
  bad = in;
  bad.x = MakeTensor<int32_t>({c.seq, c.batch, c.input}, std::vector<int32_t>(24, 1));
  EXPECT_THAT(RunError(c, bad), ::testing::HasSubstr("only float32 is supported"));
}

}  // namespace
}  // namespace kiln::testing
