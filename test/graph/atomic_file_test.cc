// WriteFileAtomically: whole contents replaced, no temporary file left, and
// a clear error (no file created) where the folder cannot take one.
#include "graph/atomic_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace kiln::graph {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(AtomicFile, WritesAndReplacesWholeContentsLeavingNothingElse) {
  const fs::path dir = fs::path(::testing::TempDir()) / "kiln_atomic_file";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "entry").string();
  ASSERT_TRUE(WriteFileAtomically(path, std::string("first\0with a zero", 17)).ok());
  EXPECT_EQ(ReadAll(path), std::string("first\0with a zero", 17));
  ASSERT_TRUE(WriteFileAtomically(path, "second").ok());
  EXPECT_EQ(ReadAll(path), "second");
  int files = 0;
  for (const auto& item : fs::directory_iterator(dir)) {
    EXPECT_EQ(item.path().filename(), "entry") << "left behind: " << item.path();
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(AtomicFile, AMissingFolderIsAnIoError) {
  const fs::path dir = fs::path(::testing::TempDir()) / "kiln_atomic_file_missing";
  fs::remove_all(dir);
  const Status s = WriteFileAtomically((dir / "entry").string(), "bytes");
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.ToString();
  EXPECT_NE(s.message().find("cannot write"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(dir));
}

}  // namespace
}  // namespace kiln::graph
