// kiln's public API: load an ONNX model, create a session, run it.
//
//   auto model = kiln::Model::Load("model.onnx");            // StatusOr<shared_ptr<const Model>>
//   auto session = kiln::Session::Create(*model, options);   // StatusOr<unique_ptr<Session>>
//   auto outputs = (*session)->Run({{"input", tensor}});     // StatusOr<vector<NamedTensor>>
//
// Every call returns errors as values; none throws or aborts on bad input.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/export.h"
#include "kiln/sequence.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "kiln/version.h"

namespace kiln {

// A model input or output as the model declares it. A dim is -1 when it is
// not a fixed number; `dim_names` then holds its symbol ("batch") or "".
struct TensorInfo {
  std::string name;
  DType dtype = DType::kUndefined;
  bool rank_known = false;
  Dims dims;
  std::vector<std::string> dim_names;
  // An ONNX sequence of `dtype` tensors, passed and returned as a Tensor of
  // dtype kSequence (kiln/sequence.h); rank and dims then say nothing.
  bool is_sequence = false;
  // An ONNX optional: NoneOptional() is a valid value too.
  bool is_optional = false;
};

// kiln's compiled-in kernels need x86-64-v3 (AVX2, FMA, BMI2, F16C, ...).
// Returns Unsupported naming what this CPU lacks; Model::Load and
// Session::Create call it, and programs may call it before anything else.
// Safe to call on any x86-64 CPU.
KILN_API Status CheckHostCpu();

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// Which load-time graph rewrites run, like ONNX Runtime's optimisation
// levels (see graph/pipeline.cc for the passes and their order).
enum class GraphOptimization {
  // Dead-code elimination, shape propagation, constant folding and folding
  // batch norms into convolution weights. Every node left is one of the
  // model's ops and runs as its own kernel: the op-by-op baseline the JIT's
  // fusion is measured against, and a way to rule fused kernels out when an
  // output looks wrong.
  kBasic,
  // kBasic, then decomposed LayerNorm and GELU become single kernels, and
  // bias, activation and residual adds fold into the MatMul, Gemm and Conv
  // before them. The default.
  kAll,
};
KILN_API const char* GraphOptimizationName(GraphOptimization level);

// Whether convolutional sub-graphs run in NHWC (channels last), with
// transposes only at their edges, instead of ONNX's NCHW. Applies with
// GraphOptimization::kAll.
enum class ChannelsLast {
  // Where the host's convolution kernels prefer NHWC (oneDNN's AVX-512
  // kernels do; on AVX2 they use blocked layouts). The default.
  kAuto,
  kOff,
  kOn,
};

struct LoadOptions {
  GraphOptimization graph_optimization = GraphOptimization::kAll;
  ChannelsLast channels_last = ChannelsLast::kAuto;
};

// What the model file says about itself (ModelProto's fields).
struct ModelMetadata {
  std::string producer_name;     // "pytorch"
  std::string producer_version;  // "2.1.0"
  std::string domain;
  int64_t model_version = 0;
  std::string doc_string;
  std::string graph_name;
  // metadata_props (key, value), in file order.
  std::vector<std::pair<std::string, std::string>> metadata_props;
};

// A loaded, validated and optimised model. Immutable and shareable: many
// sessions (and threads) may use one Model at once.
class KILN_API Model {
 public:
  ~Model();

  // Loads an ONNX file. External data files are resolved relative to the
  // file's folder and must stay inside it.
  static StatusOr<std::shared_ptr<const Model>> Load(const std::string& path, const LoadOptions& options = {});
  // Loads an ONNX model from memory. `base_dir` is where external data is
  // looked up; empty forbids external data.
  static StatusOr<std::shared_ptr<const Model>> LoadFromBytes(const void* data, size_t size,
                                                              const std::string& base_dir = "",
                                                              const LoadOptions& options = {});

