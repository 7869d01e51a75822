#include "tools/npy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "test/tensors.h"

namespace kiln::tools {
namespace {

using testing::MakeTensor;

// A .npy file with the given version, header dict text and data bytes; the
// header is padded to 64 bytes the way numpy does it.
std::string MakeNpy(int major, const std::string& dict, const std::string& data, bool pad = true) {
  size_t length_bytes = major == 1 ? 2 : 4;
  std::string header = dict;
  if (pad) {
    size_t total = 8 + length_bytes + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
  }
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < length_bytes; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string FloatBytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

template <typename T>
void ExpectRoundTrip(const Dims& dims, const std::vector<T>& values, const std::string& descr) {
  Tensor t = MakeTensor<T>(dims, values);
  StatusOr<std::string> bytes = SerializeNpy(t);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_NE(bytes->find("'descr': '" + descr + "'"), std::string::npos) << *bytes;
  // numpy's layout: the data starts on a 64-byte boundary after a '\n'.
  size_t data_offset = bytes->size() - t.byte_size();
  EXPECT_EQ(data_offset % 64, 0u);
  EXPECT_EQ((*bytes)[data_offset - 1], '\n');
  StatusOr<Tensor> back = ParseNpy(bytes->data(), bytes->size());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->dtype(), DTypeOf<T>());
  EXPECT_EQ(back->dims(), dims);
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(back->data<T>()[i], values[i]) << i;
}

TEST(NpyTest, RoundTripsEveryDType) {
  ExpectRoundTrip<float>({2, 3}, {1.5f, -2.f, 0.f, 3.25f, -0.f, 1e30f}, "<f4");
  ExpectRoundTrip<double>({3}, {1.0 / 3, -2.5, 1e300}, "<f8");
  ExpectRoundTrip<int64_t>({2, 2}, {INT64_MIN, -1, 0, INT64_MAX}, "<i8");
  ExpectRoundTrip<int32_t>({4}, {INT32_MIN, -7, 7, INT32_MAX}, "<i4");
  ExpectRoundTrip<int16_t>({1, 3}, {-32768, 5, 32767}, "<i2");
  ExpectRoundTrip<int8_t>({3}, {-128, 0, 127}, "|i1");
  ExpectRoundTrip<uint8_t>({2}, {0, 255}, "|u1");
  ExpectRoundTrip<bool>({2, 2}, {true, false, false, true}, "|b1");
}

TEST(NpyTest, RoundTripsScalarsAndEmptyArrays) {
  ExpectRoundTrip<float>({}, {42.5f}, "<f4");
  ExpectRoundTrip<int64_t>({}, {-3}, "<i8");
  ExpectRoundTrip<bool>({}, {true}, "|b1");
  ExpectRoundTrip<float>({0, 3}, {}, "<f4");
  ExpectRoundTrip<int32_t>({5, 0}, {}, "<i4");
}

TEST(NpyTest, WritesNumpyShapeSyntax) {
  StatusOr<std::string> scalar = SerializeNpy(MakeTensor<float>({}, {1.f}));
  ASSERT_TRUE(scalar.ok());
  EXPECT_NE(scalar->find("'shape': (), }"), std::string::npos) << *scalar;
  StatusOr<std::string> vec = SerializeNpy(MakeTensor<float>({3}, {1.f, 2.f, 3.f}));
  ASSERT_TRUE(vec.ok());
  EXPECT_NE(vec->find("'shape': (3,), }"), std::string::npos) << *vec;
  StatusOr<std::string> mat = SerializeNpy(MakeTensor<float>({1, 2}, {1.f, 2.f}));
  ASSERT_TRUE(mat.ok());
  EXPECT_NE(mat->find("'shape': (1, 2), }"), std::string::npos) << *mat;
  EXPECT_EQ(mat->compare(0, 8, std::string("\x93NUMPY\x01\x00", 8)), 0);
}

TEST(NpyTest, ReadsAllFormatVersions) {
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  for (int major : {1, 2, 3}) {
    std::string file = MakeNpy(major, dict, FloatBytes({1.f, -2.f}));
    StatusOr<Tensor> t = ParseNpy(file.data(), file.size());
    ASSERT_TRUE(t.ok()) << major << ": " << t.status().ToString();
    EXPECT_EQ(t->dims(), Dims({2}));
    EXPECT_EQ(t->data<float>()[1], -2.f);
  }
}

TEST(NpyTest, AcceptsHeaderVariants) {
  // Double quotes, no trailing comma, other key order, no padding, L suffix.
  for (const std::string dict : {
           std::string("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1, 2)}"),
           std::string("{'shape': (1,2), 'fortran_order': False, 'descr': '=f4'}"),
           std::string("{'descr':'<f4','fortran_order':False,'shape':(1L, 2L),}"),
       }) {
    for (bool pad : {true, false}) {
      std::string file = MakeNpy(1, dict, FloatBytes({1.f, 2.f}), pad);
      StatusOr<Tensor> t = ParseNpy(file.data(), file.size());
      ASSERT_TRUE(t.ok()) << dict << ": " << t.status().ToString();
      EXPECT_EQ(t->dims(), Dims({1, 2}));
    }
  }
}

TEST(NpyTest, NormalisesBoolBytes) {
  std::string file =
      MakeNpy(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", std::string("\x00\x02\xff", 3));
  StatusOr<Tensor> t = ParseNpy(file.data(), file.size());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const auto* bytes = static_cast<const uint8_t*>(t->raw_data());
  EXPECT_EQ(bytes[0], 0);
  EXPECT_EQ(bytes[1], 1);
  EXPECT_EQ(bytes[2], 1);
}

void ExpectError(const std::string& file, StatusCode code, const std::string& fragment) {
  StatusOr<Tensor> t = ParseNpy(file.data(), file.size());
  ASSERT_FALSE(t.ok()) << "parsed: " << fragment;
  EXPECT_EQ(t.status().code(), code) << t.status().ToString();
  EXPECT_NE(t.status().message().find(fragment), std::string::npos) << t.status().ToString();
}

TEST(NpyTest, RejectsBadMagicAndTruncation) {
  const std::string good = MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", FloatBytes({1, 2}));
  ExpectError("", StatusCode::kInvalidArgument, "bad magic");
  ExpectError("PK\x03\x04 not numpy at all", StatusCode::kInvalidArgument, "bad magic");
  ExpectError(good.substr(0, 7), StatusCode::kInvalidArgument, "bad magic");
  ExpectError(good.substr(0, 9), StatusCode::kInvalidArgument, "truncated");
  ExpectError(good.substr(0, 40), StatusCode::kInvalidArgument, "truncated");
  ExpectError(good.substr(0, good.size() - 1), StatusCode::kInvalidArgument, "truncated .npy file: shape [2]");
  ExpectError(good + "x", StatusCode::kInvalidArgument, "trailing bytes");
  std::string v4 = good;
  v4[6] = 4;
  ExpectError(v4, StatusCode::kUnsupported, "version 4.0");
}

TEST(NpyTest, RejectsBadHeaders) {
  const std::string data = FloatBytes({1, 2});
  ExpectError(MakeNpy(1, "not a dict", data), StatusCode::kInvalidArgument, "expected '{'");
  ExpectError(MakeNpy(1, "{'descr': '<f4', 'fortran_order': False}", data), StatusCode::kInvalidArgument,
              "must have 'descr', 'fortran_order' and 'shape'");
  ExpectError(MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", data),
              StatusCode::kInvalidArgument, "unexpected key 'extra'");
  ExpectError(MakeNpy(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", data),
              StatusCode::kInvalidArgument, "duplicate key");
  ExpectError(MakeNpy(1, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,)}", data), StatusCode::kInvalidArgument,
              "True or False");
  ExpectError(MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", data),
              StatusCode::kInvalidArgument, "non-negative");
  ExpectError(MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,", data), StatusCode::kInvalidArgument,
              "bad .npy header");
  ExpectError(MakeNpy(1, "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", data), StatusCode::kInvalidArgument,
              "bad .npy header");
  ExpectError(MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk", data),
              StatusCode::kInvalidArgument, "unexpected text");
}

TEST(NpyTest, RejectsUnsupportedLayoutsAndDTypes) {
  const std::string data = FloatBytes({1, 2});
  ExpectError(MakeNpy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,)}", data), StatusCode::kUnsupported,
              "Fortran order");
  ExpectError(MakeNpy(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,)}", data), StatusCode::kUnsupported,
              "big-endian");
  ExpectError(MakeNpy(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (4,)}", data), StatusCode::kUnsupported,
              "'<f2' is not supported");
  // A valid numpy dtype (unicode strings) kiln has no tensor type for.
  ExpectError(MakeNpy(1, "{'descr': '<U3', 'fortran_order': False, 'shape': (2,)}", data), StatusCode::kUnsupported,
              "'<U3' is not supported");
  ExpectError(MakeNpy(1, "{'descr': '<fx', 'fortran_order': False, 'shape': (2,)}", data), StatusCode::kInvalidArgument,
              "bad dtype descr");
  ExpectError(MakeNpy(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,)}", data), StatusCode::kUnsupported,
              "not supported");
  ExpectError(MakeNpy(1, "{'descr': '|f4', 'fortran_order': False, 'shape': (2,)}", data), StatusCode::kInvalidArgument,
              "bad dtype descr");
}

