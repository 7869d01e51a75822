// Stateful streaming (voice-activity detection, streaming ASR): a model
// takes a state and returns the next one, and the caller feeds each run's
// state output back as the next run's state input. Neither direction
// copies: inputs are borrowed, and the state can be written straight into
// a caller buffer (RunOptions::bound_outputs), so two buffers used in turn
// carry the state with no allocation per step once the session is warm.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kiln/session.h"
#include "test/model_builder.h"
#include "test/tensors.h"

namespace kiln {
namespace {

using testing::MakeTensor;
using testing::OnnxModelBuilder;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

// state_out = state * 0.5 + x; y = Relu(state_out) * 2. state and x: [1, 4].
OnnxModelBuilder StreamingModel() {
  OnnxModelBuilder b(13);
  b.Input("state", kFloat, {1, 4}).Input("x", kFloat, {1, 4}).FloatInit("half", {}, {0.5f});
  b.FloatInit("two", {}, {2.0f}).Output("state_out").Output("y");
  b.Node("Mul", {"state", "half"}, {"decayed"});
  b.Node("Add", {"decayed", "x"}, {"state_out"});
  b.Node("Relu", {"state_out"}, {"r"});
  b.Node("Mul", {"r", "two"}, {"y"});
  return b;
}

struct Counted {
  std::unique_ptr<Session> session;
  int64_t allocations = 0;
};

std::unique_ptr<Counted> Open(TierPolicy tier) {
  auto counted = std::make_unique<Counted>();
  const std::string bytes = StreamingModel().Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  SessionOptions options;
  options.tier = tier;
  Counted* c = counted.get();
  options.before_allocate_hook = [c](size_t) {
    ++c->allocations;
    return Status::Ok();
  };
  auto session = Session::Create(*model, options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  if (session.ok()) counted->session = std::move(session).value();
  return counted;
}

// The state after `steps` steps of x = (step, -1, 0.5, 2), from zero.
std::vector<float> ExpectedState(int steps) {
  std::vector<float> s(4, 0.0f);
  for (int t = 0; t < steps; ++t) {
    const float x[4] = {static_cast<float>(t), -1.0f, 0.5f, 2.0f};
    for (int i = 0; i < 4; ++i) s[static_cast<size_t>(i)] = s[static_cast<size_t>(i)] * 0.5f + x[i];
  }
  return s;
}

Tensor StepInput(int t) { return MakeTensor<float>({1, 4}, {static_cast<float>(t), -1.0f, 0.5f, 2.0f}); }

class StreamingStateTest : public ::testing::TestWithParam<TierPolicy> {};

// The returned state tensor goes straight back in as the next input.
TEST_P(StreamingStateTest, OutputStateFedBackAsTheNextInput) {
  auto c = Open(GetParam());
  ASSERT_NE(c->session, nullptr);
  Tensor state = MakeTensor<float>({1, 4}, {0, 0, 0, 0});
  constexpr int kSteps = 40;
  int64_t allocations_after_warmup = 0;
  for (int t = 0; t < kSteps; ++t) {
    if (t == 4) c->allocations = 0;
    auto out = c->session->Run({{"state", state}, {"x", StepInput(t)}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    state = std::move((*out)[0].tensor);  // the previous state is released here
  }
  allocations_after_warmup = c->allocations;
  EXPECT_EQ(testing::ToVector<float>(state), ExpectedState(kSteps));
  // Returned outputs come from the session's recycled buffers: once warm,
  // feeding the state back allocates nothing.
  EXPECT_EQ(allocations_after_warmup, 0);
}

// Two caller buffers take turns: the run reads the state from one and
// writes the next state into the other. Nothing is copied or allocated.
TEST_P(StreamingStateTest, TwoBoundBuffersCarryTheStateInPlace) {
  auto c = Open(GetParam());
  ASSERT_NE(c->session, nullptr);
  float buffers[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
  float y[4] = {};
  constexpr int kSteps = 40;
  for (int t = 0; t < kSteps; ++t) {
    if (t == 4) c->allocations = 0;
    float* in = buffers[t % 2];
    float* next = buffers[(t + 1) % 2];
    RunOptions run;
    run.bound_outputs = {{"state_out", Tensor::View(DType::kFloat32, {1, 4}, next)},
                         {"y", Tensor::View(DType::kFloat32, {1, 4}, y)}};
    auto out = c->session->Run({{"state", Tensor::View(DType::kFloat32, {1, 4}, in)}, {"x", StepInput(t)}}, run);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    // The state output is the caller's buffer itself.
    ASSERT_EQ((*out)[0].tensor.raw_data(), next);
  }
  EXPECT_EQ(c->allocations, 0);
  const std::vector<float> expected = ExpectedState(kSteps);
  const float* final_state = buffers[kSteps % 2];
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(final_state[i], expected[i]);
    EXPECT_EQ(y[i], expected[i] > 0 ? expected[i] * 2 : 0.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(Tiers, StreamingStateTest, ::testing::Values(TierPolicy::kInterpreter, TierPolicy::kJit),
                         [](const auto& info) { return std::string(TierPolicyName(info.param)); });

}  // namespace
}  // namespace kiln
