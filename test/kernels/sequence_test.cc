// The sequence and optional kernels (kernels/sequence_ops.cc) and the
// sequence values they pass (kiln/sequence.h), against hand-computed
// results; every error case checks the specific message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "kiln/sequence.h"
#include "test/kernels/kernel_test_util.h"

namespace kiln::testing {
namespace {

using ::testing::HasSubstr;

Tensor Floats(const Dims& dims, const std::vector<float>& values) { return MakeTensor<float>(dims, values); }
Tensor Int64(int64_t v) { return MakeTensor<int64_t>({}, {v}); }

Tensor Sequence(std::vector<Tensor> elements, DType dtype = DType::kFloat32) {
  return ValueOrAbort(MakeSequence(dtype, std::move(elements)));
}

// A sequence of three float tensors: [1, 2], [3], [4, 5, 6].
Tensor ThreeFloats() { return Sequence({Floats({2}, {1, 2}), Floats({1}, {3}), Floats({3}, {4, 5, 6})}); }

Status ErrorOf(const StatusOr<std::vector<Tensor>>& result) { return result.ok() ? Status::Ok() : result.status(); }

std::vector<float> ElementValues(const Tensor& sequence, size_t i) {
  return ToVector<float>((*SequenceElements(sequence))[i]);
}

TEST(SequenceValue, MakeCheckAndCopy) {
  Tensor seq = ThreeFloats();
  ASSERT_TRUE(IsSequence(seq));
  EXPECT_FALSE(IsNoneOptional(seq));
  EXPECT_EQ(SequenceElementDType(seq), DType::kFloat32);
  EXPECT_EQ(SequenceElements(seq)->size(), 3u);
  auto copy = seq.Clone();
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  // Copies share the immutable elements.
  EXPECT_EQ((*SequenceElements(*copy))[2].raw_data(), (*SequenceElements(seq))[2].raw_data());

  auto mixed = MakeSequence(DType::kFloat32, {Floats({1}, {1}), MakeTensor<int64_t>({1}, {1})});
  ASSERT_FALSE(mixed.ok());
  EXPECT_THAT(mixed.status().message(), HasSubstr("element 1 is int64 in a sequence of float32"));

  EXPECT_FALSE(IsSequence(Floats({1}, {1})));
  EXPECT_EQ(SequenceElements(Floats({1}, {1})), nullptr);
  EXPECT_TRUE(IsNoneOptional(NoneOptional()));
  EXPECT_FALSE(IsSequence(NoneOptional()));
}

TEST(SequenceValue, IsNeverAllocated) {
  auto t = Tensor::Allocate(DType::kSequence, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("made by MakeSequence"));
  // Nor can a kernel ask the allocator for one.
  std::vector<const Tensor*> inputs;
  std::vector<Tensor> outputs(1);
  PlainAllocator allocator;
  kernels::SerialRunner serial;
  kernels::KernelContext ctx(inputs, outputs, allocator, serial);
  auto out = ctx.Output(0, DType::kSequence, {});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("is a sequence"));
}

TEST(SequenceOps, ElementCopiesAskTheAllocationHook) {
  Tensor a = Floats({4}, {1, 2, 3, 4});
  std::vector<const Tensor*> inputs = {&a};
  std::vector<Tensor> outputs(1);
  PlainAllocator allocator;
  kernels::SerialRunner serial;
  size_t asked = 0;
  std::function<Status(size_t)> refuse = [&asked](size_t bytes) {
    asked = bytes;
    return ResourceExhausted("over the test's budget");
  };
  graph::Node node;
  node.op_type = "SequenceConstruct";
  node.opset = 17;
  auto kernel = ValueOrAbort(kernels::DefaultKernelRegistry().Create(node));
  kernels::KernelContext ctx(inputs, outputs, allocator, serial);
  ctx.set_allocation_hook(&refuse);
  Status s = kernel->Compute(ctx);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(asked, 16u);
  node.op_type = "SplitToSequence";
  kernel = ValueOrAbort(kernels::DefaultKernelRegistry().Create(node));
  s = kernel->Compute(ctx);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
}

TEST(SequenceOps, EmptyConstructLength) {
  auto empty = RunOp("SequenceEmpty", {}, {{"dtype", graph::Attribute::Int(7)}});
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(SequenceElementDType((*empty)[0]), DType::kInt64);
  EXPECT_TRUE(SequenceElements((*empty)[0])->empty());

  Tensor a = Floats({2}, {1, 2}), b = Floats({1}, {3});
  auto seq = RunOp("SequenceConstruct", {&a, &b});
  ASSERT_TRUE(seq.ok()) << seq.status().ToString();
  // The elements are copies: the inputs' memory may be reused later.
  EXPECT_NE((*SequenceElements((*seq)[0]))[0].raw_data(), a.raw_data());
  auto length = RunOp("SequenceLength", {&(*seq)[0]});
  ASSERT_TRUE(length.ok()) << length.status().ToString();
  EXPECT_EQ(ToVector<int64_t>((*length)[0]), std::vector<int64_t>{2});
}

TEST(SequenceOps, ConstructRejectsMixedDTypes) {
  Tensor a = Floats({1}, {1});
  Tensor b = MakeTensor<int32_t>({1}, {1});
  Status s = ErrorOf(RunOp("SequenceConstruct", {&a, &b}));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("input 1 is int32 but input 0 is float32"));
}

