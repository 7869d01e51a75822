// The JIT itself: IR/assembly dumps with vector code, ownership of compiled
// code (destroying a region removes it), concurrent compiles and runs.
#include "jit/jit_compiler.h"

#include <gtest/gtest.h>
#include <llvm/Object/ObjectFile.h>
#include <llvm/Support/MemoryBuffer.h>
#include <spdlog/sinks/ostream_sink.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "graph/log.h"
#include "jit/codegen_target.h"
#include "test/jit/jit_test_util.h"

namespace kiln::jit {
namespace {

using testing::RegionBuilder;

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

RegionBuilder GeluBiasRegion(int64_t n, int64_t c) {
  RegionBuilder rb;
  auto x = rb.Input("x", DType::kFloat32, {n, c});
  auto b = rb.Input("b", DType::kFloat32, {c});
  auto s = rb.Node("Add", {x, b}, "s");
  rb.Output(rb.Node("Gelu", {s}, "y"));
  return rb;
}

TEST(JitCompiler, DescribesTheHost) {
  JitCompiler& jit = testing::SharedCompiler();
  std::printf("[host] triple=%s cpu=%s f32 lanes=%d\n", jit.target_triple().c_str(), jit.cpu_name().c_str(),
              jit.f32_vector_lanes());
  EXPECT_FALSE(jit.cpu_name().empty());
  EXPECT_NE(jit.cpu_name(), "generic");
  EXPECT_GE(jit.f32_vector_lanes(), 4);
  const bool has_avx512 = jit.cpu_features().find("+avx512f") != std::string::npos;
  // Two registers per vector: 2 x 16 lanes with AVX-512, 2 x 8 with AVX.
  EXPECT_EQ(jit.f32_vector_lanes() == 32, has_avx512);
  // The vector unit found once at creation is the one a TargetMachine for
  // the same CPU and features describes (what the generators asked a fresh
  // TargetMachine for on every compile before).
  auto tm = internal::MakeTargetMachine(jit.target_triple(), jit.cpu_name(), jit.cpu_features());
  ASSERT_TRUE(static_cast<bool>(tm)) << llvm::toString(tm.takeError());
  const internal::GemmIsa isa = internal::IsaOf(**tm);
  EXPECT_EQ(jit.isa_name(), isa.name);
  EXPECT_EQ(jit.isa_register_lanes(), isa.lanes);
  EXPECT_EQ(jit.isa_registers(), isa.registers);
  EXPECT_EQ(jit.isa_name() == "avx512", has_avx512);
  EXPECT_EQ(2 * jit.isa_register_lanes(), jit.f32_vector_lanes());
}

TEST(JitCompiler, DumpsOptimisedVectorIrAndAssembly) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir = std::filesystem::path(tmp != nullptr ? tmp : "/tmp") / "kiln_jit_dump";
  std::filesystem::remove_all(dir);
  JitOptions options;
  options.dump_dir = dir.string();
  StatusOr<std::unique_ptr<JitCompiler>> jit = JitCompiler::CreateOrStatus(options);
  ASSERT_TRUE(jit.ok()) << jit.status().ToString();

  RegionBuilder rb = GeluBiasRegion(4, 100);
  auto compiled = rb.Compile(**jit);
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  const std::string name = (*compiled)->name();
  const std::string ir = ReadFile(dir / (name + ".ll"));
  const std::string asm_text = ReadFile(dir / (name + ".s"));
  ASSERT_FALSE(ir.empty());
  ASSERT_FALSE(asm_text.empty());
  const int lanes = (*jit)->f32_vector_lanes();
  const std::string vec_type = "<" + std::to_string(lanes) + " x float>";
  EXPECT_NE(ir.find(vec_type), std::string::npos) << "no " << vec_type << " in the optimised IR";
  // No libm calls: everything is inline arithmetic.
  EXPECT_EQ(ir.find("@erff"), std::string::npos);
  EXPECT_EQ(ir.find("@expf"), std::string::npos);
  EXPECT_EQ(asm_text.find("call"), std::string::npos);
  // Packed single-precision arithmetic on ymm (AVX) or zmm (AVX-512).
  const bool avx512 = lanes == 32;
  const char* reg = avx512 ? "zmm" : "ymm";
  EXPECT_NE(asm_text.find(reg), std::string::npos);
  EXPECT_NE(asm_text.find("ps\t"), std::string::npos);
  // The tail uses masked vector memory operations.
  EXPECT_NE(asm_text.find(avx512 ? "{%k" : "vmaskmovps"), std::string::npos);
  std::printf("[dump] %s: %zu bytes of IR, %zu bytes of assembly, %zu code bytes, %.2f ms\n", name.c_str(), ir.size(),
              asm_text.size(), (*compiled)->code_bytes(), (*compiled)->compile_ms());
  EXPECT_GT((*compiled)->code_bytes(), 0u);
}

TEST(JitCompiler, DestroyingARegionRemovesItsCode) {
  // Capture kiln's log to see that removal reported no error.
  std::ostringstream log_text;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text);
  Log().sinks().push_back(sink);

