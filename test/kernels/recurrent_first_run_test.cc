// The first run of a recurrent node whose shape is being prepared in the
// background (OpKernel::TakePreparation) computes on B as stored, with
// nothing created, reordered or packed (recurrent.cc, Product::MakeFirstRun,
// stored_weight_gemm.h). Across cells, directions, batch and hidden sizes,
// layouts, initial states, peepholes, clip and activations, its outputs
// match kiln's own kernel without oneDNN (the reference the other recurrent
// tests hold to ONNX); with the preparation run at the same time (products
// switched to between steps) they match too; and once it has run, the
// kernel gives the outputs of the steady path bit for bit. Products large
// enough are built by the run itself; the outputs are the same.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kernels/recurrent_kernels.h"
#include "test/kernels/kernel_test_util.h"

namespace kiln::kernels {
namespace {

using kiln::testing::FloatAttr;
using kiln::testing::IntAttr;
using kiln::testing::PlainAllocator;
using kiln::testing::StringAttr;
using kiln::testing::TwoThreadRunner;

struct Case {
  RecurrentCell cell;
  const char* direction;
  int64_t seq, batch, input, hidden;
  bool initial_state = true;
  bool linear_before_reset = false;
  bool peepholes = false;
  int64_t layout = 0;
  float clip = 0.0f;  // 0: none
};

const char* OpName(RecurrentCell cell) {
  return cell == RecurrentCell::kLstm ? "LSTM" : cell == RecurrentCell::kGru ? "GRU" : "RNN";
}

class FirstRun {
 public:
  explicit FirstRun(const Case& c) : c_(c) {
    const int64_t dirs = std::string(c.direction) == "bidirectional" ? 2 : 1;
    const int64_t gates = RecurrentGateCount(c.cell);
    const bool lstm = c.cell == RecurrentCell::kLstm;
    const Dims x_dims = c.layout == 0 ? Dims{c.seq, c.batch, c.input} : Dims{c.batch, c.seq, c.input};
    const Dims state_dims = c.layout == 0 ? Dims{dirs, c.batch, c.hidden} : Dims{c.batch, dirs, c.hidden};
    x_ = Random(x_dims, 1);
    w_ = Random({dirs, gates * c.hidden, c.input}, 2);
    r_ = Random({dirs, gates * c.hidden, c.hidden}, 3);
    b_ = Random({dirs, 2 * gates * c.hidden}, 4);
    h0_ = Random(state_dims, 5);
    c0_ = Random(state_dims, 6);
    p_ = Random({dirs, 3 * c.hidden}, 7);

    node_.op_type = OpName(c.cell);
    node_.opset = 14;
    node_.attributes["hidden_size"] = IntAttr(c.hidden);
    node_.attributes["direction"] = StringAttr(c.direction);
    if (c.layout != 0) node_.attributes["layout"] = IntAttr(c.layout);
    if (c.linear_before_reset) node_.attributes["linear_before_reset"] = IntAttr(1);
    if (c.clip > 0) node_.attributes["clip"] = FloatAttr(c.clip);

    inputs_ = {&x_, &w_, &r_, &b_, nullptr, c.initial_state ? &h0_ : nullptr};
    constants_ = {nullptr, &w_, &r_, &b_, nullptr, nullptr};
    static_dims_ = {x_.dims(), w_.dims(),    r_.dims(),
                    b_.dims(), std::nullopt, c.initial_state ? std::optional<Dims>(h0_.dims()) : std::nullopt};
    is_constant_ = {false, true, true, true, false, false};
    if (lstm) {
      inputs_.push_back(c.initial_state ? &c0_ : nullptr);
      inputs_.push_back(c.peepholes ? &p_ : nullptr);
      constants_.push_back(nullptr);
      constants_.push_back(c.peepholes ? &p_ : nullptr);
      static_dims_.push_back(c.initial_state ? std::optional<Dims>(c0_.dims()) : std::nullopt);
      static_dims_.push_back(c.peepholes ? std::optional<Dims>(p_.dims()) : std::nullopt);
      is_constant_.push_back(false);
      is_constant_.push_back(c.peepholes);
    }
  }

