// Tests of RunGraphPipeline: the passes together reach a fixed point
// (folding <-> shape propagation), clean up after themselves, and dump the
// graph after every pass when asked.
#include "graph/pipeline.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "graph_test_util.h"

namespace kiln::graph {
namespace {

using testing::GraphBuilder;
using testing::MakeTensor;
using testing::ToVector;

// Only what the graph below needs: int64 Add.
StatusOr<std::vector<Tensor>> AddOnlyEvaluator(const Node& n, const std::vector<const Tensor*>& in) {
  if (n.op_type != "Add") return Unsupported("test evaluator: ", n.op_type);
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kInt64, in[0]->dims()));
  for (int64_t i = 0; i < out.num_elements(); ++i) {
    out.data<int64_t>()[i] = in[0]->data<int64_t>()[i] + in[1]->data<int64_t>()[i];
  }
  return std::vector<Tensor>{std::move(out)};
}

// x:[2,3,4] -> Reshape(x, [-1, 4]) = r       (ONNX left r's shape unknown)
// Shape(r) + [0, 0] -> Reshape(x, that) = y  (foldable only once r's shape
//                                             is propagated)
// plus a dead branch and an unused initializer.
struct TwoRoundGraph {
  GraphBuilder b;
  NodeId reshape_r, shape, add, reshape_y, dead;
  ValueId unused;

  TwoRoundGraph() {
    ValueId x = b.Input("x", DType::kFloat32, ShapeInfo::FromDims({2, 3, 4}));
    ValueId target = b.Constant("target", MakeTensor<int64_t>({2}, {-1, 4}));
    reshape_r = b.Op("Reshape", {x, target}, {"r"});
    shape = b.Op("Shape", {b.Out(reshape_r)}, {"r_shape"});
    ValueId zeros = b.Constant("zeros", MakeTensor<int64_t>({2}, {0, 0}));
    add = b.Op("Add", {b.Out(shape), zeros}, {"y_shape"});
    reshape_y = b.Op("Reshape", {x, b.Out(add)}, {"y"});
    dead = b.Op("Neg", {x}, {"unused_result"});
    unused = b.Constant("unused_weight", MakeTensor<float>({1}, {1}));
    b.Output(b.Out(reshape_y));
  }
};

TEST(PipelineTest, FoldsToFixedPointAndCleansUp) {
  TwoRoundGraph t;
  Graph& g = t.b.graph();
  ASSERT_EQ(g.num_live_nodes(), 5u);
  PipelineOptions options;
  options.evaluator = AddOnlyEvaluator;
  Status s = RunGraphPipeline(g, options);
  ASSERT_TRUE(s.ok()) << s.ToString();

  // Only the Reshape producing the output is left; its shape operand is a
  // constant and its result shape is known.
  EXPECT_EQ(g.num_live_nodes(), 1u);
  EXPECT_FALSE(g.node(t.reshape_y).dead);
  const Value& y_shape = g.value(t.b.Out(t.add));
  ASSERT_TRUE(y_shape.constant.has_value());
  EXPECT_EQ(ToVector<int64_t>(*y_shape.constant), (std::vector<int64_t>{6, 4}));
  EXPECT_EQ(g.value(t.b.Out(t.reshape_y)).shape.ToString(), "[6, 4]");
  // The constants only the folded nodes used are gone.
  EXPECT_FALSE(g.value(t.unused).constant.has_value());
  EXPECT_FALSE(g.value(*g.FindValue("zeros")).constant.has_value());
  EXPECT_FALSE(g.value(*g.FindValue("target")).constant.has_value());
}

TEST(PipelineTest, DumpsGraphAfterEveryPass) {
  TwoRoundGraph t;
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "kiln_pipeline_dump";
  std::filesystem::remove_all(dir);
  PipelineOptions options;
  options.evaluator = AddOnlyEvaluator;
  options.dump_dir = (dir / "nested").string();  // created on demand
  ASSERT_TRUE(RunGraphPipeline(t.b.graph(), options).ok());

  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(options.dump_dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  ASSERT_GE(names.size(), 5u);
  EXPECT_EQ(names.front(), "00_loaded.txt");
  EXPECT_EQ(names[1], "01_eliminate_dead_nodes.txt");
  EXPECT_EQ(names[2], "02_propagate_shapes.txt");
  EXPECT_EQ(names[3], "03_fold_constants.txt");
  EXPECT_NE(names.back().find("_eliminate_dead_nodes.txt"), std::string::npos) << names.back();
  std::filesystem::remove_all(dir);
}

// A dump folder that cannot be created (a file is in the way) is an I/O
// error, not a missing input.
TEST(PipelineTest, UnwritableDumpFolderIsAnIoError) {
  TwoRoundGraph t;
  const std::filesystem::path blocker = std::filesystem::path(::testing::TempDir()) / "kiln_pipeline_blocker";
  std::filesystem::remove_all(blocker);
  { std::ofstream(blocker) << "a file, not a folder"; }
  PipelineOptions options;
  options.evaluator = AddOnlyEvaluator;
  options.dump_dir = (blocker / "dumps").string();
  Status s = RunGraphPipeline(t.b.graph(), options);
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.ToString();
  EXPECT_NE(s.message().find("graph dump folder"), std::string::npos) << s.message();
  std::filesystem::remove_all(blocker);
}

TEST(PipelineTest, RejectsInvalidGraphBeforeAnyPass) {
  GraphBuilder b;
  ValueId ghost = b.NewValue("ghost");
  NodeId relu = b.Op("Relu", {ghost}, {"y"});
  b.Output(b.Out(relu));
  Status s = RunGraphPipeline(b.graph(), PipelineOptions());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
  EXPECT_NE(s.message().find("ghost"), std::string::npos) << s.message();
  EXPECT_EQ(b.graph().num_live_nodes(), 1u);
}

}  // namespace
}  // namespace kiln::graph
