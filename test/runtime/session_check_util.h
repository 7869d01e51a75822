// The comparison the graph-pass and kernel end-to-end tests share: a model
// run through kiln::Session in the interpreter tier against a reference
// output (usually testing::RunUnoptimizedReference's).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "kiln/session.h"
#include "test/tensors.h"
#include "test/tolerance.h"

namespace kiln::testing {

// Runs `model` interpreted at 1 and 2 intra-op threads, `runs` calls per
// session, with `input` as its input "x", and expects the first output to
// have `reference`'s dims and each element within
// rel_tol * max(1, |reference|) of it (IsCloseScaled).
inline void ExpectInterpretedMatches(const std::shared_ptr<const Model>& model, const Tensor& input,
                                     const Tensor& reference, float rel_tol = 1e-5f, int runs = 1) {
  for (int threads : {1, 2}) {
    SessionOptions options;
    options.tier = TierPolicy::kInterpreter;
    options.intra_op_threads = threads;
    auto session = Session::Create(model, options);
    ASSERT_TRUE(session.ok()) << session.status().ToString();
    for (int run = 0; run < runs; ++run) {
      auto out = (*session)->Run({{"x", input}});
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      const Tensor& y = (*out)[0].tensor;
      ASSERT_EQ(y.dims(), reference.dims());
      SCOPED_TRACE(::testing::Message() << threads << " threads, run " << run);
      ExpectNearScaled(ToVector<float>(y), ToVector<float>(reference), rel_tol);
    }
  }
}

// `bytes` loaded with every convolutional sub-graph in NCHW (kOff) or in
// NHWC (kOn), whatever the host prefers.
inline std::shared_ptr<const Model> LoadWithLayout(const std::string& bytes, ChannelsLast layout) {
  LoadOptions options;
  options.channels_last = layout;
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size(), "", options);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

// ExpectInterpretedMatches on `bytes` loaded channels-last.
inline void ExpectChannelsLastMatches(const std::string& bytes, const Tensor& input, const Tensor& reference) {
  std::shared_ptr<const Model> model = LoadWithLayout(bytes, ChannelsLast::kOn);
  ASSERT_NE(model, nullptr);
  SCOPED_TRACE("channels last");
  ExpectInterpretedMatches(model, input, reference);
}

}  // namespace kiln::testing