TEST(SequenceOps, AtCountsFromEitherEnd) {
  Tensor seq = ThreeFloats();
  Tensor last = Int64(-1), first = MakeTensor<int32_t>({}, {0});
  auto at = RunOp("SequenceAt", {&seq, &last});
  ASSERT_TRUE(at.ok()) << at.status().ToString();
  EXPECT_EQ(ToVector<float>((*at)[0]), (std::vector<float>{4, 5, 6}));
  at = RunOp("SequenceAt", {&seq, &first});
  ASSERT_TRUE(at.ok()) << at.status().ToString();
  EXPECT_EQ(ToVector<float>((*at)[0]), (std::vector<float>{1, 2}));
}

TEST(SequenceOps, AtOutOfRange) {
  Tensor seq = ThreeFloats();
  for (int64_t bad : {3, -4}) {
    Tensor position = Int64(bad);
    Status s = ErrorOf(RunOp("SequenceAt", {&seq, &position}));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("position " + std::to_string(bad) + " is out of range [-3, 2]"));
  }
  Tensor float_position = Floats({}, {0});
  Status s = ErrorOf(RunOp("SequenceAt", {&seq, &float_position}));
  EXPECT_THAT(s.message(), HasSubstr("position must be int32 or int64"));
}

TEST(SequenceOps, AtNeedsASequence) {
  Tensor not_a_sequence = Floats({1}, {1});
  Tensor position = Int64(0);
  Status s = ErrorOf(RunOp("SequenceAt", {&not_a_sequence, &position}));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("must be a sequence, got a float32 tensor"));
  Tensor none = NoneOptional();
  s = ErrorOf(RunOp("SequenceAt", {&none, &position}));
  EXPECT_THAT(s.message(), HasSubstr("must be a sequence, got an empty optional"));
}

TEST(SequenceOps, InsertAtPositions) {
  Tensor seq = ThreeFloats();
  Tensor x = Floats({1}, {9});
  auto back = RunOp("SequenceInsert", {&seq, &x});
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(SequenceElements((*back)[0])->size(), 4u);
  EXPECT_EQ(ElementValues((*back)[0], 3), std::vector<float>{9});
  // The input sequence is unchanged.
  EXPECT_EQ(SequenceElements(seq)->size(), 3u);
  Tensor front = Int64(-3);
  auto at_front = RunOp("SequenceInsert", {&seq, &x, &front});
  ASSERT_TRUE(at_front.ok()) << at_front.status().ToString();
  EXPECT_EQ(ElementValues((*at_front)[0], 0), std::vector<float>{9});
  EXPECT_EQ(ElementValues((*at_front)[0], 1), (std::vector<float>{1, 2}));
  Tensor end = Int64(3);  // inserting at the length appends
  auto at_end = RunOp("SequenceInsert", {&seq, &x, &end});
  ASSERT_TRUE(at_end.ok()) << at_end.status().ToString();
  EXPECT_EQ(ElementValues((*at_end)[0], 3), std::vector<float>{9});
}

TEST(SequenceOps, InsertErrors) {
  Tensor seq = ThreeFloats();
  Tensor x = Floats({1}, {9});
  Tensor past_end = Int64(4);
  Status s = ErrorOf(RunOp("SequenceInsert", {&seq, &x, &past_end}));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("position 4 is out of range [-3, 3]"));
  Tensor ints = MakeTensor<int64_t>({1}, {9});
  s = ErrorOf(RunOp("SequenceInsert", {&seq, &ints}));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("the tensor is int64 but the sequence holds float32 tensors"));
  Tensor matrix_position = MakeTensor<int64_t>({1, 1}, {0});
  s = ErrorOf(RunOp("SequenceInsert", {&seq, &x, &matrix_position}));
  EXPECT_THAT(s.message(), HasSubstr("position must be a scalar"));
}

