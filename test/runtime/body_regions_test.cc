// JIT regions inside sub-graphs: a Loop body, a Scan body, an If branch and
// the body of a Loop nested in a Loop tier up like top-level regions, and
// their outputs agree with the interpreter tier and with values computed
// here by hand. Also: a shape change inside a loop deopts, a failed compile
// leaves the body interpreted, concurrent runs agree, and compiled
// iterations allocate nothing beyond the tensors they make.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "graph/body_partitioner.h"
#include "kiln/session.h"
#include "runtime/model_internal.h"
#include "test/control_flow_models.h"
#include "test/tensors.h"

// Counts heap allocations, for the per-iteration test: dispatching a warm
// loop's iterations into compiled body regions must not allocate.
namespace {
std::atomic<int64_t> g_heap_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  g_heap_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// The nothrow form too (std::stable_sort's buffer): it is freed through the
// operator delete above, so it must come from malloc as well.
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  g_heap_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace kiln {
namespace {

using testing::BodyBuilder;
using testing::kCfBool;
using testing::kCfFloat;
using testing::kCfInt64;
using testing::MakeTensor;
using testing::OnnxModelBuilder;
using testing::ToVector;

constexpr int64_t kWidth = 16;

// Deterministic weights with a small spectral radius, so iterating the
// step stays bounded.
std::vector<float> Weight() {
  std::vector<float> w(static_cast<size_t>(kWidth * kWidth));
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.05f * static_cast<float>(static_cast<int>((i * 7 + 3) % 11) - 5) / 5;
  return w;
}
std::vector<float> Bias() {
  std::vector<float> b(static_cast<size_t>(kWidth));
  for (size_t i = 0; i < b.size(); ++i) b[i] = 0.01f * static_cast<float>(i) - 0.05f;
  return b;
}
std::vector<float> Input(int64_t rows, float scale = 1.0f) {
  std::vector<float> x(static_cast<size_t>(rows * kWidth));
  for (size_t i = 0; i < x.size(); ++i) x[i] = scale * std::sin(0.37f * static_cast<float>(i));
  return x;
}

// One step, by hand: h + 0.5 * tanh(x W + b), row by row, in double.
std::vector<float> Step(const std::vector<float>& h, const std::vector<float>& x) {
  const std::vector<float> w = Weight(), b = Bias();
  std::vector<float> out(h.size());
  const size_t rows = h.size() / kWidth;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t n = 0; n < kWidth; ++n) {
      double acc = b[n];
      for (size_t k = 0; k < kWidth; ++k) acc += double{x[r * kWidth + k]} * double{w[k * kWidth + n]};
      out[r * kWidth + n] = static_cast<float>(h[r * kWidth + n] + 0.5 * std::tanh(acc));
    }
  }
  return out;
}

// The step's nodes in `body`: reads `h` (and `x` for the product), writes
// `out`. W, b and half come from the top-level graph (outer scope).
void AddStep(BodyBuilder& body, const std::string& x, const std::string& h, const std::string& out) {
  body.Node("MatMul", {x, "W"}, {out + "_mm"});
  body.Node("Add", {out + "_mm", "b"}, {out + "_pre"});
  body.Node("Tanh", {out + "_pre"}, {out + "_t"});
  body.Node("Mul", {out + "_t", "half"}, {out + "_half"});
  body.Node("Add", {out + "_half", h}, {out});
}

void AddWeights(OnnxModelBuilder& b) {
  b.FloatInit("W", {kWidth, kWidth}, Weight()).FloatInit("b", {kWidth}, Bias()).FloatInit("half", {1}, {0.5f});
}

// Declares body value `name` [rows, kWidth]; rows < 0: the symbol "N".
void RowsDims(onnx::ValueInfoProto& vi, int64_t rows) {
  auto* shape = vi.mutable_type()->mutable_tensor_type()->mutable_shape();
  shape->clear_dim();
  if (rows < 0) {
    shape->add_dim()->set_dim_param("N");
  } else {
    shape->add_dim()->set_dim_value(rows);
  }
  shape->add_dim()->set_dim_value(kWidth);
}

// h = x; repeat M times: h = h + 0.5 tanh(h W + b). rows < 0 makes the rows
// a symbol, in the model's input and in the body.
OnnxModelBuilder LoopModel(int64_t rows) {
  OnnxModelBuilder b(13);
  b.Input("M", kCfInt64, {}).Input("x", kCfFloat, {rows, kWidth});
  AddWeights(b);
  b.Output("h_final");
  auto& node = b.Node("Loop", {"M", "", "x"}, {"h_final"}, "step");
  BodyBuilder body(node, "body");
  body.Input("i", kCfInt64, {}).Input("cond_in", kCfBool, {}).Input("h", kCfFloat, {1, kWidth});
  body.Output("cond_out", kCfBool, {}).Output("h_out", kCfFloat, {1, kWidth});
  RowsDims(*body.proto().mutable_input(2), rows);
  RowsDims(*body.proto().mutable_output(1), rows);
  body.Node("Identity", {"cond_in"}, {"cond_out"});
  AddStep(body, "h", "h", "h_out");
  return b;
}

// Scan over xs [T, 2, kWidth]: s = s + 0.5 tanh(x_t W + b), s starting at
// zero; outputs the final s and every step's s.
OnnxModelBuilder ScanModel() {
  OnnxModelBuilder b(16);
  b.Input("xs", kCfFloat, {-1, 2, kWidth}, {"T"});
  AddWeights(b);
  b.FloatInit("s0", {2, kWidth}, std::vector<float>(2 * kWidth, 0.0f));
  b.Output("s_final").Output("states");
  auto& node = b.Node("Scan", {"s0", "xs"}, {"s_final", "states"}, "scan");
  OnnxModelBuilder::IntAttr(node, "num_scan_inputs", 1);
  BodyBuilder body(node, "body");
  body.Input("s", kCfFloat, {2, kWidth}).Input("x_t", kCfFloat, {2, kWidth});
  body.Output("s_out", kCfFloat, {2, kWidth}).Output("state", kCfFloat, {2, kWidth});
  AddStep(body, "x_t", "s", "s_out");
  body.Node("Identity", {"s_out"}, {"state"});
  return b;
}

// y = cond ? x + 0.5 tanh(x W + b) : x * x.
OnnxModelBuilder IfModel() {
  OnnxModelBuilder b(13);
  b.Input("cond", kCfBool, {}).Input("x", kCfFloat, {2, kWidth});
  AddWeights(b);
  b.Output("y");
  auto& node = b.Node("If", {"cond"}, {"y"}, "choose");
  BodyBuilder then_branch(node, "then_branch");
  then_branch.Output("y_then", kCfFloat, {2, kWidth});
  AddStep(then_branch, "x", "x", "y_then");
  BodyBuilder else_branch(node, "else_branch");
  else_branch.Output("y_else", kCfFloat, {2, kWidth});
  else_branch.Node("Mul", {"x", "x"}, {"y_else"});
  return b;
}

// M outer iterations of K inner steps: h_final = step^(M*K)(x).
OnnxModelBuilder NestedLoopModel() {
  OnnxModelBuilder b(13);
  b.Input("M", kCfInt64, {}).Input("K", kCfInt64, {}).Input("x", kCfFloat, {2, kWidth});
  AddWeights(b);
  b.Output("h_final");
  auto& outer = b.Node("Loop", {"M", "", "x"}, {"h_final"}, "outer");
  BodyBuilder outer_body(outer, "body");
  outer_body.Input("i", kCfInt64, {}).Input("c", kCfBool, {}).Input("g", kCfFloat, {2, kWidth});
  outer_body.Output("c_out", kCfBool, {}).Output("g_out", kCfFloat, {2, kWidth});
  outer_body.Node("Identity", {"c"}, {"c_out"});
  auto& inner = outer_body.Node("Loop", {"K", "", "g"}, {"g_out"}, "inner");
  BodyBuilder inner_body(inner, "body");
  inner_body.Input("j", kCfInt64, {}).Input("ci", kCfBool, {}).Input("h", kCfFloat, {2, kWidth});
  inner_body.Output("ci_out", kCfBool, {}).Output("h_out", kCfFloat, {2, kWidth});
  inner_body.Node("Identity", {"ci"}, {"ci_out"});
  AddStep(inner_body, "h", "h", "h_out");
  return b;
}

std::shared_ptr<const Model> Load(const OnnxModelBuilder& b) {
  const std::string bytes = b.Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

SessionOptions JitOptions() {
  SessionOptions o;
  o.intra_op_threads = 1;
  // Compile on the calling thread at a signature's first call, so the next
  // call runs compiled; keep the code even where the interpreter is as fast
  // on these small shapes (the trial is not what these tests are about).
  o.tier = TierPolicy::kJit;
  o.jit_keep_faster_tier = false;
  return o;
}

std::unique_ptr<Session> Open(std::shared_ptr<const Model> model, const SessionOptions& options) {
  auto session = Session::Create(std::move(model), options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  return session.ok() ? std::move(session).value() : nullptr;
}

std::unique_ptr<Session> Interpreted(std::shared_ptr<const Model> model) {
  SessionOptions o;
  o.intra_op_threads = 1;
  o.tier = TierPolicy::kInterpreter;
  return Open(std::move(model), o);
}

std::vector<float> RunFloat(const Session& s, const std::vector<NamedTensor>& inputs, size_t output = 0) {
  auto out = s.Run(inputs);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return {};
  return ToVector<float>((*out)[output].tensor);
}

void ExpectNear(const std::vector<float>& actual, const std::vector<float>& expected, float tolerance,
                const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    ASSERT_NEAR(actual[i], expected[i], tolerance * (1 + std::fabs(expected[i]))) << what << " at " << i;
  }
}

// The stats of the regions inside `path`.
std::vector<RegionStats> RegionsIn(const Session& s, const std::string& path) {
  std::vector<RegionStats> found;
  for (const RegionStats& r : s.stats().regions) {
    if (r.path == path) found.push_back(r);
  }
  return found;
}

int64_t CompiledCalls(const std::vector<RegionStats>& regions) {
  int64_t calls = 0;
  for (const RegionStats& r : regions) calls += r.compiled_calls;
  return calls;
}

int Compiled(const std::vector<RegionStats>& regions) {
  int compiled = 0;
  for (const RegionStats& r : regions) compiled += r.specializations > 0 ? 1 : 0;
  return compiled;
}

Tensor Scalar(int64_t v) { return MakeTensor<int64_t>({}, {v}); }

// float32 sums of 16 products and tanh, compiled vs hand-computed in
// double over up to 24 steps.
constexpr float kTolerance = 2e-5f;

TEST(BodyRegionsTest, PartitionsBodiesWithIdsAfterTheTopLevelAndPaths) {
  auto model = Load(NestedLoopModel());
  ASSERT_NE(model, nullptr);
  auto bodies = graph::PartitionBodies(ModelGraph(*model), {}, 3);
  ASSERT_TRUE(bodies.ok()) << bodies.status().ToString();
  ASSERT_EQ(bodies->size(), 1u);  // the outer body holds only the inner Loop
  const graph::BodyRegions& inner = (*bodies)[0];
  EXPECT_EQ(inner.path, "Loop 'outer'/body/Loop 'inner'/body");
  ASSERT_FALSE(inner.regions.empty());
  int id = 3;
  for (const graph::Region& r : inner.regions) {
    EXPECT_EQ(r.id, id++);
    EXPECT_EQ(r.path, inner.path);
  }
  bool has_gemm = false;
  for (const graph::Region& r : inner.regions) has_gemm = has_gemm || r.kind == graph::RegionKind::kGemm;
  EXPECT_TRUE(has_gemm) << "the MatMul with a constant weight (an outer-scope initializer) is a GEMM region";
}

TEST(BodyRegionsTest, LoopBodyTiersUpAndMatchesTheInterpreterAndHandValues) {
  auto model = Load(LoopModel(2));
  ASSERT_NE(model, nullptr);
  auto jit = Open(model, JitOptions());
  auto interp = Interpreted(model);
  ASSERT_NE(jit, nullptr);
  ASSERT_NE(interp, nullptr);
  const Tensor x = MakeTensor<float>({2, kWidth}, Input(2));
  std::vector<float> expected = Input(2);
  for (int i = 0; i < 24; ++i) expected = Step(expected, expected);
  const std::vector<NamedTensor> inputs = {{"M", Scalar(24)}, {"x", x}};
  for (int run = 0; run < 3; ++run) {
    const std::vector<float> got = RunFloat(*jit, inputs);
    ExpectNear(got, expected, kTolerance, "jit run " + std::to_string(run));
    ExpectNear(got, RunFloat(*interp, inputs), kTolerance, "jit vs interpreter, run " + std::to_string(run));
  }
  const std::vector<RegionStats> body = RegionsIn(*jit, "Loop 'step'/body");
  ASSERT_FALSE(body.empty()) << "no region inside the loop body";
  EXPECT_EQ(Compiled(body), static_cast<int>(body.size()));
  // The first iteration compiled; the rest (and later runs) ran compiled.
  EXPECT_GT(CompiledCalls(body), 24);
  for (const RegionStats& r : body) {
    EXPECT_EQ(r.failed_compiles, 0) << r.description;
    EXPECT_EQ(r.verify_failures, 0) << r.description;
  }
  EXPECT_TRUE(interp->stats().regions.empty());
}

TEST(BodyRegionsTest, BackgroundCompilesServeLaterIterations) {
  auto model = Load(LoopModel(2));
  ASSERT_NE(model, nullptr);
  SessionOptions o = JitOptions();
  o.tier = TierPolicy::kAuto;
  auto jit = Open(model, o);
  ASSERT_NE(jit, nullptr);
  const std::vector<NamedTensor> inputs = {{"M", Scalar(8)}, {"x", MakeTensor<float>({2, kWidth}, Input(2))}};
  const std::vector<float> first = RunFloat(*jit, inputs);
  jit->WaitForCompiles();
  std::vector<float> expected = Input(2);
  for (int i = 0; i < 8; ++i) expected = Step(expected, expected);
  ExpectNear(first, expected, kTolerance, "first run");
  for (int run = 0; run < 3; ++run) ExpectNear(RunFloat(*jit, inputs), expected, kTolerance, "later run");
  const std::vector<RegionStats> body = RegionsIn(*jit, "Loop 'step'/body");
  ASSERT_FALSE(body.empty());
  EXPECT_GT(Compiled(body), 0);
  EXPECT_GT(CompiledCalls(body), 0);
}

TEST(BodyRegionsTest, ScanBodyTiersUp) {
  auto model = Load(ScanModel());
  ASSERT_NE(model, nullptr);
  auto jit = Open(model, JitOptions());
  auto interp = Interpreted(model);
  ASSERT_NE(jit, nullptr);
  ASSERT_NE(interp, nullptr);
  constexpr int64_t kSteps = 6;
  const std::vector<float> xs = Input(2 * kSteps, 0.8f);
  std::vector<float> s(2 * kWidth, 0.0f), states;
  for (int64_t t = 0; t < kSteps; ++t) {
    s = Step(s, std::vector<float>(xs.begin() + t * 2 * kWidth, xs.begin() + (t + 1) * 2 * kWidth));
    states.insert(states.end(), s.begin(), s.end());
  }
  const std::vector<NamedTensor> inputs = {{"xs", MakeTensor<float>({kSteps, 2, kWidth}, xs)}};
  for (int run = 0; run < 2; ++run) {
    ExpectNear(RunFloat(*jit, inputs, 0), s, kTolerance, "s_final");
    ExpectNear(RunFloat(*jit, inputs, 1), states, kTolerance, "states");
    ExpectNear(RunFloat(*jit, inputs, 1), RunFloat(*interp, inputs, 1), kTolerance, "jit vs interpreter");
  }
  const std::vector<RegionStats> body = RegionsIn(*jit, "Scan 'scan'/body");
  ASSERT_FALSE(body.empty());
  EXPECT_GT(Compiled(body), 0);
  EXPECT_GT(CompiledCalls(body), 0);
}

TEST(BodyRegionsTest, IfBranchTiersUp) {
  auto model = Load(IfModel());
  ASSERT_NE(model, nullptr);
  auto jit = Open(model, JitOptions());
  auto interp = Interpreted(model);
  ASSERT_NE(jit, nullptr);
  ASSERT_NE(interp, nullptr);
  const std::vector<float> x = Input(2);
  const std::vector<NamedTensor> then_inputs = {{"cond", MakeTensor<bool>({}, {true})},
                                                {"x", MakeTensor<float>({2, kWidth}, x)}};
  const std::vector<NamedTensor> else_inputs = {{"cond", MakeTensor<bool>({}, {false})},
                                                {"x", MakeTensor<float>({2, kWidth}, x)}};
  std::vector<float> squares(x.size());
  for (size_t i = 0; i < x.size(); ++i) squares[i] = x[i] * x[i];
  for (int run = 0; run < 3; ++run) {
    ExpectNear(RunFloat(*jit, then_inputs), Step(x, x), kTolerance, "then");
    ExpectNear(RunFloat(*jit, then_inputs), RunFloat(*interp, then_inputs), kTolerance, "then vs interpreter");
    ExpectNear(RunFloat(*jit, else_inputs), squares, 0, "else");
  }
  const std::vector<RegionStats> branch = RegionsIn(*jit, "If 'choose'/then_branch");
  ASSERT_FALSE(branch.empty());
  EXPECT_GT(Compiled(branch), 0);
  EXPECT_GT(CompiledCalls(branch), 0);
  // One Mul is not worth a region (SessionOptions::jit_min_region_nodes).
  EXPECT_TRUE(RegionsIn(*jit, "If 'choose'/else_branch").empty());
}

TEST(BodyRegionsTest, RegionInANestedLoopBodyTiersUp) {
  auto model = Load(NestedLoopModel());
  ASSERT_NE(model, nullptr);
  auto jit = Open(model, JitOptions());
  auto interp = Interpreted(model);
  ASSERT_NE(jit, nullptr);
  ASSERT_NE(interp, nullptr);
  std::vector<float> expected = Input(2);
  for (int i = 0; i < 3 * 4; ++i) expected = Step(expected, expected);
  const std::vector<NamedTensor> inputs = {
      {"M", Scalar(3)}, {"K", Scalar(4)}, {"x", MakeTensor<float>({2, kWidth}, Input(2))}};
  for (int run = 0; run < 2; ++run) {
    ExpectNear(RunFloat(*jit, inputs), expected, kTolerance, "nested");
    ExpectNear(RunFloat(*jit, inputs), RunFloat(*interp, inputs), kTolerance, "nested vs interpreter");
  }
  const std::vector<RegionStats> inner = RegionsIn(*jit, "Loop 'outer'/body/Loop 'inner'/body");
  ASSERT_FALSE(inner.empty());
  EXPECT_GT(Compiled(inner), 0);
  EXPECT_GT(CompiledCalls(inner), 12);
}

TEST(BodyRegionsTest, AShapeChangeInsideTheLoopDeopts) {
  auto model = Load(LoopModel(-1));
  ASSERT_NE(model, nullptr);
  auto jit = Open(model, JitOptions());
  ASSERT_NE(jit, nullptr);
  for (int64_t rows : {2, 3, 2}) {
    std::vector<float> expected = Input(rows);
    for (int i = 0; i < 5; ++i) expected = Step(expected, expected);
    const std::vector<NamedTensor> inputs = {{"M", Scalar(5)}, {"x", MakeTensor<float>({rows, kWidth}, Input(rows))}};
    ExpectNear(RunFloat(*jit, inputs), expected, kTolerance, "rows " + std::to_string(rows));
  }
  const std::vector<RegionStats> body = RegionsIn(*jit, "Loop 'step'/body");
  ASSERT_FALSE(body.empty());
  EXPECT_GT(CompiledCalls(body), 0);
  int64_t deopts = 0;
  for (const RegionStats& r : body) deopts += r.deopts;
  // The elementwise region is compiled per shape: the first iteration with
  // 3 rows misses the code for 2 and runs interpreted.
  EXPECT_GT(deopts, 0);
}

TEST(BodyRegionsTest, AFailedCompileLeavesTheBodyInterpreted) {
  auto model = Load(LoopModel(2));
  ASSERT_NE(model, nullptr);
  SessionOptions o = JitOptions();
  o.jit_before_compile_hook = [](int) { return Internal("compile refused by the test"); };
  auto jit = Open(model, o);
  ASSERT_NE(jit, nullptr);
  std::vector<float> expected = Input(2);
  for (int i = 0; i < 6; ++i) expected = Step(expected, expected);
  const std::vector<NamedTensor> inputs = {{"M", Scalar(6)}, {"x", MakeTensor<float>({2, kWidth}, Input(2))}};
  for (int run = 0; run < 2; ++run) ExpectNear(RunFloat(*jit, inputs), expected, kTolerance, "interpreted");
  const std::vector<RegionStats> body = RegionsIn(*jit, "Loop 'step'/body");
  ASSERT_FALSE(body.empty());
  EXPECT_EQ(CompiledCalls(body), 0);
  for (const RegionStats& r : body) {
    EXPECT_EQ(r.failed_compiles, 1) << r.description;
    EXPECT_EQ(r.interpreted_calls, 12) << r.description;
  }
}

TEST(BodyRegionsTest, ConcurrentRunsShareTheTierAndAgree) {
  auto model = Load(LoopModel(2));
  ASSERT_NE(model, nullptr);
  SessionOptions o = JitOptions();
  o.tier = TierPolicy::kAuto;  // compiles land while both threads iterate
  o.intra_op_threads = 2;
  auto jit = Open(model, o);
  ASSERT_NE(jit, nullptr);
  std::vector<float> expected = Input(2);
  for (int i = 0; i < 16; ++i) expected = Step(expected, expected);
  const std::vector<NamedTensor> inputs = {{"M", Scalar(16)}, {"x", MakeTensor<float>({2, kWidth}, Input(2))}};
  std::vector<std::vector<float>> results[2];
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int run = 0; run < 20; ++run) {
        auto out = jit->Run(inputs);
        if (out.ok()) results[t].push_back(ToVector<float>((*out)[0].tensor));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& runs : results) {
    ASSERT_EQ(runs.size(), 20u);
    for (const std::vector<float>& got : runs) ExpectNear(got, expected, kTolerance, "concurrent run");
  }
  jit->WaitForCompiles();
  ExpectNear(RunFloat(*jit, inputs), expected, kTolerance, "after the compiles");
  EXPECT_GT(CompiledCalls(RegionsIn(*jit, "Loop 'step'/body")), 0);
}

// Tensors keep their dims on the heap and pooled buffers get an owner, so
// every tensor a body iteration makes allocates in either tier; what the
// compiled path must not add is allocations of its own (dispatch,
// signature, argument arrays), nor any per input it reads.
TEST(BodyRegionsTest, CompiledIterationsAllocateLessThanInterpretedOnes) {
  auto model = Load(LoopModel(2));
  ASSERT_NE(model, nullptr);
  auto jit = Open(model, JitOptions());
  auto interp = Interpreted(model);
  ASSERT_NE(jit, nullptr);
  ASSERT_NE(interp, nullptr);
  const Tensor x = MakeTensor<float>({2, kWidth}, Input(2));
  const std::vector<NamedTensor> short_run = {{"M", Scalar(4)}, {"x", x}};
  const std::vector<NamedTensor> long_run = {{"M", Scalar(68)}, {"x", x}};
  for (const Session* s : {jit.get(), interp.get()}) {
    for (int run = 0; run < 3; ++run) {
      ASSERT_TRUE(s->Run(short_run).ok());
      ASSERT_TRUE(s->Run(long_run).ok());
    }
  }
  // Allocations of the 64 iterations a long run has beyond a short one.
  auto per_64_iterations = [&](const Session& s) {
    int64_t before = g_heap_allocations.load();
    EXPECT_TRUE(s.Run(short_run).ok());
    const int64_t short_allocations = g_heap_allocations.load() - before;
    before = g_heap_allocations.load();
    EXPECT_TRUE(s.Run(long_run).ok());
    return g_heap_allocations.load() - before - short_allocations;
  };
  const int64_t compiled_before = CompiledCalls(RegionsIn(*jit, "Loop 'step'/body"));
  const int64_t compiled = per_64_iterations(*jit);
  const int64_t interpreted = per_64_iterations(*interp);
  EXPECT_GE(CompiledCalls(RegionsIn(*jit, "Loop 'step'/body")) - compiled_before, 72);
  EXPECT_LT(compiled, interpreted);
  // Kernels read the body's inputs and captures in place and the body's
  // outputs move out of its frame, so what remains is the tensors the body
  // makes: the region's output (its dims and a pooled buffer's owner) and
  // the condition's: at most 4 per iteration.
  EXPECT_LE(compiled, 4 * 64);
}

}  // namespace
}  // namespace kiln
