// An ONNX LSTM (default activations, no peepholes, no clip, layout 0) with
// constant weights, compiled for the host's vector ISA and one (seq, batch)
// shape.
//
// Each direction is two pieces of code:
// - the input projection of every step at once, X [seq * batch, input] x
//   W^T + (Wb + Rb), a GEMM (gemm_codegen.h) whose output holds the gate
//   pre-activations [seq, batch, 4 * hidden] in ONNX's gate order (i, o, f,
//   c);
// - the recurrence: per step, h_{t-1} x R^T is added to that step's rows
//   and the cell is applied, all in registers. R is packed on the compiling
//   thread into gate-interleaved panels: for `lanes` hidden units and each
//   k, the four gates' weights are consecutive, so one register tile holds
//   the four pre-activations of the same hidden units for a few batch rows,
//   and the cell (three sigmoids, two tanh) runs on the tile as soon as its
//   dot products are done. h_t is written straight into its slot of Y (or a
//   work buffer), where the next step reads it; c stays in one buffer,
//   updated in place. Odd steps walk R's panels backwards, so the panels a
//   step used last, still in cache, are the next step's first.
//
// Neither piece bakes a weight: the packed R and the GEMM's packed W are
// passed to the code at run time, so the code depends on the shape only
// (and is shared through the CodeCache and the persistent code cache).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "jit/gemm_codegen.h"
#include "jit/jit_compiler.h"
#include "kiln/status.h"

namespace kiln::jit {

struct LstmProblem {
  int64_t seq = 0;     // steps
  int64_t batch = 0;   // rows per step
  int64_t input = 0;   // X's last dim
  int64_t hidden = 0;  // hidden_size
  // 1 (forward or reverse, see `reverse`) or 2 (bidirectional: direction 0
  // forward, direction 1 reverse).
  int num_directions = 1;
  bool reverse = false;
};

// Replaces the recurrence's heuristics (0 keeps them): for tests of the
// row remainders and for tuning.
struct LstmTuning {
  int mr = 0;  // batch rows per register tile
};

// A compiled LSTM: the code and the packed weights, freed together.
//
// Concurrency: Run* may be called from any number of threads at once on
// different Buffers (and, for one Buffers, as the methods say). The object
// must outlive every call.
class CompiledLstm {
 public:
  // One call's memory. Dense row-major float32, ONNX's shapes:
  //   x          [seq, batch, input]
  //   initial_h  [dirs, batch, hidden] or null (zeros)
  //   initial_c  [dirs, batch, hidden] or null (zeros)
  //   y          [seq, dirs, batch, hidden] or null (not wanted)
  //   y_h, y_c   [dirs, batch, hidden] or null (not wanted)
  //   work       work_floats() floats, the caller's, uninitialised
  // Outputs must not overlap inputs or each other.
  struct Buffers {
    const float* x = nullptr;
    const float* initial_h = nullptr;
    const float* initial_c = nullptr;
    float* y = nullptr;
    float* y_h = nullptr;
    float* y_c = nullptr;
    float* work = nullptr;
  };

  ~CompiledLstm();
  CompiledLstm(const CompiledLstm&) = delete;
  CompiledLstm& operator=(const CompiledLstm&) = delete;

  const LstmProblem& problem() const { return problem_; }
  size_t work_floats() const;

  // The whole LSTM on the calling thread.
  void Run(const Buffers& buffers) const;
  // The same in pieces, for callers that spread the work over threads:
  // every projection tile of a direction (any split of
  // [0, projection_tiles()), from any threads) before that direction's
  // recurrence (one thread per direction; directions are independent).
  int64_t projection_tiles() const;
  void RunProjection(const Buffers& buffers, int direction, int64_t tile_begin, int64_t tile_end) const;
  void RunRecurrence(const Buffers& buffers, int direction) const;

