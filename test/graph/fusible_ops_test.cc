// The fusible-op table: every op is found by its name (the lookup is a
// binary search, so this also checks the table's order), names are unique,
// and ops outside the table are not found.
#include "graph/fusible_ops.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace kiln::graph {
namespace {

TEST(FusibleOps, EveryOpIsFoundByItsName) {
  const char* const kOps[] = {
      "Abs",     "Add",         "Ceil",      "Clip",     "Div",       "Elu",  "Equal", "Erf",  "Exp",  "Floor", "Gelu",
      "Greater", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Less", "Log",   "Max",  "Min",  "Mul",   "Neg",
      "Pow",     "Reciprocal",  "Relu",      "Sigmoid",  "Softplus",  "Sqrt", "Sub",   "Tanh", "Where"};
  std::set<int> seen;
  for (const char* op : kOps) {
    const FusibleOpInfo* info = FindFusibleOp(op);
    ASSERT_NE(info, nullptr) << op;
    EXPECT_EQ(std::string(info->name), op);
    EXPECT_TRUE(seen.insert(static_cast<int>(info->op)).second) << op << " shares its enum value";
  }
}

TEST(FusibleOps, OpsOutsideTheTableAreNotFound) {
  for (const char* op : {"MatMul", "Softmax", "Conv", "", "abs", "Zzz", "Aaa"}) {
    EXPECT_EQ(FindFusibleOp(op), nullptr) << op;
  }
}

TEST(FusibleOps, ComparisonsYieldMasksAndArityIsKnown) {
  EXPECT_TRUE(FindFusibleOp("Less")->yields_bool);
  EXPECT_FALSE(FindFusibleOp("Add")->yields_bool);
  EXPECT_EQ(FindFusibleOp("Where")->min_inputs, 3);
  EXPECT_EQ(FindFusibleOp("Max")->max_inputs, kVariadic);
  EXPECT_EQ(FindFusibleOp("Clip")->max_inputs, 3);
}

}  // namespace
}  // namespace kiln::graph
