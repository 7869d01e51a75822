// Tests of the thread-count rule for oneDNN primitives (kernels/dnnl_threads.h)
// and of the convolution work estimate it is given, on the shapes of the
// zoo's CNNs: hand-computed bytes and flops, and which side of the rule
// each falls on.
#include "kernels/dnnl_threads.h"

#include <gtest/gtest.h>

namespace kiln::kernels {
namespace {

TEST(DnnlThreadsTest, SmallInBytesAndFlopsRunsOnOneThread) {
  EXPECT_EQ(DnnlThreadsFor(DnnlWork{64 << 10, 1e5}, 2), 1);
  EXPECT_EQ(DnnlThreadsFor(DnnlWork{0, 0}, 8), 1);
}

TEST(DnnlThreadsTest, ManyBytesOrManyFlopsTakeTheRunsThreads) {
  // Memory-bound: large bytes, almost no arithmetic.
  EXPECT_EQ(DnnlThreadsFor(DnnlWork{1 << 20, 1e3}, 2), 2);
  // Compute-bound: few bytes, tens of microseconds of arithmetic.
  EXPECT_EQ(DnnlThreadsFor(DnnlWork{100 << 10, 4e6}, 2), 2);
  EXPECT_EQ(DnnlThreadsFor(DnnlWork{100 << 10, 4e6}, 4), 4);
}

TEST(DnnlThreadsTest, NeverMoreThanTheRunHasAndAtLeastOne) {
  EXPECT_EQ(DnnlThreadsFor(DnnlWork{1 << 30, 1e12}, 1), 1);
  EXPECT_EQ(DnnlThreadsFor(DnnlWork{1 << 30, 1e12}, 0), 1);
}

TEST(EstimatedConvWorkTest, PointwiseConvOverASmallMapIsSplitForItsFlops) {
  // MobileNetV3-Small's 40 -> 240 expansion on 14x14: X 7840, W 9600 and
  // Y 47040 floats (just under 256 KiB), 2 * 47040 * 40 flops.
  const DnnlWork work = EstimatedConvWork({1, 40, 14, 14}, {240, 40, 1, 1}, {1, 1});
  EXPECT_EQ(work.bytes, size_t{(7840 + 9600 + 47040) * 4});
  EXPECT_DOUBLE_EQ(work.flops, 2.0 * 47040 * 40);
  EXPECT_EQ(DnnlThreadsFor(work, 2), 2);
}

TEST(EstimatedConvWorkTest, StridesShrinkTheOutputAndGroupsTheTaps) {
  // ResNet's 1x1/2 projection 128 -> 256 on 14x14: Y is 256 x 7 x 7.
  DnnlWork work = EstimatedConvWork({1, 128, 14, 14}, {256, 128, 1, 1}, {2, 2});
  EXPECT_EQ(work.bytes, size_t{(25088 + 32768 + 12544) * 4});
  EXPECT_DOUBLE_EQ(work.flops, 2.0 * 12544 * 128);
  // A 5x5 depthwise convolution, 120 channels on 14x14: each output reads
  // one channel's 25 taps; too little of either to split.
  work = EstimatedConvWork({1, 120, 14, 14}, {120, 1, 5, 5}, {1, 1});
  EXPECT_EQ(work.bytes, size_t{(23520 + 3000 + 23520) * 4});
  EXPECT_DOUBLE_EQ(work.flops, 2.0 * 23520 * 25);
  EXPECT_EQ(DnnlThreadsFor(work, 2), 1);
}

}  // namespace
}  // namespace kiln::kernels
