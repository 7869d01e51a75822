// Compiled code on disk: a second compiler (standing in for another process)
// links what the first compiled instead of compiling it; damaged, foreign
// and evicted entries are never linked.
#include "jit/persistent_code_cache.h"

#include <gtest/gtest.h>
#include <llvm/ExecutionEngine/Orc/Core.h>  // ResourceTracker, for JitCode

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "jit/compiled_region.h"
#include "jit/jit_compiler.h"
#include "test/jit/jit_test_util.h"

namespace kiln::jit {
namespace {

namespace fs = std::filesystem;
using testing::RegionBuilder;

std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/kiln_code_cache_" + name;
  fs::remove_all(dir);
  return dir;
}

std::unique_ptr<PersistentCodeCache> OpenCache(const std::string& dir, const std::string& fingerprint,
                                               int64_t max_bytes = int64_t{1} << 30) {
  auto cache = PersistentCodeCache::Open(dir, fingerprint, max_bytes);
  EXPECT_TRUE(cache.ok()) << cache.status().ToString();
  return cache.ok() ? std::move(cache).value() : nullptr;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

TEST(PersistentCodeCache, StoresAndFindsAnEntry) {
  auto cache = OpenCache(FreshDir("roundtrip"), "cpu=test");
  ASSERT_NE(cache, nullptr);
  EXPECT_FALSE(cache->Find("key").has_value());
  cache->Store("key", {"entry_sym", std::string("\x7f"
                                                "ELF object bytes\0\1\2",
                                                20)});
  auto found = cache->Find("key");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->symbol, "entry_sym");
  EXPECT_EQ(found->object, std::string("\x7f"
                                       "ELF object bytes\0\1\2",
                                       20));
  EXPECT_FALSE(cache->Find("other key").has_value());
  const auto c = cache->counters();
  EXPECT_EQ(c.hits, 1);
  EXPECT_EQ(c.misses, 2);
  EXPECT_EQ(c.rejected, 0);
  EXPECT_EQ(c.writes, 1);
}

TEST(PersistentCodeCache, TruncatedCorruptedAndForeignEntriesAreRejected) {
  const std::string dir = FreshDir("damaged");
  auto cache = OpenCache(dir, "cpu=znver4;features=+avx512f");
  ASSERT_NE(cache, nullptr);
  const std::string object(4096, 'x');
  cache->Store("key", {"sym", object});
  const std::string path = cache->PathFor("key");
  const std::string good = ReadFile(path);

  WriteFile(path, good.substr(0, good.size() - 100));  // truncated
  EXPECT_FALSE(cache->Find("key").has_value());
  std::string flipped = good;
  flipped[flipped.size() - 7] ^= 0x20;  // one bit of the object
  WriteFile(path, flipped);
  EXPECT_FALSE(cache->Find("key").has_value());
  WriteFile(path, "garbage");
  EXPECT_FALSE(cache->Find("key").has_value());
  EXPECT_EQ(cache->counters().rejected, 3);

  // An entry another host wrote (other CPU features), copied to this
  // host's name for the key.
  const std::string foreign_dir = FreshDir("foreign");
  auto foreign = OpenCache(foreign_dir, "cpu=haswell;features=-avx512f");
  foreign->Store("key", {"sym", object});
  fs::copy_file(foreign->PathFor("key"), path, fs::copy_options::overwrite_existing);
  EXPECT_FALSE(cache->Find("key").has_value());
  EXPECT_EQ(cache->counters().rejected, 4);

  // Replaced by the next store, then found again.
  cache->Store("key", {"sym", object});
  EXPECT_TRUE(cache->Find("key").has_value());
}

TEST(PersistentCodeCache, EvictsTheLeastRecentlyUsedOverItsCap) {
  const std::string dir = FreshDir("evict");
  // Room for about two 10 KB entries.
  auto cache = OpenCache(dir, "cpu=test", 25000);
  ASSERT_NE(cache, nullptr);
  const std::string object(10000, 'o');
  cache->Store("a", {"a", object});
  cache->Store("b", {"b", object});
  // Make "a" clearly the older one, then use it: "b" becomes the oldest.
  fs::last_write_time(cache->PathFor("a"), fs::file_time_type::clock::now() - std::chrono::hours(2));
  fs::last_write_time(cache->PathFor("b"), fs::file_time_type::clock::now() - std::chrono::hours(1));
  ASSERT_TRUE(cache->Find("a").has_value());  // refreshes a
  cache->Store("c", {"c", object});
  EXPECT_TRUE(fs::exists(cache->PathFor("a")));
  EXPECT_FALSE(fs::exists(cache->PathFor("b")));
  EXPECT_TRUE(fs::exists(cache->PathFor("c")));
}

TEST(PersistentCodeCache, StaleTemporaryFilesAreCleanedUp) {
  const std::string dir = FreshDir("stale_tmp");
  auto cache = OpenCache(dir, "cpu=test");
  ASSERT_NE(cache, nullptr);
  const std::string stale = cache->PathFor("x") + ".tmp.1234.deadbeef";
  const std::string fresh = cache->PathFor("y") + ".tmp.5678.cafe";
  WriteFile(stale, "half an entry");
  WriteFile(fresh, "being written");
  fs::last_write_time(stale, fs::file_time_type::clock::now() - std::chrono::hours(2));
  cache->Store("z", {"z", "object"});
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(fresh));
}