  const std::vector<TensorInfo>& inputs() const;
  const std::vector<TensorInfo>& outputs() const;
  // Opset of the default ONNX domain the model imports.
  int opset() const;
  const ModelMetadata& metadata() const;

  struct KILN_HIDDEN Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

enum class TierPolicy {
  kInterpreter,  // never compile
  kJit,          // compile every fusible region before the first timed run
  kAuto,         // interpret at once, compile hot regions in the background
};
KILN_API const char* TierPolicyName(TierPolicy policy);

// A cap on the threads that compute at once, shared by every session (and
// every thread calling Run) that is given it: ONNX Runtime's global thread
// pool, without the global. A run takes up to its session's
// intra_op_threads from the budget and waits while none is free. A run
// gets its whole team only when no other run is computing or waiting:
// under load, requests run side by side, a thread each (no OpenMP team to
// synchronise); when idle, one request gets the whole team for its
// latency.
class KILN_API ThreadBudget {
 public:
  // `threads` = 0: one per core.
  static std::shared_ptr<ThreadBudget> Create(int threads = 0);
  ~ThreadBudget();

  int threads() const;
  // Threads computing right now, and the most there have been at once.
  int in_use() const;
  int peak_in_use() const;

  struct KILN_HIDDEN Impl;
  Impl& impl() const { return *impl_; }

