// JIT memory is never writable and executable at once: after compiling (and
// while the code is live), no mapping of the process is both.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "test/jit/jit_test_util.h"

namespace kiln::jit {
namespace {

using testing::RegionBuilder;

// Mappings whose permissions include both 'w' and 'x'.
std::vector<std::string> WritableExecutableMappings() {
  std::vector<std::string> bad;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    // "start-end perms offset dev inode path"; perms is e.g. "r-xp".
    const size_t space = line.find(' ');
    if (space == std::string::npos || space + 4 >= line.size()) continue;
    const std::string perms = line.substr(space + 1, 4);
    if (perms[1] == 'w' && perms[2] == 'x') bad.push_back(line);
  }
  return bad;
}

TEST(JitMemory, NoMappingIsWritableAndExecutable) {
  std::vector<std::unique_ptr<CompiledRegion>> live;
  for (int i = 0; i < 4; ++i) {
    RegionBuilder rb;
    auto x = rb.Input("x", DType::kFloat32, {4, 256});
    auto s = rb.Node("Sigmoid", {x}, "s");
    rb.Output(rb.Node("Mul", {x, s}, "y"));
    auto compiled = rb.Compile();
    ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
    std::vector<float> in(4 * 256, 0.5f), out(4 * 256, 0.f);
    const void* ins[] = {in.data()};
    void* outs[] = {out.data()};
    (*compiled)->Run(ins, outs, 0, (*compiled)->num_rows());
    EXPECT_NEAR(out[0], 0.5f / (1.f + std::exp(-0.5f)), 1e-6f);
    live.push_back(std::move(compiled).value());
  }
  const auto bad = WritableExecutableMappings();
  EXPECT_TRUE(bad.empty()) << bad.size() << " W+X mappings, first: " << (bad.empty() ? "" : bad.front());
}

}  // namespace
}  // namespace kiln::jit