RegionBuilder ScaleTanh(const Dims& dims, float scale) {
  RegionBuilder rb;
  rb.region.id = 7;
  auto x = rb.Input("x", DType::kFloat32, dims);
  auto s = rb.Constant("scale", {}, {scale});
  rb.Output(rb.Node("Tanh", {rb.Node("Mul", {x, s}, "m")}, "y"));
  return rb;
}

std::unique_ptr<JitCompiler> CompilerWithCache(const std::string& dir) {
  JitOptions options;
  options.cache_dir = dir;
  auto compiler = JitCompiler::Create(options);
  if (!compiler) {
    ADD_FAILURE() << llvm::toString(compiler.takeError());
    return nullptr;
  }
  return std::move(*compiler);
}

// Two compilers, each with its own LLJIT and symbol table, as two processes
// would have: the second links the first's object and computes the same.
TEST(PersistentCodeCache, ASecondCompilerLinksInsteadOfCompiling) {
  const std::string dir = FreshDir("two_compilers");
  auto first = CompilerWithCache(dir);
  auto second = CompilerWithCache(dir);
  ASSERT_TRUE(first && second);
  RegionBuilder rb = ScaleTanh({4, 37}, 0.75f);
  auto compiled = rb.Compile(*first);
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  EXPECT_FALSE((*compiled)->from_disk_cache());
  EXPECT_EQ(first->persistent_cache()->counters().writes, 1);

  auto linked = rb.Compile(*second);
  ASSERT_TRUE(linked.ok()) << linked.status().ToString();
  EXPECT_TRUE((*linked)->from_disk_cache());
  EXPECT_EQ(second->persistent_cache()->counters().hits, 1);
  EXPECT_EQ(second->persistent_cache()->counters().writes, 0);

  std::vector<float> x(4 * 37);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.05f * static_cast<float>(i % 41) - 1.0f;
  std::vector<const void*> ins = {x.data(), nullptr};
  std::vector<float> y1(x.size(), -9.0f), y2(x.size(), -9.0f);
  void* outs1[] = {y1.data()};
  void* outs2[] = {y2.data()};
  (*compiled)->Run(ins.data(), outs1, 0, (*compiled)->num_rows());
  (*linked)->Run(ins.data(), outs2, 0, (*linked)->num_rows());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(y1[i], y2[i]) << i;
    EXPECT_NEAR(y1[i], std::tanh(0.75f * x[i]), 1e-5f) << i;
  }

  // Damaged on disk: a third compiler rejects it, compiles, and replaces it.
  for (const auto& item : fs::directory_iterator(dir)) {
    std::string bytes = ReadFile(item.path().string());
    bytes[bytes.size() / 2] ^= 0x01;
    WriteFile(item.path().string(), bytes);
  }
  auto third = CompilerWithCache(dir);
  auto recompiled = rb.Compile(*third);
  ASSERT_TRUE(recompiled.ok()) << recompiled.status().ToString();
  EXPECT_FALSE((*recompiled)->from_disk_cache());
  EXPECT_EQ(third->persistent_cache()->counters().rejected, 1);
  EXPECT_EQ(third->persistent_cache()->counters().writes, 1);
  auto fourth = CompilerWithCache(dir);
  auto relinked = rb.Compile(*fourth);
  ASSERT_TRUE(relinked.ok());
  EXPECT_TRUE((*relinked)->from_disk_cache());
}

}  // namespace
}  // namespace kiln::jit