  // One direction's recurrence on two threads: each step's hidden units in
  // two halves of the panels, worker w preferring half w (so each core's
  // cache keeps its half of R), taking the other half of a step when it is
  // still unclaimed. A worker waits only for halves another has claimed and
  // is computing, so any number of calls of RecurrenceWorker, on any
  // threads in any order (one thread running both workers included),
  // complete the recurrence. Between BeginRecurrence and EndRecurrence
  // (the initial and final states), on a fresh SharedRecurrence per call.
  struct SharedRecurrence {
    std::atomic<int64_t> claimed[2] = {0, 0};  // per half, the first step not yet claimed
    std::atomic<int64_t> finished{0};          // halves done, over all steps
  };
  // False when there is one panel only: nothing to split.
  bool splits_recurrence() const { return panels_ >= 2; }
  void BeginRecurrence(const Buffers& buffers, int direction) const;
  void RecurrenceWorker(const Buffers& buffers, int direction, SharedRecurrence& shared, int worker) const;
  void EndRecurrence(const Buffers& buffers, int direction) const;

  // "avx512 4x16": the ISA and the recurrence's register tile (rows x
  // hidden units).
  std::string label() const;
  size_t code_bytes() const;
  size_t packed_weight_bytes() const;
  double compile_ms() const { return compile_ms_; }
  bool reused_code() const { return reused_code_; }
  bool from_disk_cache() const { return from_disk_cache_; }
  // Floating-point operations of one Run.
  double flops() const;

 private:
  friend StatusOr<std::unique_ptr<CompiledLstm>> CompileLstm(JitCompiler&, const LstmProblem&, const float*,
                                                             const float*, const float*, const LstmTuning&);
  struct Direction;
  CompiledLstm() = default;

  float* Projection(const Buffers& buffers, int direction) const;
  // Where one direction's recurrence keeps its state in `buffers`.
  struct State {
    float* projection = nullptr;
    float* c = nullptr;
    const float* h0 = nullptr;
    float* h = nullptr;  // h_t at h + t * h_step
    int64_t h_step = 0;
    bool reverse = false;
  };
  State StateOf(const Buffers& buffers, int direction) const;
  // The steps [step_begin, step_end) in processing order, the panels
  // [panel_begin, panel_end) of each.
  void RecurrenceSteps(const Buffers& buffers, int direction, int64_t step_begin, int64_t step_end, int64_t panel_begin,
                       int64_t panel_end) const;

  LstmProblem problem_;
  std::string isa_;
  int lanes_ = 0;
  int mr_ = 0;
  int64_t panels_ = 0;
  std::shared_ptr<const JitCode> steps_code_;
  void (*steps_entry_)(const int64_t* args) = nullptr;
  std::vector<Direction> directions_;
  double compile_ms_ = 0;
  bool reused_code_ = false;
  bool from_disk_cache_ = false;
};

// Compiles the LSTM for the host. w [dirs, 4 * hidden, input], r [dirs, 4 *
// hidden, hidden] and b [dirs, 8 * hidden] (null: zero) as ONNX lays them
// out; read during the call only. Errors: kInvalidArgument for a shape
// that is not positive or a null weight; kUnsupported for a vector ISA
// narrower than AVX2 (the interpreter serves); kResourceExhausted when the
// packed weights cannot be allocated; kInternal when LLVM fails. Nothing
// stays in the JIT on failure.
StatusOr<std::unique_ptr<CompiledLstm>> CompileLstm(JitCompiler& compiler, const LstmProblem& problem, const float* w,
                                                    const float* r, const float* b, const LstmTuning& tuning = {});

// The assembly of the recurrence CompileLstm would generate for `problem`
// on another CPU (LLVM's name, e.g. "znver4", "haswell") with its default
// features (`features` empty) or `features` ("+avx2,-avx512f" style). For
// tests and inspection; kInvalidArgument for an unknown CPU.
StatusOr<std::string> EmitLstmAssembly(const LstmProblem& problem, const std::string& cpu, const std::string& features,
                                       const LstmTuning& tuning = {});

}  // namespace kiln::jit
