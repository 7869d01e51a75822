// Code sharing between regions whose IR is identical: one compile, one copy
// of machine code, freed with its last user; any difference in what reaches
// the IR (a constant, a shape, an op) means separate code.
#include "jit/code_cache.h"

#include <gtest/gtest.h>
#include <llvm/ExecutionEngine/Orc/Core.h>  // ResourceTracker, for JitCode
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "jit/compiled_region.h"
#include "jit/jit_compiler.h"
#include "jit/region_ops.h"
#include "test/jit/jit_test_util.h"

namespace kiln::jit {
namespace {

using testing::RegionBuilder;
using testing::SharedCompiler;

// x * scale + bias, Relu, with value names prefixed by `prefix`, as two
// layers of one model would name them.
RegionBuilder ScaleBiasRelu(const std::string& prefix, const Dims& dims, float scale, int region_id) {
  RegionBuilder rb;
  rb.region.id = region_id;
  auto x = rb.Input(prefix + "x", DType::kFloat32, dims);
  auto s = rb.Constant(prefix + "scale", {}, {scale});
  auto b = rb.Input(prefix + "bias", DType::kFloat32, {dims.back()});
  auto m = rb.Node("Mul", {x, s}, prefix + "m");
  auto a = rb.Node("Add", {m, b}, prefix + "a");
  rb.Output(rb.Node("Relu", {a}, prefix + "y"));
  return rb;
}

TEST(CodeCache, RegionsWithIdenticalIrShareOneCompile) {
  JitCompiler& jit = SharedCompiler();
  RegionBuilder layer0 = ScaleBiasRelu("layer0/", {8, 64}, 0.5f, 101);
  RegionBuilder layer1 = ScaleBiasRelu("layer1/", {8, 64}, 0.5f, 202);
  auto first = layer0.Compile(jit);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = layer1.Compile(jit);
  ASSERT_TRUE(second.ok()) << second.status().ToString();

  EXPECT_FALSE((*first)->reused_code());
  EXPECT_TRUE((*second)->reused_code());
  EXPECT_EQ((*second)->name(), (*first)->name());
  EXPECT_EQ((*second)->code_bytes(), (*first)->code_bytes());

  // The shared code computes the second region correctly.
  std::vector<float> x(8 * 64), bias(64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 13) - 6.0f;
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.25f * static_cast<float>(i % 5) - 0.5f;
  std::vector<const void*> ins = {x.data(), nullptr, bias.data()};
  std::vector<float> y(x.size(), -1.0f);
  void* outs[] = {y.data()};
  (*second)->Run(ins.data(), outs, 0, (*second)->num_rows());
  for (size_t i = 0; i < y.size(); ++i) {
    EXPECT_FLOAT_EQ(y[i], std::max(0.0f, x[i] * 0.5f + bias[i % 64])) << "element " << i;
  }

  // The code stays in the JIT while either region holds it.
  const std::string symbol = (*first)->name();
  first->reset();
  EXPECT_TRUE(jit.IsDefined(symbol));
  second->reset();
  EXPECT_FALSE(jit.IsDefined(symbol));

  // Once freed, the same IR compiles afresh.
  auto again = layer0.Compile(jit);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE((*again)->reused_code());
}

TEST(CodeCache, DifferentConstantsOrShapesGetTheirOwnCode) {
  JitCompiler& jit = SharedCompiler();
  auto base = ScaleBiasRelu("a/", {8, 64}, 0.5f, 1).Compile(jit);
  auto other_constant = ScaleBiasRelu("b/", {8, 64}, 0.75f, 2).Compile(jit);
  auto other_shape = ScaleBiasRelu("c/", {8, 128}, 0.5f, 3).Compile(jit);
  ASSERT_TRUE(base.ok() && other_constant.ok() && other_shape.ok());
  EXPECT_FALSE((*other_constant)->reused_code());
  EXPECT_FALSE((*other_shape)->reused_code());
  EXPECT_NE((*other_constant)->name(), (*base)->name());
  EXPECT_NE((*other_shape)->name(), (*base)->name());
}

// A module named `name` whose entry `name` stores `splat` (a vector
// constant with lane `odd_lane` set to `odd_value`) through its argument.
std::unique_ptr<llvm::Module> StoreConstantModule(llvm::LLVMContext& ctx, const std::string& name, float splat,
                                                  unsigned odd_lane, float odd_value) {
  auto module = std::make_unique<llvm::Module>(name, ctx);
  module->setSourceFileName(name);
  llvm::IRBuilder<> b(ctx);
  auto* fn = llvm::Function::Create(llvm::FunctionType::get(b.getVoidTy(), {b.getPtrTy()}, false),
                                    llvm::Function::ExternalLinkage, name, *module);
  b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", fn));
  std::vector<llvm::Constant*> lanes(16, llvm::ConstantFP::get(b.getFloatTy(), splat));
  lanes[odd_lane] = llvm::ConstantFP::get(b.getFloatTy(), odd_value);
  b.CreateStore(llvm::ConstantVector::get(lanes), fn->getArg(0));
  b.CreateRetVoid();
  return module;
}

TEST(CodeCache, ModuleKeyIgnoresOnlyTheRegionsOwnNames) {
  llvm::LLVMContext ctx_a, ctx_b, ctx_c;
  auto a = StoreConstantModule(ctx_a, "kiln_region1_1", 0.5f, 3, 0.25f);
  auto b = StoreConstantModule(ctx_b, "kiln_region7_2", 0.5f, 3, 0.25f);
  // One lane of one constant differs: different machine code.
  auto c = StoreConstantModule(ctx_c, "kiln_region9_3", 0.5f, 3, 0.25000003f);
  const std::string key_a = internal::ModuleCacheKey(*a, "kiln_region1_1");
  EXPECT_FALSE(key_a.empty());
  EXPECT_EQ(internal::ModuleCacheKey(*b, "kiln_region7_2"), key_a) << "same IR under other names";
  EXPECT_NE(internal::ModuleCacheKey(*c, "kiln_region9_3"), key_a) << "a constant differs";
  // The module is left as it was, ready to compile under its own names.
  EXPECT_EQ(a->getModuleIdentifier(), "kiln_region1_1");
  EXPECT_EQ(a->getSourceFileName(), "kiln_region1_1");
  EXPECT_NE(a->getFunction("kiln_region1_1"), nullptr);
  EXPECT_EQ(a->getFunction("entry"), nullptr);
  // The key does not depend on anything but the module: asked again, the
  // same bytes.
  EXPECT_EQ(internal::ModuleCacheKey(*a, "kiln_region1_1"), key_a);
}

TEST(CodeCache, InsertKeepsTheFirstLiveCodeAndForgetsFreedCode) {
  CodeCache cache;
  // Code objects without a JIT behind them: the cache only compares keys
  // and tracks lifetimes.
  auto make = [](const std::string& symbol) { return std::make_shared<const JitCode>(nullptr, nullptr, symbol, 0, 0); };
  std::shared_ptr<const JitCode> a = make("a");
  EXPECT_EQ(cache.Insert("key", a), a);
  std::shared_ptr<const JitCode> b = make("b");
  EXPECT_EQ(cache.Insert("key", b), a) << "a later compile of the same key gets the live code";
  EXPECT_EQ(cache.Find("key"), a);
  EXPECT_EQ(cache.Find("other"), nullptr);
  a.reset();
  EXPECT_EQ(cache.Find("key"), nullptr) << "the cache must not keep code alive";
  EXPECT_EQ(cache.Insert("key", b), b);

  // Many keys whose code is freed at once do not accumulate.
  for (int i = 0; i < 1000; ++i) cache.Insert("k" + std::to_string(i), make("x"));
  EXPECT_EQ(cache.live_entries(), 1u);
}

}  // namespace
}  // namespace kiln::jit
