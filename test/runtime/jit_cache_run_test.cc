// The persistent code cache through the public API: a session that finds
// a folder filled by an earlier session (standing in for an earlier process
// or another replica) links its code instead of compiling, computes the same
// outputs, and treats damaged entries as misses.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "kiln/session.h"
#include "test/runtime/mlp_model_util.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::MlpInput;
using testing::MlpModel;

struct Result {
  std::vector<float> y;
  SessionStats stats;
};

Result RunWithCache(const std::shared_ptr<const Model>& model, const std::string& dir) {
  SessionOptions options;
  options.tier = TierPolicy::kJit;  // compile at the first call
  options.jit_keep_faster_tier = false;
  options.jit_cache_dir = dir;
  auto session = Session::Create(model, options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  Result result;
  if (!session.ok()) return result;
  const Tensor x = MlpInput();
  for (int run = 0; run < 3; ++run) {
    auto out = (*session)->Run({{"x", x}});
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    if (!out.ok()) return result;
    const Tensor& y = (*out)[0].tensor;
    result.y.assign(y.data<float>(), y.data<float>() + y.num_elements());
  }
  result.stats = (*session)->stats();
  return result;
}

std::vector<float> Interpreted(const std::shared_ptr<const Model>& model) {
  SessionOptions options;
  options.tier = TierPolicy::kInterpreter;
  auto session = Session::Create(model, options);
  auto out = (*session)->Run({{"x", MlpInput()}});
  const Tensor& y = (*out)[0].tensor;
  return std::vector<float>(y.data<float>(), y.data<float>() + y.num_elements());
}

int64_t CompiledCalls(const SessionStats& stats) {
  int64_t calls = 0;
  for (const RegionStats& r : stats.regions) calls += r.compiled_calls;
  return calls;
}

TEST(JitCacheRun, ASecondSessionLinksWhatTheFirstCompiled) {
  const std::string dir = ::testing::TempDir() + "/kiln_jit_cache_run";
  fs::remove_all(dir);
  auto model = MlpModel();
  ASSERT_NE(model, nullptr);
  const Result cold = RunWithCache(model, dir);
  ASSERT_EQ(cold.stats.regions.size(), 2u);
  EXPECT_EQ(cold.stats.jit_cache_hits, 0);
  EXPECT_EQ(cold.stats.jit_cache_misses, 2);
  EXPECT_GT(CompiledCalls(cold.stats), 0);

  const Result warm = RunWithCache(model, dir);
  EXPECT_EQ(warm.stats.jit_cache_hits, 2);
  EXPECT_EQ(warm.stats.jit_cache_misses, 0);
  EXPECT_EQ(warm.stats.jit_cache_rejected, 0);
  EXPECT_GT(CompiledCalls(warm.stats), 0);
  // The same machine code: the same bits.
  EXPECT_EQ(warm.y, cold.y);
  const std::vector<float> reference = Interpreted(model);
  ASSERT_EQ(warm.y.size(), reference.size());
  for (size_t i = 0; i < reference.size(); ++i) EXPECT_NEAR(warm.y[i], reference[i], 1e-5f) << i;
}

TEST(JitCacheRun, DamagedEntriesAreRecompiledNeverLinked) {
  const std::string dir = ::testing::TempDir() + "/kiln_jit_cache_damaged";
  fs::remove_all(dir);
  auto model = MlpModel();
  ASSERT_NE(model, nullptr);
  const Result cold = RunWithCache(model, dir);
  ASSERT_EQ(cold.stats.jit_cache_misses, 2);
  // One entry truncated, the other with one bit of its code flipped.
  int damaged = 0;
  for (const auto& item : fs::directory_iterator(dir)) {
    std::ifstream in(item.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    if (damaged++ == 0) {
      bytes.resize(bytes.size() - 64);
    } else {
      bytes[bytes.size() - 200] ^= 0x10;
    }
    std::ofstream(item.path(), std::ios::binary | std::ios::trunc) << bytes;
  }
  ASSERT_EQ(damaged, 2);
  const Result after = RunWithCache(model, dir);
  EXPECT_EQ(after.stats.jit_cache_rejected, 2);
  EXPECT_EQ(after.stats.jit_cache_hits, 0);
  EXPECT_EQ(after.y, cold.y);
  // Replaced: the next session links both.
  const Result again = RunWithCache(model, dir);
  EXPECT_EQ(again.stats.jit_cache_hits, 2);
  EXPECT_EQ(again.y, cold.y);
}

TEST(JitCacheRun, AFolderThatCannotBeCreatedOnlyTurnsTheCacheOff) {
  auto model = MlpModel();
  ASSERT_NE(model, nullptr);
  const Result result = RunWithCache(model, "/proc/kiln_cannot_create_this");
  EXPECT_GT(CompiledCalls(result.stats), 0);
  EXPECT_EQ(result.stats.jit_cache_hits + result.stats.jit_cache_misses, 0);
  EXPECT_EQ(result.y.size(), 16u * 48u);
}

}  // namespace
}  // namespace kiln