 private:
  explicit ThreadBudget(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct SessionOptions {
  // Intra-op threads for kernels (kiln's pool and oneDNN). 0 = one per core.
  int intra_op_threads = 0;
  // The budget runs take their threads from; share one across sessions to
  // cap a whole process. Null: the session makes its own of one thread per
  // core, so its concurrent runs never oversubscribe the cores.
  std::shared_ptr<ThreadBudget> thread_budget;
  TierPolicy tier = TierPolicy::kAuto;
  // JIT tier (ignored with TierPolicy::kInterpreter). A region's shape
  // signature is compiled after this many interpreted calls with it (kAuto;
  // kJit compiles at the first call).
  int jit_hot_threshold = 2;
  // Compiled shape signatures per region; further signatures stay
  // interpreted.
  int jit_max_specializations = 4;
  // Smallest region the JIT compiles (a single elementwise op is already
  // one vectorised pass in the interpreter). Tests set 1 to cover every op.
  int jit_min_region_nodes = 2;
  // Compile matrix products with a constant weight (MatMul, Gemm and their
  // fused epilogues) into GEMM kernels for this host's vector ISA, the
  // weight packed once per kernel. Off: they run on the interpreter's
  // packed GEMM.
  bool jit_compile_gemm = true;
  // Compile channels-last depthwise convolutions (see LoadOptions) with
  // their epilogue into code for this host's vector ISA, per input shape.
  // Off: they run on oneDNN.
  bool jit_compile_depthwise = true;
  // Compile attention (MatMul(Q, K^T), scale, mask add, Softmax, MatMul(., V)
  // with the head transposes) into one kernel with an online softmax, for
  // this host's vector ISA. Off: its nodes run on the interpreter's kernels
  // and row-reduction regions.
  bool jit_compile_attention = true;
  // Background compile threads (kAuto).
  int jit_compile_threads = 1;
  // Latency-aware compiles (kAuto): while every core is computing requests
  // (the thread budget's threads in use reach the core count), background
  // compiles take this share of one core, no more (they pause between LLVM
  // passes) and no less (they run at normal priority, so busy cores do not
  // starve them). With a core idle they compile freely. Higher: compiled
  // code serves sooner; lower: requests slow less while it compiles. In
  // (0, 1), clamped to at least 0.01; >= 1: compiles are never paced; <= 0:
  // no pacing, the compile thread runs at low priority (nice 10) and gets
  // what the kernel leaves it. Pauses are logged at debug level.
  double jit_compile_cpu_share = 0.25;
  // Time each new specialization against the interpreter on its
  // signature's first calls (alternating, best of 4 each) and drop it when
  // it is slower: a region stays compiled only where that pays. Tests that
  // need every region to run compiled turn this off.
  bool jit_keep_faster_tier = true;
  // Shadow verification: each new compiled version's first this many calls
  // run both tiers on the same inputs, serve the interpreter's outputs and
  // compare the two within a tolerance derived from the region's ops. On a
  // mismatch the code is unpublished (the region stays interpreted for
  // those shapes), logged and counted in RegionStats::verify_failures.
  // Compiled code serves requests only after passing. 0 turns it off.
  int jit_verify_calls = 1;
  // Bitwise tier equivalence: compiled code gives the interpreter's outputs
  // bit for bit. The JIT then computes each op as the interpreter's kernel
  // does (its approximations, its operation order, a fused multiply-add
  // only where the kernel has one; GEMMs sum in the interpreter's packed
  // GEMM's order) and leaves interpreted what it cannot reproduce exactly:
  // row reductions, convolutions, attention, GEMMs the interpreter does not
  // run on its packed GEMM, and elementwise ops whose kernel calls libm
  // functions with no exact vector form (Elu, Softplus, Pow other than x^1
  // and x^2).
  // Shadow verification (jit_verify_calls) then compares bits instead of
  // using a tolerance, and Session::Create waits for the interpreter's
  // background preparation (runs before it ends would compute convolutions
  // another way). See docs/ARCHITECTURE.md, "Bitwise tier equivalence".
  bool jit_bitwise_equivalent = false;
  // Break-even gate: a hot signature whose projected payback (projected
  // compile ms / projected saving per call, see docs/ARCHITECTURE.md
  // "Break-even") exceeds this many calls is not compiled; it stays
  // interpreted, logged and counted in RegionStats::skipped_for_payback.
  // 0: no limit (every hot signature compiles).
  int64_t jit_payback_horizon_calls = 0;
  // Write each compiled region's LLVM IR and assembly here (also
  // KILN_DUMP_IR).
  std::string jit_dump_dir;
  // A folder of compiled code shared by sessions and processes (created if
  // missing; also KILN_JIT_CACHE). A compile first looks there for an
  // object built from the same IR for the same CPU, kiln and LLVM, and
  // links it without optimising or generating code; what it compiles, it
  // writes there. Replicas may share one folder, even at once. Empty: off.
  std::string jit_cache_dir;
  // Most bytes the folder holds; the least recently used entries go first.
  int64_t jit_cache_max_bytes = int64_t{256} << 20;
  // Test hook: called before each region compile with the region id; an
  // error fails that compile as an LLVM error would. Leave empty.
  std::function<Status(int region_id)> jit_before_compile_hook;
  // Test hook: every module the JIT compiles has its floating-point adds
  // turned into subtracts before optimisation, so compiled code gives wrong
  // results (what shadow verification must catch). Leave false.
  bool jit_test_perturb_ir = false;
  // Test and embedding hook: called before each buffer a run allocates (an
  // output, or an intermediate buffer that has to grow) with its size in
  // bytes, from the thread calling Run, so it must be thread-safe when Run
  // is. An error fails that allocation: Run returns it (use
  // ResourceExhausted) and the session stays usable. Lets tests inject
  // allocation failures and embedders enforce a memory budget. Kernels'
  // internal scratch memory and JIT code are not covered. Leave empty.
  std::function<Status(size_t bytes)> before_allocate_hook;
  // spdlog level name ("trace", "debug", "info", "warn", "error", "off");
  // empty keeps KILN_LOG_LEVEL or the default ("warn").
  std::string log_level;
  // Record per-node call counts and time (a few clock reads per node).
  bool enable_profiling = false;
  // Record a Chrome trace: one slice per node or region run (named by tier)
  // and JIT compiles on their own track; see Session::WriteTrace.
  bool enable_tracing = false;
};

// A node's calls and time. A control-flow node's time includes its bodies',
// whose nodes have profiles of their own, each named by the body holding it.
struct NodeProfile {
  std::string node_name;
  std::string op_type;
  int64_t calls = 0;
  double total_ms = 0;
  // "" at the top level; else the body, as RegionStats::path names it
  // ("Loop 'outer'/body/If 'branch'/then_branch").
  std::string path;
};

// Whether compiling one version of a region has paid for itself: what the
// compile cost, what each compiled call saves (from the trial's timings,
// SessionOptions::jit_keep_faster_tier) and how many calls it has served.
struct BreakEven {
  std::string signature;  // the input shapes, or what a generic version covers
  double compile_ms = 0;
  // The trial timed both tiers on this signature (false: no trial, as for
  // generic elementwise code or with jit_keep_faster_tier off, or the trial
  // is still running); the fields below that depend on it are then 0 / -1.
  bool measured = false;
  double interpreted_ms_per_call = 0;  // the trial's median per tier
  double compiled_ms_per_call = 0;
  // interpreted - compiled; negative when compiled code is slower (it was
  // then dropped and the compile is lost time).
  double saving_ms_per_call = 0;
  // Compiled calls needed to win back compile_ms: ceil(compile_ms /
  // saving); -1 when it never pays back (no saving, or not measured).
  int64_t payback_calls = -1;
  int64_t compiled_calls = 0;  // calls this version has served
  // compiled_calls * saving - compile_ms; -compile_ms when not measured.
  double net_saved_ms = 0;
};

// A fused region (see `kiln info --regions`) and how it has run so far.
struct RegionStats {
  int id = 0;
  // "elementwise", "row_reduction", "gemm", "depthwise_conv", "attention" or "lstm"
  std::string kind;
  std::string description;  // ops and static shape
  // Empty for a region of the model's graph; for one inside a sub-graph,
  // the body it sits in: "Loop 'l'/body", "Loop 'outer'/body/If 'b'/then_branch".
  std::string path;
  std::string tier;  // "interp" until some signature is compiled, then "jit"
  int64_t interpreted_calls = 0;
  int64_t compiled_calls = 0;
  double interpreted_ms = 0;  // total wall time of the calls, per tier
  double compiled_ms = 0;
  int64_t deopts = 0;  // interpreted calls while code for other signatures existed
  int specializations = 0;
  int failed_compiles = 0;
  // Specializations dropped after their trial because the interpreter ran
  // their signature faster (SessionOptions::jit_keep_faster_tier).
  int declined = 0;
  // Compiled versions dropped because their outputs differed from the
  // interpreter's on a verification call (SessionOptions::jit_verify_calls).
  int verify_failures = 0;
  // Specializations whose code another region had already compiled from
  // identical IR (e.g. the same LayerNorm in every transformer layer): no
  // second compile, and their code counts in that region's code_bytes only.
  int reused_code = 0;
  double compile_ms = 0;  // total over specializations (reuses take ~1 ms)
  int64_t code_bytes = 0;
  // GEMM and LSTM regions: the weights packed into the generated kernels'
  // layout (one copy per specialization). GEMM, depthwise, attention and
  // LSTM regions: the floating-point operations of the compiled calls, and
  // the rate they ran at (compiled_flops / compiled_ms).
  int64_t packed_weight_bytes = 0;
  double compiled_flops = 0;
  double compiled_gflops = 0;
  // One entry per version compiled (kept after a drop: its compile was
  // spent), in compile order.
  std::vector<BreakEven> break_even;
  // Hot signatures left interpreted because their projected payback
  // exceeded SessionOptions::jit_payback_horizon_calls.
  int skipped_for_payback = 0;
};

struct SessionStats {
  // Sum of the memory plan's buffer sizes for the largest run so far: what
  // the intermediates of one run need at peak.
  int64_t peak_planned_bytes = 0;
  // Bytes the intermediates would need without buffer reuse.
  int64_t unplanned_bytes = 0;
  // Memory of graph outputs the caller has released, kept for later runs'
  // outputs (at most two generations of outputs per run that can be in
  // flight at once), over the runs not in progress when stats() is called.
  // Not part of peak_planned_bytes.
  int64_t pooled_output_bytes = 0;
  int64_t runs = 0;
  std::vector<NodeProfile> nodes;    // in execution order; empty without profiling
  std::vector<RegionStats> regions;  // empty with TierPolicy::kInterpreter
  // The persistent code cache (SessionOptions::jit_cache_dir), over this
  // session's compiles: code linked from it, compiles it did not have, and
  // entries found damaged or built elsewhere (ignored and replaced).
  int64_t jit_cache_hits = 0;
  int64_t jit_cache_misses = 0;
  int64_t jit_cache_rejected = 0;
};

// Per-call options of Session::Run, like ONNX Runtime's RunOptions and
// IoBinding.
struct RunOptions {
  using Clock = std::chrono::steady_clock;
  // A run still going at this time stops between two kernels (or compiled
  // regions) and returns kDeadlineExceeded. Kernels are not interrupted, so
  // it stops within one kernel's time.
  Clock::time_point deadline = Clock::time_point::max();
  // When another thread sets it, the run stops at the next check (as for the
  // deadline) and returns kCancelled. Owned by the caller; must outlive Run.
  const std::atomic<bool>* cancel = nullptr;
  // The outputs to compute, by name, in the order Run returns them. Empty:
  // all, in the model's order. Nodes that none of them needs do not run.
  std::vector<std::string> output_names;
  // Caller-owned tensors (Tensor::View over the caller's memory) that
  // outputs are written into, matched by name. dtype and shape must be what
  // the run produces, or Run fails before returning anything. Run returns
  // them (still views) in their place among the outputs.
  std::vector<NamedTensor> bound_outputs;
  // Names the run in the trace (SessionOptions::enable_tracing).
  std::string tag;

  // A deadline `ms` milliseconds from now.
  static Clock::time_point DeadlineIn(double ms) {
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(ms));
  }
};

class KILN_API Session {
 public:
  ~Session();

