// LSTM and GRU nodes that oneDNN runs have their primitive created in the
// background (OpKernel::TakePreparation). Until it is, runs of the prepared
// shape take the kernel's own path: its outputs and those of the primitive
// afterwards agree within float rounding, for LSTM with and without initial
// state and for bidirectional GRU. Nodes whose runs can pad (sequence_lens)
// or whose shapes the graph does not know prepare nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "test/kernels/kernel_test_util.h"

namespace kiln::kernels {
namespace {

using kiln::testing::IntAttr;
using kiln::testing::PlainAllocator;
using kiln::testing::StringAttr;

Tensor Random(const Dims& dims, uint32_t seed) { return kiln::testing::RandomTensor(dims, seed).value(); }

struct PreparationCase {
  const char* op;
  bool bidirectional;
  bool initial_state;
};

TEST(RecurrentPreparation, OwnPathBeforeAndPrimitiveAfterAgree) {
  for (const PreparationCase& c : {PreparationCase{"LSTM", false, true}, PreparationCase{"LSTM", false, false},
                                   PreparationCase{"GRU", true, true}}) {
    SCOPED_TRACE(::testing::Message() << c.op << (c.bidirectional ? " bidirectional" : "")
                                      << (c.initial_state ? " with initial state" : ""));
    const bool lstm = std::string(c.op) == "LSTM";
    const int64_t seq = 7, batch = 2, input = 24, hidden = 16, dirs = c.bidirectional ? 2 : 1;
    const int64_t gates = lstm ? 4 : 3;
    const Tensor x = Random({seq, batch, input}, 1);
    const Tensor w = Random({dirs, gates * hidden, input}, 2);
    const Tensor r = Random({dirs, gates * hidden, hidden}, 3);
    const Tensor b = Random({dirs, 2 * gates * hidden}, 4);
    const Tensor h0 = Random({dirs, batch, hidden}, 5);
    const Tensor c0 = Random({dirs, batch, hidden}, 6);

    graph::Node node;
    node.op_type = c.op;
    node.opset = 14;
    node.attributes["hidden_size"] = IntAttr(hidden);
    if (c.bidirectional) node.attributes["direction"] = StringAttr("bidirectional");
    std::vector<const Tensor*> inputs = {&x, &w, &r, &b, nullptr, c.initial_state ? &h0 : nullptr};
    if (lstm) inputs.push_back(c.initial_state ? &c0 : nullptr);
    std::vector<const Tensor*> constants = {nullptr, &w, &r, &b, nullptr, nullptr};
    std::vector<std::optional<Dims>> static_dims = {
        x.dims(), w.dims(),     r.dims(),
        b.dims(), std::nullopt, c.initial_state ? std::optional<Dims>(h0.dims()) : std::nullopt};
    if (lstm) {
      constants.push_back(nullptr);
      static_dims.push_back(c.initial_state ? std::optional<Dims>(c0.dims()) : std::nullopt);
    }
    const int num_outputs = lstm ? 3 : 2;
    auto run = [&](OpKernel& kernel) {
      std::vector<Tensor> outputs(static_cast<size_t>(num_outputs));
      PlainAllocator allocator;
      SerialRunner serial;
      KernelContext ctx(inputs, outputs, allocator, serial);
      const Status s = kernel.Compute(ctx);
      EXPECT_TRUE(s.ok()) << s.ToString();
      std::vector<std::vector<float>> values;
      for (const Tensor& t : outputs)
        values.push_back(s.ok() ? kiln::testing::ToVector<float>(t) : std::vector<float>{});
      return values;
    };
    auto pending = DefaultKernelRegistry().Create(node);
    auto prepared = DefaultKernelRegistry().Create(node);
    ASSERT_TRUE(pending.ok() && prepared.ok()) << pending.status().ToString();
    ASSERT_TRUE((*pending)->TakePreparation(constants, static_dims)) << "oneDNN runs this node: a primitive to prepare";
    std::function<void()> prepare = (*prepared)->TakePreparation(constants, static_dims);
    ASSERT_TRUE(prepare);
    const std::vector<std::vector<float>> own = run(**pending);
    prepare();
    const std::vector<std::vector<float>> primitive = run(**prepared);
    ASSERT_EQ(own.size(), primitive.size());
    for (size_t o = 0; o < own.size(); ++o) {
      ASSERT_EQ(own[o].size(), primitive[o].size()) << "output " << o;
      ASSERT_FALSE(own[o].empty()) << "output " << o;
      for (size_t i = 0; i < own[o].size(); ++i) {
        ASSERT_NEAR(own[o][i], primitive[o][i], 1e-4 * (1 + std::fabs(primitive[o][i])))
            << "output " << o << ", element " << i;
      }
    }
  }
}

TEST(RecurrentPreparation, NothingToPrepareWhenRunsMayPadOrShapesAreUnknown) {
  graph::Node node;
  node.op_type = "LSTM";
  node.opset = 14;
  node.attributes["hidden_size"] = IntAttr(8);
  auto kernel = DefaultKernelRegistry().Create(node);
  ASSERT_TRUE(kernel.ok()) << kernel.status().ToString();
  const Tensor w = Random({1, 32, 4}, 1);
  const Tensor r = Random({1, 32, 8}, 2);
  // X's shape unknown.
  EXPECT_FALSE((*kernel)->TakePreparation({nullptr, &w, &r}, {std::nullopt, w.dims(), r.dims()}));
  // sequence_lens given: whether a run pads depends on its values.
  EXPECT_FALSE((*kernel)->TakePreparation({nullptr, &w, &r, nullptr, nullptr},
                                          {Dims{5, 2, 4}, w.dims(), r.dims(), std::nullopt, Dims{2}}));
}

}  // namespace
}  // namespace kiln::kernels