  JitCompiler& jit = testing::SharedCompiler();
  std::string name;
  {
    RegionBuilder rb = GeluBiasRegion(2, 33);
    auto compiled = rb.Compile();
    ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
    name = (*compiled)->name();
    EXPECT_TRUE(jit.IsDefined(name));
  }
  EXPECT_FALSE(jit.IsDefined(name));
  Log().sinks().pop_back();
  EXPECT_EQ(log_text.str().find("failed"), std::string::npos) << log_text.str();
}

TEST(JitCompiler, LogsWhereACompilesTimeWent) {
  std::ostringstream log_text;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text);
  const spdlog::level::level_enum level = Log().level();
  Log().set_level(spdlog::level::debug);
  Log().sinks().push_back(sink);
  // A JIT of its own: the shared one may hold this IR's code already.
  auto jit = JitCompiler::CreateOrStatus();
  ASSERT_TRUE(jit.ok()) << jit.status().ToString();
  RegionBuilder rb = GeluBiasRegion(3, 21);
  auto first = rb.Compile(**jit);
  auto again = rb.Compile(**jit);
  Log().sinks().pop_back();
  Log().set_level(level);
  ASSERT_TRUE(first.ok() && again.ok());
  const std::string text = log_text.str();
  const std::string name = (*first)->name();
  // The compile: every phase, in thread CPU time.
  EXPECT_NE(text.find(name + " took "), std::string::npos) << text;
  EXPECT_NE(text.find("of thread CPU: verify and optimise "), std::string::npos) << text;
  EXPECT_NE(text.find(", code generation "), std::string::npos) << text;
  // The second region: emitted and keyed, then the first one's code.
  EXPECT_NE(text.find("cache key"), std::string::npos) << text;
  EXPECT_NE(text.find("reusing " + name), std::string::npos) << text;
}

// The executable bytes of the objects in `dir` (a persistent code cache
// folder).
std::string TextOfCachedObject(const std::filesystem::path& dir) {
  std::string text;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string file = ReadFile(entry.path());
    const size_t elf = file.find(
        "\x7f"
        "ELF");
    if (elf == std::string::npos) continue;
    // A copy: ELF parsing wants the object aligned, not at the header's end.
    const std::unique_ptr<llvm::MemoryBuffer> buffer =
        llvm::MemoryBuffer::getMemBufferCopy(llvm::StringRef(file).substr(elf), entry.path().string());
    auto object = llvm::object::ObjectFile::createObjectFile(buffer->getMemBufferRef());
    if (!object) {
      llvm::consumeError(object.takeError());
      continue;
    }
    for (const llvm::object::SectionRef& section : (*object)->sections()) {
      if (!section.isText()) continue;
      llvm::Expected<llvm::StringRef> contents = section.getContents();
      if (contents) text += contents->str();
      if (!contents) llvm::consumeError(contents.takeError());
    }
  }
  return text;
}

