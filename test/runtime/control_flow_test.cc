// If, Loop and Scan through the public API, against hand-computed results:
// outer-scope references, empty and condition-only loops, scan directions
// and axes, nesting, per-iteration allocation, and deadlines.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "graph/onnx_loader.h"
#include "kernels/kernel.h"
#include "kiln/session.h"
#include "runtime/interpreter.h"
#include "test/control_flow_models.h"
#include "test/tensors.h"

namespace kiln {
namespace {

using testing::MakeTensor;
using testing::OnnxModelBuilder;
using testing::ToVector;

std::unique_ptr<Session> Open(const OnnxModelBuilder& b, SessionOptions options = {}) {
  const std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return nullptr;
  if (options.tier == TierPolicy::kAuto) options.tier = TierPolicy::kInterpreter;
  auto session = Session::Create(*model, options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  return session.ok() ? std::move(session).value() : nullptr;
}

Tensor Scalar(int64_t v) { return MakeTensor<int64_t>({}, {v}); }
Tensor Flag(bool v) { return MakeTensor<bool>({}, {v}); }

TEST(IfTest, RunsTheBranchTheConditionPicksWithOuterScopeValues) {
  auto session = Open(testing::IfModel());
  ASSERT_NE(session, nullptr);
  const Tensor x = MakeTensor<float>({3}, {1, 2, 3});
  auto then_out = session->Run({{"cond", Flag(true)}, {"x", x}});
  ASSERT_TRUE(then_out.ok()) << then_out.status().ToString();
  EXPECT_EQ(ToVector<float>((*then_out)[0].tensor), (std::vector<float>{2, 3, 4}));
  auto else_out = session->Run({{"cond", Flag(false)}, {"x", x}});
  ASSERT_TRUE(else_out.ok()) << else_out.status().ToString();
  EXPECT_EQ(ToVector<float>((*else_out)[0].tensor), (std::vector<float>{1, 4, 9}));
}

// A branch output a node of the branch makes is handed over as it is; one
// the branch passes through (an outer value, a branch constant) is copied.
// Both kinds feed a node after the If, and what the run returns owns its
// memory: overwriting the caller's input or the returned outputs afterwards
// changes nothing.
TEST(IfTest, BranchOutputsAreHandedOverOrCopiedAndFeedLaterNodes) {
  OnnxModelBuilder b(13);
  b.Input("cond", testing::kCfBool, {}).Input("x", testing::kCfFloat, {3});
  b.Output("made").Output("passed").Output("sum");
  auto& node = b.Node("If", {"cond"}, {"made", "passed"}, "choose");
  b.Node("Add", {"made", "passed"}, {"sum"});
  testing::BodyBuilder then_branch(node, "then_branch");
  then_branch.FloatInit("one", {1}, {1.0f}).Output("t_made", testing::kCfFloat, {3});
  then_branch.Output("x", testing::kCfFloat, {3});
  then_branch.Node("Add", {"x", "one"}, {"t_made"});
  testing::BodyBuilder else_branch(node, "else_branch");
  else_branch.FloatInit("c", {3}, {7, 8, 9}).Output("e_made", testing::kCfFloat, {3});
  else_branch.Output("c", testing::kCfFloat, {3});
  else_branch.Node("Mul", {"x", "x"}, {"e_made"});
  auto session = Open(b);
  ASSERT_NE(session, nullptr);
  for (int run = 0; run < 3; ++run) {
    for (bool take_then : {true, false}) {
      Tensor x = MakeTensor<float>({3}, {1, 2, 3});
      auto out = session->Run({{"cond", Flag(take_then)}, {"x", x}});
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      ASSERT_EQ(out->size(), 3u);
      for (int i = 0; i < 3; ++i) x.data<float>()[i] = -100.0f;
      const std::vector<float> made = take_then ? std::vector<float>{2, 3, 4} : std::vector<float>{1, 4, 9};
      const std::vector<float> passed = take_then ? std::vector<float>{1, 2, 3} : std::vector<float>{7, 8, 9};
      EXPECT_EQ(ToVector<float>((*out)[0].tensor), made) << "run " << run << " then " << take_then;
      EXPECT_EQ(ToVector<float>((*out)[1].tensor), passed) << "run " << run << " then " << take_then;
      std::vector<float> sum(3);
      for (size_t i = 0; i < 3; ++i) sum[i] = made[i] + passed[i];
      EXPECT_EQ(ToVector<float>((*out)[2].tensor), sum) << "run " << run << " then " << take_then;
      // The caller owns what Run returns: writing into it must not reach the
      // branch's constant, which the next run reads again.
      for (const NamedTensor& o : *out) {
        Tensor t = o.tensor;
        for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = -1.0f;
      }
    }
  }
}

TEST(IfTest, RejectsAConditionThatIsNotOneBool) {
  auto session = Open(testing::IfModel());
  ASSERT_NE(session, nullptr);
  // The model declares cond bool; the session checks dtype, so pass a
  // bool of the wrong size through a model that does not fix the shape.
  OnnxModelBuilder b = testing::IfModel();
  b.proto().mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  auto loose = Open(b);
  ASSERT_NE(loose, nullptr);
  auto out = loose->Run({{"cond", MakeTensor<bool>({2}, {true, false})}, {"x", MakeTensor<float>({3}, {1, 2, 3})}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("condition must be one bool"), std::string::npos) << out.status().ToString();
}

TEST(LoopTest, CarriesValuesAndStacksScanOutputs) {
  auto session = Open(testing::LoopSumModel());
  ASSERT_NE(session, nullptr);
  auto out = session->Run({{"M", Scalar(4)}, {"x", MakeTensor<float>({3}, {1, 2, 3})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(ToVector<float>((*out)[0].tensor), (std::vector<float>{4, 8, 12}));
  EXPECT_EQ((*out)[1].tensor.dims(), (Dims{4, 3}));
  EXPECT_EQ(ToVector<float>((*out)[1].tensor), (std::vector<float>{1, 2, 3, 2, 4, 6, 3, 6, 9, 4, 8, 12}));
}

TEST(LoopTest, ZeroIterationsReturnTheInitialValuesAndEmptyScans) {
  auto session = Open(testing::LoopSumModel());
  ASSERT_NE(session, nullptr);
  auto out = session->Run({{"M", Scalar(0)}, {"x", MakeTensor<float>({3}, {1, 2, 3})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(ToVector<float>((*out)[0].tensor), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ((*out)[1].tensor.dims(), (Dims{0, 3}));
}

TEST(LoopTest, RunsOnTheConditionAloneWithoutATripCount) {
  auto session = Open(testing::CountUpModel());
  ASSERT_NE(session, nullptr);
  for (int64_t limit : {1, 5, 37}) {
    auto out = session->Run({{"limit", Scalar(limit)}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(ToVector<int64_t>((*out)[0].tensor), (std::vector<int64_t>{limit}));
  }
}

TEST(LoopTest, BodyWithADataDependentBranchReadsValuesTwoScopesOut) {
  auto session = Open(testing::LoopWithIfModel());
  ASSERT_NE(session, nullptr);
  auto out = session->Run(
      {{"M", Scalar(5)}, {"x", MakeTensor<float>({3}, {1, 1, 1})}, {"threshold", MakeTensor<float>({}, {5.0f})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  // s: 0 -> 1 (sum 0 <= 5: add) -> 2 (sum 3) -> 1 (sum 6 > 5: halve) -> 2 -> 1.
  EXPECT_EQ(ToVector<float>((*out)[0].tensor), (std::vector<float>{1, 1, 1}));
}

// With profiling on, nodes inside bodies get profiles of their own, named by
// the body that holds them, and count one call per iteration that ran them.
TEST(LoopTest, ProfilesNodesInsideBodiesWithTheirPath) {
  SessionOptions options;
  options.enable_profiling = true;
  auto session = Open(testing::LoopWithIfModel(), options);
  ASSERT_NE(session, nullptr);
  for (int run = 0; run < 2; ++run) {
    auto out = session->Run(
        {{"M", Scalar(5)}, {"x", MakeTensor<float>({3}, {1, 1, 1})}, {"threshold", MakeTensor<float>({}, {5.0f})}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
  }
  std::map<std::string, NodeProfile> by_op;
  for (const NodeProfile& n : session->stats().nodes) by_op[n.op_type] = n;
  ASSERT_EQ(by_op.count("Loop"), 1u);
  EXPECT_EQ(by_op["Loop"].path, "");
  EXPECT_EQ(by_op["Loop"].calls, 2);
  EXPECT_EQ(by_op["If"].path, "Loop 'steps'/body");
  EXPECT_EQ(by_op["If"].calls, 10);
  // Sums 0, 3, 6, 3, 6 against the threshold 5: add, add, halve, add, halve.
  EXPECT_EQ(by_op["Mul"].path, "Loop 'steps'/body/If 'halve_or_add'/then_branch");
  EXPECT_EQ(by_op["Mul"].calls, 4);
  EXPECT_EQ(by_op["Add"].path, "Loop 'steps'/body/If 'halve_or_add'/else_branch");
  EXPECT_EQ(by_op["Add"].calls, 6);
  // A body's time is inside its control-flow node's.
  EXPECT_GE(by_op["Loop"].total_ms, by_op["If"].total_ms);
  EXPECT_GE(by_op["If"].total_ms, by_op["Mul"].total_ms);
}

// After a first run has sized the body's slots and pools, more iterations
// allocate nothing more: the allocation hook sees the same buffers for 3
// iterations as for 1000.
TEST(LoopTest, NoAllocationPerIterationOnceWarm) {
  SessionOptions options;
  int64_t allocations = 0;
  options.before_allocate_hook = [&allocations](size_t) {
    ++allocations;
    return Status::Ok();
  };
  // Without scan outputs: those grow with the iteration count by design.
  OnnxModelBuilder b = testing::LoopSumModel();
  auto* loop = b.proto().mutable_graph()->mutable_node(0);
  loop->mutable_output()->RemoveLast();
  b.proto().mutable_graph()->mutable_output()->RemoveLast();
  auto* body = loop->mutable_attribute(0)->mutable_g();
  body->mutable_output()->RemoveLast();
  body->mutable_node()->RemoveLast();
  auto session = Open(b, options);
  ASSERT_NE(session, nullptr);
  const Tensor x = MakeTensor<float>({3}, {1, 2, 3});
  const auto count = [&](int64_t m) {
    allocations = 0;
    auto out = session->Run({{"M", Scalar(m)}, {"x", x}});
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    if (out.ok()) EXPECT_FLOAT_EQ((*out)[0].tensor.data<float>()[2], 3.0f * static_cast<float>(m));
    return allocations;
  };
  count(3);
  count(3);
  const int64_t few = count(3);
  const int64_t many = count(1000);
  EXPECT_EQ(many, few);
}

TEST(LoopTest, AHugeTripCountStopsAtTheDeadline) {
  auto counting = Open(testing::CountUpModel());
  ASSERT_NE(counting, nullptr);
  RunOptions options;
  options.deadline = RunOptions::DeadlineIn(50);
  const auto start = std::chrono::steady_clock::now();
  auto out = counting->Run({{"limit", Scalar(INT64_MAX)}}, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kDeadlineExceeded) << out.status().ToString();
  EXPECT_NE(out.status().message().find("Loop 'count_up'"), std::string::npos) << out.status().ToString();
  EXPECT_LT(seconds, 10.0);
}

// Without a deadline, the iteration cap stops a loop that asks for 2^63
// iterations (the cap is lowered here so the test is quick).
TEST(LoopTest, AHugeTripCountStopsAtTheIterationCap) {
  const std::string bytes = testing::CountUpModel().Serialize();
  auto graph = graph::LoadOnnxModel(bytes.data(), bytes.size(), graph::LoadOptions{});
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  auto interpreter = runtime::Interpreter::Create(*graph, kernels::DefaultKernelRegistry());
  ASSERT_TRUE(interpreter.ok()) << interpreter.status().ToString();
  auto frame = (*interpreter)->NewFrame();
  const Tensor limit = Scalar(INT64_MAX);
  std::vector<Tensor> outputs;
  runtime::RunHooks hooks;
  hooks.max_loop_iterations = 1000;
  const Status status = (*interpreter)->Run(*frame, {&limit}, outputs, kernels::SerialRunner(), hooks);
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted) << status.ToString();
  EXPECT_NE(status.message().find("stopped after 1000 iterations"), std::string::npos) << status.ToString();
  // Within the cap the same interpreter runs to the end.
  const Tensor small = Scalar(7);
  ASSERT_TRUE((*interpreter)->Run(*frame, {&small}, outputs, kernels::SerialRunner(), hooks).ok());
  EXPECT_EQ(ToVector<int64_t>(outputs[0]), (std::vector<int64_t>{7}));
}

TEST(ScanTest, ForwardAndReverseAlongEitherAxis) {
  const std::vector<float> xs = {1, 2, 3, 4, 5, 6, 7, 8};  // [4, 2]
  struct Case {
    int64_t axis, direction, output_direction;
    std::vector<float> final_state, sums;
  };
  // Step t's sum goes to position t of the output (position steps-1-t when
  // the output direction is reverse), whichever way the input is read.
  const Case cases[] = {
      // Rows in order: (1,2) (4,6) (9,12) (16,20).
      {0, 0, 0, {16, 20}, {1, 2, 4, 6, 9, 12, 16, 20}},
      // Rows last first: (7,8) (12,14) (15,18) (16,20).
      {0, 1, 0, {16, 20}, {7, 8, 12, 14, 15, 18, 16, 20}},
      {0, 1, 1, {16, 20}, {16, 20, 15, 18, 12, 14, 7, 8}},
      // Columns (1,3,5,7) then (2,4,6,8), stacked as columns.
      {1, 0, 0, {3, 7, 11, 15}, {1, 3, 3, 7, 5, 11, 7, 15}},
      {1, 1, 0, {3, 7, 11, 15}, {2, 3, 4, 7, 6, 11, 8, 15}},
      {1, 0, 1, {3, 7, 11, 15}, {3, 1, 7, 3, 11, 5, 15, 7}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("axis " + std::to_string(c.axis) + " directions " + std::to_string(c.direction) + "/" +
                 std::to_string(c.output_direction));
    auto session = Open(testing::ScanSumModel(c.axis, c.direction, c.output_direction));
    ASSERT_NE(session, nullptr);
    auto out = session->Run({{"xs", MakeTensor<float>({4, 2}, xs)}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(ToVector<float>((*out)[0].tensor), c.final_state);
    EXPECT_EQ((*out)[1].tensor.dims(), (Dims{4, 2}));
    EXPECT_EQ(ToVector<float>((*out)[1].tensor), c.sums);
  }
}

TEST(ControlFlowTest, ConcurrentRunsGetTheirOwnBodyState) {
  auto session = Open(testing::LoopSumModel());
  ASSERT_NE(session, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < 20; ++r) {
        const int64_t m = 1 + (t * 7 + r) % 9;
        auto out = session->Run({{"M", Scalar(m)}, {"x", MakeTensor<float>({3}, {1, 2, 3})}});
        if (!out.ok() || (*out)[0].tensor.data<float>()[1] != 2.0f * static_cast<float>(m) ||
            (*out)[1].tensor.dim(0) != m) {
          ++wrong;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace kiln