  std::unique_ptr<OpKernel> Kernel(bool use_onednn = true) const {
    auto kernel = CreateRecurrentKernel(node_, c_.cell, use_onednn);
    EXPECT_TRUE(kernel.ok()) << kernel.status().ToString();
    return kernel.ok() ? std::move(kernel).value() : nullptr;
  }

  std::function<void()> Prepare(OpKernel& kernel) const { return kernel.TakePreparation(constants_, static_dims_); }

  std::vector<std::vector<float>> Run(const OpKernel& kernel, const ParallelRunner& runner = SerialRunner()) const {
    std::vector<Tensor> outputs(c_.cell == RecurrentCell::kLstm ? 3 : 2);
    PlainAllocator allocator;
    KernelContext ctx(inputs_, outputs, allocator, runner, &is_constant_);
    const Status s = kernel.Compute(ctx);
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::vector<std::vector<float>> values;
    for (const Tensor& t : outputs) values.push_back(s.ok() ? kiln::testing::ToVector<float>(t) : std::vector<float>{});
    return values;
  }

 private:
  static Tensor Random(const Dims& dims, uint32_t seed) {
    return kiln::testing::RandomTensor(dims, seed, -0.5f, 0.5f).value();
  }

  Case c_;
  Tensor x_, w_, r_, b_, h0_, c0_, p_;
  graph::Node node_;
  std::vector<const Tensor*> inputs_, constants_;
  std::vector<std::optional<Dims>> static_dims_;
  std::vector<bool> is_constant_;
};

void ExpectClose(const std::vector<std::vector<float>>& got, const std::vector<std::vector<float>>& want,
                 const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t o = 0; o < got.size(); ++o) {
    ASSERT_EQ(got[o].size(), want[o].size()) << what << ", output " << o;
    ASSERT_FALSE(got[o].empty()) << what << ", output " << o;
    for (size_t i = 0; i < got[o].size(); ++i) {
      ASSERT_NEAR(got[o][i], want[o][i], 1e-4 * (1 + std::fabs(want[o][i])))
          << what << ", output " << o << ", element " << i;
    }
  }
}

std::vector<Case> Cases() {
  using C = RecurrentCell;
  std::vector<Case> cases;
  for (const char* direction : {"forward", "reverse", "bidirectional"}) {
    for (int64_t batch : {1, 3, 5}) {
      cases.push_back({C::kLstm, direction, 6, batch, 5, 7});
      cases.push_back({C::kGru, direction, 6, batch, 9, 33, true, /*linear_before_reset=*/true});
      cases.push_back({C::kRnn, direction, 6, batch, 9, 17});
    }
  }
  // oneDNN matmul-sized step products (gates * hidden * hidden >= 16K) and
  // the GRU built for the first run to switch to (>= 32K).
  cases.push_back({C::kLstm, "forward", 5, 4, 40, 70});
  cases.push_back({C::kGru, "bidirectional", 5, 4, 24, 130, true, true});
  cases.push_back({C::kGru, "forward", 5, 2, 24, 130, false});
  // GRU without linear_before_reset (two products a step), without initial
  // state, peepholes, layout 1.
  cases.push_back({C::kGru, "bidirectional", 4, 3, 11, 13, true, false});
  cases.push_back({C::kLstm, "bidirectional", 4, 3, 11, 13, false});
  cases.push_back({C::kLstm, "forward", 4, 3, 11, 13, true, false, /*peepholes=*/true});
  cases.push_back({C::kLstm, "reverse", 4, 3, 11, 13, true, false, false, /*layout=*/1});
  cases.push_back({C::kGru, "bidirectional", 4, 2, 11, 13, true, true, false, /*layout=*/1});
  // clip: oneDNN's RNN primitive cannot run it, so the own path's products
  // are what gets prepared.
  cases.push_back({C::kLstm, "bidirectional", 4, 3, 11, 70, true, false, false, 0, /*clip=*/0.7f});
  cases.push_back({C::kGru, "forward", 4, 3, 11, 90, true, false, false, 0, 0.7f});
  // Weights larger than most L2 caches: kiln's own path on oneDNN's
  // matmul is the steady path (the zoo's LSTM).
  cases.push_back({C::kLstm, "forward", 3, 2, 128, 256});
  // The zoo's first layer: products large enough that a run builds them
  // rather than computing them on the stored weights.
  cases.push_back({C::kLstm, "forward", 100, 4, 128, 256});
  return cases;
}

std::string Describe(const Case& c) {
  return std::string(OpName(c.cell)) + " " + c.direction + " seq " + std::to_string(c.seq) + " batch " +
         std::to_string(c.batch) + " input " + std::to_string(c.input) + " hidden " + std::to_string(c.hidden) +
         (c.initial_state ? "" : " no state") + (c.linear_before_reset ? " lbr" : "") +
         (c.peepholes ? " peepholes" : "") + (c.layout ? " layout 1" : "") + (c.clip > 0 ? " clip" : "");
}

TEST(RecurrentFirstRun, MatchesReferenceThenSteadyPathIsSwappedIn) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(Describe(c));
    const FirstRun run(c);
    const std::unique_ptr<OpKernel> reference_kernel = run.Kernel(/*use_onednn=*/false);
    const std::unique_ptr<OpKernel> kernel = run.Kernel();
    const std::unique_ptr<OpKernel> steady_kernel = run.Kernel();
    ASSERT_TRUE(reference_kernel && kernel && steady_kernel);
    const std::vector<std::vector<float>> reference = run.Run(*reference_kernel);