TEST(JitCompiler, ReusedTargetMachinesGenerateTheSameCode) {
  // The same region compiled by a fresh JIT (on new TargetMachines) and by
  // one whose TargetMachines already compiled another module: the same
  // machine code. Each JIT keeps its objects in a folder of its own.
  const auto root = std::filesystem::temp_directory_path() / ("kiln_tm_reuse_" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  JitOptions fresh_options, reused_options;
  fresh_options.cache_dir = (root / "fresh").string();
  reused_options.cache_dir = (root / "reused").string();
  auto fresh = JitCompiler::CreateOrStatus(fresh_options);
  auto reused = JitCompiler::CreateOrStatus(reused_options);
  ASSERT_TRUE(fresh.ok() && reused.ok());
  auto warm_up = GeluBiasRegion(4, 40).Compile(**reused);
  ASSERT_TRUE(warm_up.ok()) << warm_up.status().ToString();
  std::filesystem::remove_all(root / "reused");
  std::filesystem::create_directories(root / "reused");
  auto a = GeluBiasRegion(3, 24).Compile(**fresh);
  auto b = GeluBiasRegion(3, 24).Compile(**reused);
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string fresh_text = TextOfCachedObject(root / "fresh");
  EXPECT_FALSE(fresh_text.empty());
  EXPECT_EQ(TextOfCachedObject(root / "reused"), fresh_text);
  std::filesystem::remove_all(root);
}

TEST(JitCompiler, RegionsOutliveTheCompiler) {
  std::unique_ptr<CompiledRegion> region;
  {
    auto jit = JitCompiler::CreateOrStatus();
    ASSERT_TRUE(jit.ok());
    RegionBuilder rb = GeluBiasRegion(2, 10);
    auto compiled = rb.Compile(**jit);
    ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
    region = std::move(*compiled);
  }
  std::vector<float> x(20, 1.f), b(10, 0.f);
  auto outs = testing::Run(*region, {x.data(), b.data()}, {false}, 20);
  EXPECT_NEAR(outs[0].at(0), 0.8413447, 1e-6);
  region.reset();  // removes the code from the still-alive session
}

// ORC starts no threads: a compile's optimisation, code generation and
// linking all run on the thread that called Compile(), so nothing of ORC's
// still holds the module's ResourceTracker once Compile() returns (see the
// dispatcher chosen in JitCompiler::Create). The IR hook runs inside the
// materialization, so the thread it sees is the one ORC materializes on.
TEST(JitCompiler, CompileRunsEntirelyOnTheCallingThread) {
  std::vector<std::thread::id> materialized_on;
  std::mutex mu;
  JitOptions options;
  options.rewrite_ir = [&](llvm::Module&) {
    std::lock_guard<std::mutex> lock(mu);
    materialized_on.push_back(std::this_thread::get_id());
  };
  StatusOr<std::unique_ptr<JitCompiler>> jit = JitCompiler::CreateOrStatus(options);
  ASSERT_TRUE(jit.ok()) << jit.status().ToString();
  std::thread::id compile_thread;
  StatusOr<std::unique_ptr<CompiledRegion>> compiled = Unsupported("not run");
  std::thread t([&] {
    compile_thread = std::this_thread::get_id();
    compiled = GeluBiasRegion(3, 40).Compile(**jit);
  });
  t.join();
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  ASSERT_EQ(materialized_on.size(), 1u);
  EXPECT_EQ(materialized_on[0], compile_thread);
}

TEST(JitCompiler, ConcurrentCompilesAndRuns) {
  // Two threads compile different regions at the same time, then each
  // region runs from two threads on halves of its rows.
  RegionBuilder gelu = GeluBiasRegion(64, 200);
  RegionBuilder tanh_region;
  {
    auto x = tanh_region.Input("x", DType::kFloat32, {64, 200});
    auto t = tanh_region.Node("Tanh", {x}, "t");
    auto one = tanh_region.Constant("one", {}, {1.f});
    tanh_region.Output(tanh_region.Node("Add", {t, one}, "y"));
  }
  StatusOr<std::unique_ptr<CompiledRegion>> a = Unsupported("not run");
  StatusOr<std::unique_ptr<CompiledRegion>> b = Unsupported("not run");
  std::thread ta([&] { a = gelu.Compile(); });
  std::thread tb([&] { b = tanh_region.Compile(); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  std::printf("[compile] concurrent: %s %.2f ms, %s %.2f ms\n", (*a)->name().c_str(), (*a)->compile_ms(),
              (*b)->name().c_str(), (*b)->compile_ms());

  std::vector<float> x = testing::Linspace(-4, 4, 64 * 200);
  std::vector<float> bias = testing::Linspace(-1, 1, 200);
  testing::OutputBuffer out_a(false, 64 * 200), out_b(false, 64 * 200);
  const void* in_a[] = {x.data(), bias.data()};
  const void* in_b[] = {x.data(), nullptr};
  void* outs_a[] = {out_a.data()};
  void* outs_b[] = {out_b.data()};
  auto half = [](const CompiledRegion& r, const void* const* in, void* const* out, int which) {
    const int64_t mid = r.num_rows() / 2;
    r.Run(in, out, which == 0 ? 0 : mid, which == 0 ? mid : r.num_rows());
  };
  std::thread r1([&] { half(**a, in_a, outs_a, 0); });
  std::thread r2([&] { half(**a, in_a, outs_a, 1); });
  std::thread r3([&] { half(**b, in_b, outs_b, 0); });
  std::thread r4([&] { half(**b, in_b, outs_b, 1); });
  r1.join();
  r2.join();
  r3.join();
  r4.join();
  EXPECT_TRUE(out_a.GuardsIntact());
  EXPECT_TRUE(out_b.GuardsIntact());
  for (int64_t i = 0; i < 64 * 200; ++i) {
    const double s =
        static_cast<double>(static_cast<float>(x[static_cast<size_t>(i)] + bias[static_cast<size_t>(i % 200)]));
    const double want_a = 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)));
    const double want_b = std::tanh(static_cast<double>(x[static_cast<size_t>(i)])) + 1;
    // GELU's negative tail is 0.5 x (1 + erf(x / sqrt 2)), a cancellation:
    // erf's absolute error (< 4e-7, see kernels/fast_math.h) times 0.5|x|.
    ASSERT_TRUE(testing::IsClose(out_a.at(i), want_a, 1e-5, 1.2e-6)) << i << ": " << out_a.at(i) << " vs " << want_a;
    // tanh(x) + 1 cancels for x near -4: absolute tolerance of a float.
    ASSERT_TRUE(testing::IsClose(out_b.at(i), want_b, 1e-5, 2e-7)) << i << ": " << out_b.at(i) << " vs " << want_b;
  }
}

}  // namespace
}  // namespace kiln::jit
