// libFuzzer target: arbitrary bytes as a NumPy .npy file. ParseNpy must
// return a tensor or a Status for every input; when it returns a tensor,
// writing it back and parsing that again must give the same bytes.
// Built as a fuzzer by //test/fuzz:npy_fuzzer (--config=fuzz) and replayed
// over the corpus by //test/fuzz:npy_fuzzer_replay.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "tools/npy.h"

// A header may promise a huge tensor backed by few bytes; see model_fuzzer.cc.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1:max_allocation_size_mb=1024"; }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tensor = kiln::tools::ParseNpy(data, size);
  if (!tensor.ok()) return 0;
  // Round trip: what kiln reads it must be able to write and read back.
  auto bytes = kiln::tools::SerializeNpy(*tensor);
  if (!bytes.ok()) std::abort();
  auto again = kiln::tools::ParseNpy(bytes->data(), bytes->size());
  if (!again.ok() || again->dtype() != tensor->dtype() || again->dims() != tensor->dims() ||
      again->byte_size() != tensor->byte_size() ||
      (tensor->byte_size() > 0 && std::memcmp(again->raw_data(), tensor->raw_data(), tensor->byte_size()) != 0)) {
    std::abort();
  }
  return 0;
}