TEST(NpyTest, RejectsAbsurdShapes) {
  const std::string data = FloatBytes({1, 2});
  ExpectError(MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", data),
              StatusCode::kInvalidArgument, "dim is too large");
  // Each dim is allowed, their product overflows.
  ExpectError(MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776)}", data),
              StatusCode::kResourceExhausted, "bad .npy shape");
  std::string many = "(";
  for (int i = 0; i < 40; ++i) many += "1,";
  ExpectError(MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': " + many + ")}", data),
              StatusCode::kInvalidArgument, "rank is too large");
  // Plausible shape that the data does not cover.
  ExpectError(MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000)}", data),
              StatusCode::kInvalidArgument, "needs 4000000 data bytes, the file has 8");
}

// Every prefix and many single-byte corruptions of a valid file must come
// back as a value or an error, never a crash (run under --config=asan).
TEST(NpyTest, SurvivesTruncationAndCorruption) {
  StatusOr<std::string> good = SerializeNpy(MakeTensor<int16_t>({2, 3}, {1, 2, 3, 4, 5, 6}));
  ASSERT_TRUE(good.ok());
  for (size_t n = 0; n < good->size(); ++n) {
    std::string prefix = good->substr(0, n);
    EXPECT_FALSE(ParseNpy(prefix.data(), prefix.size()).ok()) << n;
  }
  uint32_t state = 12345;
  for (int trial = 0; trial < 5000; ++trial) {
    std::string bad = *good;
    for (int k = 0; k < 3; ++k) {
      state = state * 1664525u + 1013904223u;
      size_t pos = (state >> 8) % std::min<size_t>(bad.size(), 80);
      state = state * 1664525u + 1013904223u;
      bad[pos] = static_cast<char>(state >> 24);
    }
    StatusOr<Tensor> t = ParseNpy(bad.data(), bad.size());
    if (t.ok()) EXPECT_LE(t->byte_size(), bad.size());
  }
}

TEST(NpyTest, FileRoundTripAndMissingFile) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = tmp ? tmp : "/tmp";
  std::string path = dir + "/npy_test_roundtrip.npy";
  Tensor t = MakeTensor<int32_t>({2, 1}, {7, -9});
  ASSERT_TRUE(WriteNpy(path, t).ok());
  StatusOr<Tensor> back = ReadNpy(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->dims(), Dims({2, 1}));
  EXPECT_EQ(back->data<int32_t>()[1], -9);

  StatusOr<Tensor> missing = ReadNpy(dir + "/does_not_exist.npy");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(WriteNpy(dir + "/no/such/dir/x.npy", t).code(), StatusCode::kIoError);
  EXPECT_FALSE(SerializeNpy(Tensor()).ok());
}

}  // namespace
}  // namespace kiln::tools
