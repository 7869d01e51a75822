#include "runtime/lazy_jit_compiler.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace kiln::runtime {
namespace {

TEST(LazyJitCompilerTest, NothingIsBuiltBeforeTheFirstGet) {
  LazyJitCompiler lazy(jit::JitOptions{});
  EXPECT_EQ(lazy.IfBuilt(), nullptr);
  StatusOr<jit::JitCompiler*> compiler = lazy.Get();
  ASSERT_TRUE(compiler.ok()) << compiler.status().ToString();
  ASSERT_NE(*compiler, nullptr);
  EXPECT_EQ(lazy.IfBuilt(), *compiler);
  EXPECT_FALSE((*compiler)->cpu_name().empty());
}

TEST(LazyJitCompilerTest, EveryCallerGetsTheSameCompiler) {
  LazyJitCompiler lazy(jit::JitOptions{});
  constexpr int kThreads = 4;
  std::vector<jit::JitCompiler*> seen(kThreads, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&lazy, &seen, t] {
      StatusOr<jit::JitCompiler*> compiler = lazy.Get();
      if (compiler.ok()) seen[static_cast<size_t>(t)] = *compiler;
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_NE(seen[0], nullptr);
  for (jit::JitCompiler* compiler : seen) EXPECT_EQ(compiler, seen[0]);
  EXPECT_EQ(lazy.IfBuilt(), seen[0]);
}

}  // namespace
}  // namespace kiln::runtime
