// --shape and --dim as `kiln run` reads them: parsing "1x3x224x224", and
// checking the flags against a model's declared inputs.
#include "tools/input_shapes.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace kiln::cli {
namespace {

TensorInfo Input(const std::string& name, Dims dims, std::vector<std::string> dim_names) {
  TensorInfo info;
  info.name = name;
  info.dtype = DType::kFloat32;
  info.rank_known = true;
  info.dims = std::move(dims);
  info.dim_names = std::move(dim_names);
  return info;
}

// image [batch, 3, height, width] and mask [batch, 1] share `batch`.
std::vector<TensorInfo> TwoInputs() {
  return {Input("image", {-1, 3, -1, -1}, {"batch", "", "height", "width"}), Input("mask", {-1, 1}, {"batch", ""})};
}

void ExpectError(const Status& status, const std::string& fragment) {
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_NE(status.message().find(fragment), std::string::npos) << "'" << fragment << "' not in " << status.message();
}

TEST(ParseShapeTest, ReadsDimsSeparatedByX) {
  StatusOr<Dims> dims = ParseShape("1x3x224x224", "--shape image");
  ASSERT_TRUE(dims.ok()) << dims.status().ToString();
  EXPECT_EQ(*dims, (Dims{1, 3, 224, 224}));
  StatusOr<Dims> one = ParseShape("7", "--shape image");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, (Dims{7}));
  StatusOr<Dims> zero = ParseShape("0x4", "--shape image");
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(*zero, (Dims{0, 4}));
}

TEST(ParseShapeTest, RejectsMalformedTextNamingTheFlag) {
  for (const char* text : {"", "x", "1x", "x1", "1xx2", "1x-2", "1x3.5", "1,3", "1X3", " 1", "1x99999999999999999999",
                           "1x2000000000000"}) {
    SCOPED_TRACE(text);
    StatusOr<Dims> dims = ParseShape(text, "--shape image");
    ASSERT_FALSE(dims.ok());
    ExpectError(dims.status(), "--shape image");
  }
}

TEST(BindSymbolsTest, ShapeBindsTheSymbolsOfItsInput) {
  ShapeFlags flags;
  flags.shapes["image"] = {2, 3, 64, 48};
  StatusOr<std::map<std::string, int64_t>> symbols = BindSymbols(TwoInputs(), flags);
  ASSERT_TRUE(symbols.ok()) << symbols.status().ToString();
  EXPECT_EQ(*symbols, (std::map<std::string, int64_t>{{"batch", 2}, {"height", 64}, {"width", 48}}));

  // The other input takes `batch` from image's --shape.
  StatusOr<Dims> mask = GeneratedDims(TwoInputs()[1], *symbols, flags.shapes);
  ASSERT_TRUE(mask.ok()) << mask.status().ToString();
  EXPECT_EQ(*mask, (Dims{2, 1}));
  StatusOr<Dims> image = GeneratedDims(TwoInputs()[0], *symbols, flags.shapes);
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(*image, (Dims{2, 3, 64, 48}));
}

TEST(BindSymbolsTest, DimAndShapeAgreeingIsFine) {
  ShapeFlags flags;
  flags.dims["batch"] = 2;
  flags.shapes["mask"] = {2, 1};
  StatusOr<std::map<std::string, int64_t>> symbols = BindSymbols(TwoInputs(), flags);
  ASSERT_TRUE(symbols.ok()) << symbols.status().ToString();
  EXPECT_EQ(symbols->at("batch"), 2);
}

TEST(BindSymbolsTest, UnknownInputIsNamedWithTheChoices) {
  ShapeFlags flags;
  flags.shapes["imag"] = {1, 3, 8, 8};
  StatusOr<std::map<std::string, int64_t>> symbols = BindSymbols(TwoInputs(), flags);
  ASSERT_FALSE(symbols.ok());
  ExpectError(symbols.status(), "--shape imag=1x3x8x8: the model has no input 'imag' (its inputs: 'image', 'mask')");
}

TEST(BindSymbolsTest, ContradictingAFixedDimNamesTheInputAndTheDim) {
  ShapeFlags flags;
  flags.shapes["image"] = {1, 4, 8, 8};
  StatusOr<std::map<std::string, int64_t>> symbols = BindSymbols(TwoInputs(), flags);
  ASSERT_FALSE(symbols.ok());
  ExpectError(symbols.status(), "input 'image' fixes dim 1 at 3 [batch, 3, height, width], the flag gives 4");
}

TEST(BindSymbolsTest, WrongRankNamesTheInput) {
  ShapeFlags flags;
  flags.shapes["mask"] = {1, 1, 1};
  StatusOr<std::map<std::string, int64_t>> symbols = BindSymbols(TwoInputs(), flags);
  ASSERT_FALSE(symbols.ok());
  ExpectError(symbols.status(), "input 'mask' has rank 2 [batch, 1], the flag gives 3 dims");
}

TEST(BindSymbolsTest, ConflictingValuesForOneSymbolNameBothFlags) {
  ShapeFlags with_dim;
  with_dim.dims["batch"] = 2;
  with_dim.shapes["image"] = {4, 3, 8, 8};
  StatusOr<std::map<std::string, int64_t>> a = BindSymbols(TwoInputs(), with_dim);
  ASSERT_FALSE(a.ok());
  ExpectError(a.status(), "--shape image=4x3x8x8 sets 'batch' to 4, but --dim batch=2 sets it to 2");

  ShapeFlags two_shapes;
  two_shapes.shapes["image"] = {4, 3, 8, 8};
  two_shapes.shapes["mask"] = {5, 1};
  StatusOr<std::map<std::string, int64_t>> b = BindSymbols(TwoInputs(), two_shapes);
  ASSERT_FALSE(b.ok());
  ExpectError(b.status(), "--shape mask=5x1 sets 'batch' to 5, but --shape image=4x3x8x8 sets it to 4");
}

TEST(BindSymbolsTest, DimForASymbolNoInputHasFails) {
  ShapeFlags flags;
  flags.dims["seq"] = 3;
  StatusOr<std::map<std::string, int64_t>> symbols = BindSymbols(TwoInputs(), flags);
  ASSERT_FALSE(symbols.ok());
  ExpectError(symbols.status(), "no input has a symbolic dim 'seq'");
}

TEST(GeneratedDimsTest, AnUnboundSymbolSaysWhichFlagsWouldBindIt) {
  StatusOr<Dims> dims = GeneratedDims(TwoInputs()[1], {}, {});
  ASSERT_FALSE(dims.ok());
  ExpectError(dims.status(), "input 'mask' has symbolic dim 'batch' in [batch, 1]");
  ExpectError(dims.status(), "--shape mask=DIMS");
  ExpectError(dims.status(), "--dim batch=VALUE");
}

TEST(GeneratedDimsTest, ShapeGivesTheRankOfAnInputOfUnknownRank) {
  TensorInfo any;
  any.name = "any";
  any.dtype = DType::kFloat32;
  ShapeFlags flags;
  flags.shapes["any"] = {5, 6};
  StatusOr<std::map<std::string, int64_t>> symbols = BindSymbols({any}, flags);
  ASSERT_TRUE(symbols.ok()) << symbols.status().ToString();
  StatusOr<Dims> dims = GeneratedDims(any, *symbols, flags.shapes);
  ASSERT_TRUE(dims.ok());
  EXPECT_EQ(*dims, (Dims{5, 6}));
  EXPECT_FALSE(GeneratedDims(any, *symbols, {}).ok());
}

}  // namespace
}  // namespace kiln::cli
