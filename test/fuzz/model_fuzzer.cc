// libFuzzer target: arbitrary bytes as an ONNX model, through the public API
// as a user would drive it: Model::LoadFromBytes -> Session::Create
// (interpreter, one thread) -> one Run on small deterministic inputs.
// Errors are expected and fine; crashes, sanitizer reports, leaks and hangs
// are bugs. Built as a fuzzer by //test/fuzz:model_fuzzer (--config=fuzz)
// and replayed over the corpus by //test/fuzz:model_fuzzer_replay.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kiln/session.h"

// A model may ask for absurd tensors (Expand to [2^20, 2^20], ...): kiln
// must answer ResourceExhausted, which needs the allocator to return null
// like the system one does instead of aborting, and to refuse sizes beyond
// what a fuzz run may use (below libFuzzer's 2 GiB malloc limit).
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1:max_allocation_size_mb=1024"; }

namespace {

// Inputs larger than this (in elements, over all inputs) are not run: the
// point is the code paths, not the arithmetic.
constexpr int64_t kMaxInputElements = int64_t{1} << 16;

// Small values that are valid indices, shapes and axes for small tensors as
// often as possible, and never NaN: the same bytes always run the same way.
template <typename T>
void Fill(kiln::Tensor& t) {
  T* p = t.data<T>();
  for (int64_t i = 0; i < t.num_elements(); ++i) p[i] = static_cast<T>(i % 3);
}

bool FillDeterministic(kiln::Tensor& t) {
  switch (t.dtype()) {
    case kiln::DType::kFloat32: {
      float* p = t.data<float>();
      for (int64_t i = 0; i < t.num_elements(); ++i) p[i] = static_cast<float>(i % 7 - 3) * 0.5f;
      return true;
    }
    case kiln::DType::kFloat64: Fill<double>(t); return true;
    case kiln::DType::kInt64: Fill<int64_t>(t); return true;
    case kiln::DType::kInt32: Fill<int32_t>(t); return true;
    case kiln::DType::kInt16: Fill<int16_t>(t); return true;
    case kiln::DType::kInt8: Fill<int8_t>(t); return true;
    case kiln::DType::kUint8: Fill<uint8_t>(t); return true;
    case kiln::DType::kBool: {
      bool* p = t.data<bool>();
      for (int64_t i = 0; i < t.num_elements(); ++i) p[i] = (i & 1) != 0;
      return true;
    }
    case kiln::DType::kUndefined:
    case kiln::DType::kSequence: return false;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto model = kiln::Model::LoadFromBytes(data, size);
  if (!model.ok()) return 0;
  kiln::SessionOptions options;
  options.tier = kiln::TierPolicy::kInterpreter;
  options.intra_op_threads = 1;
  options.log_level = "off";
  auto session = kiln::Session::Create(*model, options);
  if (!session.ok()) return 0;

  // Symbolic dims become 1; unknown ranks and big inputs are not run.
  std::vector<kiln::NamedTensor> inputs;
  int64_t total = 0;
  for (const kiln::TensorInfo& info : (*model)->inputs()) {
    if (!info.rank_known) return 0;
    kiln::Dims dims = info.dims;
    for (int64_t& d : dims) {
      if (d < 0) d = 1;
      if (d > kMaxInputElements) return 0;
    }
    auto count = kiln::CheckedNumElements(dims, info.dtype);
    if (!count.ok()) return 0;
    total += *count;
    if (total > kMaxInputElements) return 0;
    auto tensor = kiln::Tensor::Allocate(info.dtype, dims);
    if (!tensor.ok() || !FillDeterministic(*tensor)) return 0;
    inputs.push_back({info.name, std::move(tensor).value()});
  }
  // A mutated Loop may ask for billions of iterations; the deadline bounds
  // the run the way a server's would (it must stop cleanly, not hang).
  kiln::RunOptions run;
  run.deadline = kiln::RunOptions::DeadlineIn(2000);
  auto outputs = (*session)->Run(inputs, run);
  (void)outputs;
  return 0;
}