TEST(SequenceOps, Erase) {
  Tensor seq = ThreeFloats();
  auto erased = RunOp("SequenceErase", {&seq});
  ASSERT_TRUE(erased.ok()) << erased.status().ToString();
  ASSERT_EQ(SequenceElements((*erased)[0])->size(), 2u);  // the last one by default
  EXPECT_EQ(ElementValues((*erased)[0], 1), std::vector<float>{3});
  Tensor first = Int64(-3);
  erased = RunOp("SequenceErase", {&seq, &first});
  ASSERT_TRUE(erased.ok()) << erased.status().ToString();
  EXPECT_EQ(ElementValues((*erased)[0], 0), std::vector<float>{3});

  Tensor past_end = Int64(3);
  Status s = ErrorOf(RunOp("SequenceErase", {&seq, &past_end}));
  EXPECT_THAT(s.message(), HasSubstr("position 3 is out of range [-3, 2]"));
  Tensor empty = Sequence({});
  s = ErrorOf(RunOp("SequenceErase", {&empty}));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("the sequence is empty"));
}

TEST(SequenceOps, ConcatFromSequence) {
  Tensor seq = Sequence({Floats({2, 1}, {1, 2}), Floats({2, 2}, {3, 4, 5, 6})});
  auto cat = RunOp("ConcatFromSequence", {&seq}, {{"axis", graph::Attribute::Int(1)}});
  ASSERT_TRUE(cat.ok()) << cat.status().ToString();
  EXPECT_EQ((*cat)[0].dims(), (Dims{2, 3}));
  EXPECT_EQ(ToVector<float>((*cat)[0]), (std::vector<float>{1, 3, 4, 2, 5, 6}));

  Tensor same = Sequence({Floats({2}, {1, 2}), Floats({2}, {3, 4})});
  // new_axis: stacked along an inserted axis, which may be after the last.
  auto stacked = RunOp("ConcatFromSequence", {&same},
                       {{"axis", graph::Attribute::Int(-1)}, {"new_axis", graph::Attribute::Int(1)}});
  ASSERT_TRUE(stacked.ok()) << stacked.status().ToString();
  EXPECT_EQ((*stacked)[0].dims(), (Dims{2, 2}));
  EXPECT_EQ(ToVector<float>((*stacked)[0]), (std::vector<float>{1, 3, 2, 4}));
  stacked = RunOp("ConcatFromSequence", {&same},
                  {{"axis", graph::Attribute::Int(0)}, {"new_axis", graph::Attribute::Int(1)}});
  ASSERT_TRUE(stacked.ok()) << stacked.status().ToString();
  EXPECT_EQ(ToVector<float>((*stacked)[0]), (std::vector<float>{1, 2, 3, 4}));
}

TEST(SequenceOps, ConcatFromSequenceErrors) {
  Tensor seq = Sequence({Floats({2, 1}, {1, 2}), Floats({2, 2}, {3, 4, 5, 6})});
  Status s = ErrorOf(RunOp("ConcatFromSequence", {&seq}, {{"axis", graph::Attribute::Int(0)}}));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("element 1 has shape [2, 2] but element 0 has [2, 1]"));
  s = ErrorOf(RunOp("ConcatFromSequence", {&seq}, {{"axis", graph::Attribute::Int(2)}}));
  EXPECT_THAT(s.message(), HasSubstr("axis 2 is out of range for rank 2"));
  Tensor empty = Sequence({});
  s = ErrorOf(RunOp("ConcatFromSequence", {&empty}, {{"axis", graph::Attribute::Int(0)}}));
  EXPECT_THAT(s.message(), HasSubstr("the sequence is empty"));
  auto no_axis = RunOp("ConcatFromSequence", {&seq});
  ASSERT_FALSE(no_axis.ok());
  EXPECT_EQ(no_axis.status().code(), StatusCode::kInvalidModel);
  EXPECT_THAT(no_axis.status().message(), HasSubstr("'axis' is required"));
}

