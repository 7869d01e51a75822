// Takes the large float weights out of a serialized ModelProto before
// protobuf parses it. Protobuf copies every `raw_data` field into a string
// of its own, so parsing a model touches its weights twice (the source and a
// fresh heap copy) before the loader copies or shares them once more; on
// virtual machines, where first touches of pages are expensive, that was
// most of a load. This scanner walks the wire format of ModelProto ->
// GraphProto (the main graph) -> TensorProto (its initializers) only,
// records where each large float initializer's raw bytes are, and produces
// a copy of the message without them, which protobuf then parses in a
// fraction of the time. The loader reads each payload straight into its
// tensor.
//
// Anything the scanner does not expect (a second `graph` field, a repeated
// `raw_data`, groups, a length running past its message) makes it give up,
// and the loader parses the original bytes as before: malformed models get
// protobuf's and the loader's usual errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::graph {

// Random access to a serialized model: a buffer in memory, or a file read
// with pread (which copies from the page cache without mapping its pages).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Copies bytes [offset, offset + count) to `dst`; false when they are not
  // all there or cannot be read.
  virtual bool Read(uint64_t offset, size_t count, void* dst) const = 0;
  // The bytes themselves when they are in memory, else null.
  virtual const uint8_t* direct() const { return nullptr; }
};

class MemoryByteSource final : public ByteSource {
 public:
  MemoryByteSource(const void* data, size_t size) : data_(static_cast<const uint8_t*>(data)), size_(size) {}
  uint64_t size() const override { return size_; }
  bool Read(uint64_t offset, size_t count, void* dst) const override;
  const uint8_t* direct() const override { return data_; }

 private:
  const uint8_t* data_;
  size_t size_;
};

// A regular file read with pread; owns its descriptor.
class FileByteSource final : public ByteSource {
 public:
  // Null when `path` is not a non-empty regular file that can be opened:
  // the caller then goes the ordinary way, which names the problem.
  static std::unique_ptr<FileByteSource> Open(const std::string& path);
  ~FileByteSource() override;
  FileByteSource(const FileByteSource&) = delete;
  FileByteSource& operator=(const FileByteSource&) = delete;

  uint64_t size() const override { return size_; }
  bool Read(uint64_t offset, size_t count, void* dst) const override;

 private:
  FileByteSource(int fd, uint64_t size) : fd_(fd), size_(size) {}

  int fd_;
  uint64_t size_;
};

// Where an elided raw_data payload is in the source.
struct RawDataLocation {
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct ElidedModel {
  // The ModelProto without the elided payloads (their raw_data fields are
  // gone; every other byte is as it was).
  std::string bytes;
  // One entry per initializer of the main graph, in order; set where that
  // initializer's raw_data was elided.
  std::vector<std::optional<RawDataLocation>> initializer_raw_data;
};

// Float (FLOAT, DOUBLE) initializers with at least this many raw bytes are
// elided. Small ones stay: ONNX shape inference may read a constant
// operand's values (Resize scales, Clip bounds), and they cost nothing to
// parse.
inline constexpr uint64_t kMinElidedRawDataBytes = 4096;

// Scans `source` as described above. nullopt when it cannot (see the top of
// this file), or when there is nothing to elide.
std::optional<ElidedModel> ElideInitializerRawData(const ByteSource& source,
                                                   uint64_t min_bytes = kMinElidedRawDataBytes);

}  // namespace kiln::graph
