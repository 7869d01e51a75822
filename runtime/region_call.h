// The boundary between the interpreter and the JIT tier: one call of a
// region unit, as the interpreter offers it to the tier. The tier decides
// which implementation serves the call (compiled code, or the interpreter
// when no code fits the shapes or a trial wants a comparison sample); the
// interpreter knows nothing of compiled code, its ABI or its trials.
#pragma once

#include <cstddef>
#include <memory>

#include "kernels/kernel.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::runtime {

// Per-frame memory a tier keeps between calls (argument arrays, shape
// signatures), so that a call allocates nothing once a frame is warm. The
// tier defines what it holds; the frame only owns it.
class RegionScratch {
 public:
  virtual ~RegionScratch() = default;
};

// One call of region unit `region()`. Used by one thread for one call.
class RegionCall {
 public:
  virtual ~RegionCall() = default;

  // The data of region input `i` (graph::Region::inputs order), dense
  // row-major.
  virtual const Tensor& input(size_t i) const = 0;
  // Allocates region output `o` (graph::Region::outputs order) with `dims`
  // and the output's dtype, and makes it the output's value for the rest of
  // the run. Fails when the allocation is refused or impossible.
  virtual StatusOr<void*> AllocateOutput(size_t o, const Dims& dims) = 0;
  // Region output `o` as the last AllocateOutput or RunInterpreted left it
  // (shadow verification compares compiled code against the interpreter's).
  virtual const Tensor& output(size_t o) const = 0;
  // Runs the region's nodes one by one in the interpreter, writing every
  // output.
  virtual Status RunInterpreted() = 0;
  // The run's intra-op threads.
  virtual const kernels::ParallelRunner& parallel() const = 0;
  // The calling frame's slot for the tier's scratch state (null until the
  // tier first sets it).
  virtual std::unique_ptr<RegionScratch>& scratch() = 0;
};

}  // namespace kiln::runtime