    std::function<void()> prepare = run.Prepare(*kernel);
    ASSERT_TRUE(prepare) << "constant weights and static shapes: something to prepare";
    ExpectClose(run.Run(*kernel), reference, "first run");
    ExpectClose(run.Run(*kernel), reference, "second run, still unprepared");
    prepare();
    // The steady path: what a kernel that never deferred anything computes.
    run.Run(*steady_kernel);
    const std::vector<std::vector<float>> steady = run.Run(*steady_kernel);
    EXPECT_EQ(run.Run(*kernel), steady) << "after preparation the steady path runs";
  }
}

TEST(RecurrentFirstRun, PreparationDuringTheRunIsSwitchedToSafely) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(Describe(c));
    const FirstRun run(c);
    const std::unique_ptr<OpKernel> reference_kernel = run.Kernel(/*use_onednn=*/false);
    const std::unique_ptr<OpKernel> kernel = run.Kernel();
    ASSERT_TRUE(reference_kernel && kernel);
    const std::vector<std::vector<float>> reference = run.Run(*reference_kernel);
    std::function<void()> prepare = run.Prepare(*kernel);
    ASSERT_TRUE(prepare);
    std::thread preparation(prepare);
    const std::vector<std::vector<float>> first = run.Run(*kernel);
    preparation.join();
    ExpectClose(first, reference, "first run beside its preparation");
    ExpectClose(run.Run(*kernel), reference, "after preparation");
  }
}

TEST(RecurrentFirstRun, TwoThreadFirstRunMatchesReference) {
  const TwoThreadRunner two;
  for (const Case& c : Cases()) {
    SCOPED_TRACE(Describe(c));
    const FirstRun run(c);
    const std::unique_ptr<OpKernel> reference_kernel = run.Kernel(/*use_onednn=*/false);
    const std::unique_ptr<OpKernel> kernel = run.Kernel();
    ASSERT_TRUE(reference_kernel && kernel);
    const std::vector<std::vector<float>> reference = run.Run(*reference_kernel);
    std::function<void()> prepare = run.Prepare(*kernel);
    ASSERT_TRUE(prepare);
    ExpectClose(run.Run(*kernel, two), reference, "two-thread first run");
    prepare();
    ExpectClose(run.Run(*kernel, two), reference, "two-thread run after preparation");
  }
}

TEST(RecurrentFirstRun, NothingPreparedForRunTimeWeightsOfTheOwnPath) {
  // Clip keeps oneDNN's primitive out; with W and R computed at run time
  // there is nothing to build ahead.
  graph::Node node;
  node.op_type = "LSTM";
  node.opset = 14;
  node.attributes["hidden_size"] = IntAttr(8);
  node.attributes["clip"] = FloatAttr(1.0f);
  auto kernel = CreateRecurrentKernel(node, RecurrentCell::kLstm);
  ASSERT_TRUE(kernel.ok()) << kernel.status().ToString();
  const Dims w = {1, 32, 4}, r = {1, 32, 8};
  EXPECT_FALSE((*kernel)->TakePreparation({nullptr, nullptr, nullptr}, {Dims{5, 2, 4}, w, r}));
}

}  // namespace
}  // namespace kiln::kernels
