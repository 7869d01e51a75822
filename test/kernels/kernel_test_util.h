// Helpers to run one kernel on hand-made tensors, without a model or a
// session: build a node, create its kernel from the default registry, run it
// serially with plain allocation. Tensors, attributes and tolerances come
// from //test:test_util.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "graph/graph.h"
#include "kernels/kernel.h"
#include "kiln/tensor.h"
#include "test/attributes.h"
#include "test/tensors.h"
#include "test/tolerance.h"

namespace kiln::testing {

class PlainAllocator final : public kernels::OutputAllocator {
 public:
  StatusOr<Tensor> AllocateOutput(int, DType dtype, const Dims& dims) override { return Tensor::Allocate(dtype, dims); }
};

// Hands For's range out in order, in pieces of `grain` (at least 1), on
// the calling thread, while claiming two threads: every task boundary a
// kernel makes is exercised without threads.
class ChunkedRunner final : public kernels::ParallelRunner {
 public:
  void For(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) const override {
    const int64_t step = std::max<int64_t>(1, grain);
    for (int64_t begin = 0; begin < n; begin += step) fn(begin, std::min(n, begin + step));
  }
  int num_threads() const override { return 2; }
};

// Two threads: the first half of a range on a thread of its own, the second
// on the caller's, as a session's intra-op runner splits it.
class TwoThreadRunner final : public kernels::ParallelRunner {
 public:
  void For(int64_t n, int64_t, const std::function<void(int64_t, int64_t)>& fn) const override {
    if (n <= 0) return;
    if (n < 2) {
      fn(0, n);
      return;
    }
    const int64_t half = n / 2;
    std::thread first([&] { fn(0, half); });
    fn(half, n);
    first.join();
  }
  int num_threads() const override { return 2; }
};

// Runs `node` on `inputs` (a null entry is an omitted optional input) with
// `runner` as its thread pool and returns its `num_outputs` outputs.
inline StatusOr<std::vector<Tensor>> RunNode(const graph::Node& node, const std::vector<const Tensor*>& inputs,
                                             const kernels::ParallelRunner& runner, int num_outputs = 1) {
  KILN_ASSIGN_OR_RETURN(auto kernel, kernels::DefaultKernelRegistry().Create(node));
  std::vector<Tensor> outputs(static_cast<size_t>(num_outputs));
  PlainAllocator allocator;
  kernels::KernelContext ctx(inputs, outputs, allocator, runner);
  KILN_RETURN_IF_ERROR(kernel->Compute(ctx));
  return outputs;
}

// Runs `op_type` at `opset` on `inputs`, serially.
inline StatusOr<std::vector<Tensor>> RunOp(const std::string& op_type, const std::vector<const Tensor*>& inputs,
                                           std::map<std::string, graph::Attribute> attributes = {}, int opset = 17,
                                           int num_outputs = 1) {
  graph::Node node;
  node.name = "test_" + op_type;
  node.op_type = op_type;
  node.opset = opset;
  node.attributes = std::move(attributes);
  return RunNode(node, inputs, kernels::SerialRunner(), num_outputs);
}

}  // namespace kiln::testing