  // Builds kernels for every node. Fails, listing them, when the model uses
  // ops kiln does not support.
  static StatusOr<std::unique_ptr<Session>> Create(std::shared_ptr<const Model> model,
                                                   const SessionOptions& options = {});

  // Runs the model. Inputs are matched by name, each checked (dtype, rank,
  // fixed dims) before anything runs; all are required. Inputs may be views
  // over caller memory: they are read, never written, and not kept after
  // Run returns. Returns the outputs in the model's order; they own their
  // memory. Thread-safe: many threads may call Run on one session.
  StatusOr<std::vector<NamedTensor>> Run(const std::vector<NamedTensor>& inputs) const;
  StatusOr<std::vector<NamedTensor>> Run(const std::vector<NamedTensor>& inputs, const RunOptions& options) const;

  // Writes the trace recorded so far as Chrome trace JSON (open it in
  // Perfetto). Fails when tracing is off or the file cannot be written.
  Status WriteTrace(const std::string& path) const;

  // Blocks until no JIT compile is queued or running (benchmarks, tests).
  void WaitForCompiles() const;

  // Compiles ahead of traffic, so that the first requests run at compiled
  // speed: for each set of input shapes (input name -> dims; inputs with
  // fixed dims may be left out), runs the model on zero-filled inputs until
  // the JIT has compiled what those shapes make hot and finished its
  // verification and trial calls. Returns after `timeout` at the latest
  // (kDeadlineExceeded; what compiled stays compiled). With
  // TierPolicy::kInterpreter there is nothing to do. Fails naming the input
  // when a shape is missing, unknown or contradicts the model.
  Status WarmUp(const std::vector<std::map<std::string, Dims>>& shapes,
                std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;

  const Model& model() const;
  const SessionOptions& options() const;
  SessionStats stats() const;

  struct KILN_HIDDEN Impl;

 private:
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
