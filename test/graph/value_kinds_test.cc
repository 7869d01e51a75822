// Value kinds (graph/value_kinds.h): which values op semantics make
// sequences or optionals, the check that tensor-only ops never read one,
// the partitioner keeping them out of regions, and the printer's notation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "graph/partitioner.h"
#include "graph/printer.h"
#include "graph/value_kinds.h"
#include "test/graph/graph_test_util.h"

namespace kiln::graph::testing {
namespace {

using ::testing::HasSubstr;

TEST(ValueKinds, SequenceOpsMakeSequences) {
  GraphBuilder b(17);
  ValueId x = b.Input("x", DType::kFloat32, Shape({D(2)}));
  ValueId pos = b.Input("pos", DType::kInt64, Shape({}));
  NodeId construct = b.Op("SequenceConstruct", {x, x}, {"seq"});
  NodeId insert = b.Op("SequenceInsert", {b.Out(construct), x}, {"seq2"});
  NodeId at = b.Op("SequenceAt", {b.Out(insert), pos}, {"y"});
  NodeId length = b.Op("SequenceLength", {b.Out(insert)}, {"n"});
  NodeId empty = b.Op("SequenceEmpty", {}, {"none_yet"}, {{"dtype", IntAttr(7)}});
  NodeId wrapped = b.Op("Optional", {b.Out(insert)}, {"opt"});
  NodeId unwrapped = b.Op("OptionalGetElement", {b.Out(wrapped)}, {"back"});
  b.Output(b.Out(at));
  Graph& g = b.graph();
  PropagateValueKinds(g);
  EXPECT_EQ(g.value(b.Out(construct)).kind, ValueKind::kSequence);
  EXPECT_EQ(g.value(b.Out(construct)).dtype, DType::kFloat32);
  EXPECT_FALSE(g.value(b.Out(construct)).shape.rank_known);
  EXPECT_EQ(g.value(b.Out(insert)).kind, ValueKind::kSequence);
  EXPECT_EQ(g.value(b.Out(at)).kind, ValueKind::kTensor);
  EXPECT_EQ(g.value(b.Out(at)).dtype, DType::kFloat32);
  EXPECT_EQ(g.value(b.Out(length)).dtype, DType::kInt64);
  EXPECT_EQ(g.value(b.Out(empty)).kind, ValueKind::kSequence);
  EXPECT_EQ(g.value(b.Out(empty)).dtype, DType::kInt64);
  EXPECT_EQ(g.value(b.Out(wrapped)).kind, ValueKind::kOptionalSequence);
  EXPECT_EQ(g.value(b.Out(unwrapped)).kind, ValueKind::kSequence);
  EXPECT_TRUE(CheckValueKindUses(g).ok());
  EXPECT_THAT(PrintGraph(g), HasSubstr("seq(float32)"));
}

TEST(ValueKinds, TensorOpReadingASequenceIsUnsupported) {
  GraphBuilder b(17);
  ValueId x = b.Input("x", DType::kFloat32, Shape({D(2)}));
  NodeId construct = b.Op("SequenceConstruct", {x}, {"seq"});
  NodeId add = b.Op("Add", {b.Out(construct), x}, {"y"});
  b.Output(b.Out(add));
  Graph& g = b.graph();
  PropagateValueKinds(g);
  Status s = CheckValueKindUses(g);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_THAT(s.message(), HasSubstr("reads 'seq', a sequence, as its input 0"));
}

TEST(ValueKinds, SequencesStayOutOfRegions) {
  GraphBuilder b(17);
  ValueId x = b.Input("x", DType::kFloat32, Shape({D(4)}));
  NodeId construct = b.Op("SequenceConstruct", {x}, {"seq"});
  // Identity is fusible, but not on a sequence.
  NodeId identity = b.Op("Identity", {b.Out(construct)}, {"seq_copy"});
  NodeId relu = b.Op("Relu", {x}, {"r"});
  b.Output(b.Out(identity));
  b.Output(b.Out(relu));
  Graph& g = b.graph();
  PropagateValueKinds(g);
  ASSERT_EQ(g.value(b.Out(identity)).kind, ValueKind::kSequence);
  // Even with a known element shape, which would otherwise make the
  // Identity a region candidate like the Relu.
  for (ValueId v : {b.Out(construct), b.Out(identity), b.Out(relu)}) {
    g.value(v).shape = Shape({D(4)});
    g.value(v).dtype = DType::kFloat32;
  }
  PartitionOptions options;
  options.min_region_nodes = 1;
  auto regions = PartitionGraph(g, options);
  ASSERT_TRUE(regions.ok()) << regions.status().ToString();
  ASSERT_EQ(regions->size(), 1u);
  EXPECT_EQ((*regions)[0].nodes, std::vector<NodeId>{relu});
}

TEST(ValueKinds, TypeNotationRoundTrips) {
  for (ValueKind kind :
       {ValueKind::kTensor, ValueKind::kSequence, ValueKind::kOptionalTensor, ValueKind::kOptionalSequence}) {
    ValueKind parsed_kind = ValueKind::kTensor;
    DType parsed_dtype = DType::kUndefined;
    ASSERT_TRUE(ParseTypeNotation(TypeNotation(kind, DType::kInt32), parsed_kind, parsed_dtype));
    EXPECT_EQ(parsed_kind, kind);
    EXPECT_EQ(parsed_dtype, DType::kInt32);
  }
  EXPECT_EQ(TypeNotation(ValueKind::kOptionalSequence, DType::kFloat32), "optional(seq(float32))");
  ValueKind kind;
  DType dtype;
  EXPECT_FALSE(ParseTypeNotation("map(int64, float32)", kind, dtype));
}

}  // namespace
}  // namespace kiln::graph::testing