TEST(SequenceOps, SplitToSequence) {
  Tensor x = Floats({2, 3}, {1, 2, 3, 4, 5, 6});
  // No split: pieces of length 1, the axis dropped when keepdims = 0.
  auto pieces =
      RunOp("SplitToSequence", {&x}, {{"axis", graph::Attribute::Int(1)}, {"keepdims", graph::Attribute::Int(0)}});
  ASSERT_TRUE(pieces.ok()) << pieces.status().ToString();
  ASSERT_EQ(SequenceElements((*pieces)[0])->size(), 3u);
  EXPECT_EQ((*SequenceElements((*pieces)[0]))[1].dims(), (Dims{2}));
  EXPECT_EQ(ElementValues((*pieces)[0], 1), (std::vector<float>{2, 5}));
  // A scalar split: equal chunks, the last one shorter.
  Tensor two = Int64(2);
  auto chunks = RunOp("SplitToSequence", {&x, &two}, {{"axis", graph::Attribute::Int(-1)}});
  ASSERT_TRUE(chunks.ok()) << chunks.status().ToString();
  ASSERT_EQ(SequenceElements((*chunks)[0])->size(), 2u);
  EXPECT_EQ((*SequenceElements((*chunks)[0]))[1].dims(), (Dims{2, 1}));
  EXPECT_EQ(ElementValues((*chunks)[0], 0), (std::vector<float>{1, 2, 4, 5}));
  // A 1-D split; keepdims does not apply.
  Tensor lengths = MakeTensor<int64_t>({2}, {1, 2});
  auto parts = RunOp("SplitToSequence", {&x, &lengths},
                     {{"axis", graph::Attribute::Int(1)}, {"keepdims", graph::Attribute::Int(0)}});
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  EXPECT_EQ((*SequenceElements((*parts)[0]))[0].dims(), (Dims{2, 1}));
  EXPECT_EQ(ElementValues((*parts)[0], 1), (std::vector<float>{2, 3, 5, 6}));
}

TEST(SequenceOps, SplitToSequenceErrors) {
  Tensor x = Floats({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor lengths = MakeTensor<int64_t>({2}, {1, 1});
  Status s = ErrorOf(RunOp("SplitToSequence", {&x, &lengths}, {{"axis", graph::Attribute::Int(1)}}));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("split lengths add up to 2 but axis 1 has length 3"));
  Tensor zero = Int64(0);
  s = ErrorOf(RunOp("SplitToSequence", {&x, &zero}));
  EXPECT_THAT(s.message(), HasSubstr("split must be positive, got 0"));
  s = ErrorOf(RunOp("SplitToSequence", {&x}, {{"axis", graph::Attribute::Int(2)}}));
  EXPECT_THAT(s.message(), HasSubstr("axis 2 is out of range for rank 2"));
  auto bad_keepdims = RunOp("SplitToSequence", {&x}, {{"keepdims", graph::Attribute::Int(2)}});
  ASSERT_FALSE(bad_keepdims.ok());
  EXPECT_THAT(bad_keepdims.status().message(), HasSubstr("keepdims must be 0 or 1"));
}

TEST(OptionalOps, HasAndGetElement) {
  Tensor none = NoneOptional();
  Tensor x = Floats({1}, {7});
  Tensor seq = ThreeFloats();
  auto has = RunOp("OptionalHasElement", {&none});
  ASSERT_TRUE(has.ok()) << has.status().ToString();
  EXPECT_FALSE(*(*has)[0].data<bool>());
  has = RunOp("OptionalHasElement", {&x});
  ASSERT_TRUE(has.ok()) << has.status().ToString();
  EXPECT_TRUE(*(*has)[0].data<bool>());

  auto got = RunOp("OptionalGetElement", {&x});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(ToVector<float>((*got)[0]), std::vector<float>{7});
  got = RunOp("OptionalGetElement", {&seq});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(SequenceElements((*got)[0])->size(), 3u);
  Status s = ErrorOf(RunOp("OptionalGetElement", {&none}));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("the optional is empty"));

  auto wrapped = RunOp("Optional", {&seq});
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().ToString();
  EXPECT_TRUE(IsSequence((*wrapped)[0]));
  auto made_none = RunOp("Optional", {});
  ASSERT_TRUE(made_none.ok()) << made_none.status().ToString();
  EXPECT_TRUE(IsNoneOptional((*made_none)[0]));
}

TEST(SequenceOps, IdentityPassesASequenceThrough) {
  Tensor seq = ThreeFloats();
  auto out = RunOp("Identity", {&seq});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_TRUE(IsSequence((*out)[0]));
  EXPECT_EQ(ElementValues((*out)[0], 2), (std::vector<float>{4, 5, 6}));
}

}  // namespace
}  // namespace kiln::testing
