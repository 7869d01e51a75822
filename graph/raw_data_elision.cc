#include "graph/raw_data_elision.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace kiln::graph {
namespace {

// Field numbers from onnx.proto.
constexpr uint32_t kModelGraph = 7;
constexpr uint32_t kGraphInitializer = 5;
constexpr uint32_t kTensorDataType = 2;
constexpr uint32_t kTensorRawData = 9;
constexpr uint32_t kTensorDataLocation = 14;
constexpr uint64_t kFloat = 1;    // TensorProto.FLOAT
constexpr uint64_t kDouble = 11;  // TensorProto.DOUBLE

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// Reads the source a window at a time, so that a file is scanned with a
// few large preads rather than one per byte; in-memory bytes are read in
// place. Every read is bounds-checked against `end`, the end of the
// message being read.
class Cursor {
 public:
  explicit Cursor(const ByteSource& source) : source_(source), direct_(source.direct()) {}

  bool Byte(uint64_t pos, uint8_t* out) {
    if (pos >= source_.size()) return false;
    if (direct_ != nullptr) {
      *out = direct_[pos];
      return true;
    }
    if (!InWindow(pos) && !Fill(pos)) return false;
    *out = window_[pos - window_start_];
    return true;
  }

  // A varint at `*pos`, which moves past it; false past `end` or when it
  // is longer than ten bytes.
  bool Varint(uint64_t* pos, uint64_t end, uint64_t* value) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b = 0;
      if (*pos >= end || !Byte(*pos, &b)) return false;
      ++*pos;
      result |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *value = result;
        return true;
      }
    }
    return false;
  }

  // Appends bytes [begin, end) to `out`: from the window where they are in
  // it (a graph's many small fields then cost no read each), else read
  // directly.
  bool Append(uint64_t begin, uint64_t end, std::string& out) {
    if (end > source_.size() || begin > end) return false;
    if (direct_ != nullptr) {
      out.append(reinterpret_cast<const char*>(direct_) + begin, static_cast<size_t>(end - begin));
      return true;
    }
    while (begin < end) {
      if (!InWindow(begin)) {
        if (end - begin >= sizeof(window_)) {
          const size_t at = out.size();
          out.resize(at + static_cast<size_t>(end - begin));
          return source_.Read(begin, static_cast<size_t>(end - begin), out.data() + at);
        }
        if (!Fill(begin)) return false;
      }
      const uint64_t count = std::min(end, window_start_ + window_size_) - begin;
      out.append(reinterpret_cast<const char*>(window_) + (begin - window_start_), static_cast<size_t>(count));
      begin += count;
    }
    return true;
  }

 private:
  bool InWindow(uint64_t pos) const { return pos >= window_start_ && pos < window_start_ + window_size_; }
  // Reads the window starting at `pos`.
  bool Fill(uint64_t pos) {
    const uint64_t count = std::min<uint64_t>(sizeof(window_), source_.size() - pos);
    if (!source_.Read(pos, static_cast<size_t>(count), window_)) return false;
    window_start_ = pos;
    window_size_ = count;
    return true;
  }

  const ByteSource& source_;
  const uint8_t* direct_;
  uint8_t window_[1 << 16];
  uint64_t window_start_ = 0;
  uint64_t window_size_ = 0;
};

void AppendVarint(uint64_t value, std::string& out) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

// One field of a message: its tag, and for a length-delimited field where
// its payload is.
struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t start = 0;          // the tag's first byte
  uint64_t payload_start = 0;  // length-delimited: after the length
  uint64_t end = 0;            // one past the field's last byte
  uint64_t varint = 0;         // a varint field's value
};

// Reads the field at `pos` of a message ending at `end`.
bool NextField(Cursor& cursor, uint64_t pos, uint64_t end, Field* field) {
  field->start = pos;
  uint64_t tag = 0;
  if (!cursor.Varint(&pos, end, &tag)) return false;
  field->number = static_cast<uint32_t>(tag >> 3);
  field->wire = static_cast<uint32_t>(tag & 7);
  if (field->number == 0 || (tag >> 3) > 0x1fffffff) return false;
  switch (field->wire) {
    case kVarint:
      if (!cursor.Varint(&pos, end, &field->varint)) return false;
      break;
    case kFixed64:
      if (end - pos < 8) return false;
      pos += 8;
      break;
    case kFixed32:
      if (end - pos < 4) return false;
      pos += 4;
      break;
    case kLengthDelimited: {
      uint64_t length = 0;
      if (!cursor.Varint(&pos, end, &length) || length > end - pos) return false;
      field->payload_start = pos;
      pos += length;
      break;
    }
    default: return false;  // groups (deprecated, never in ONNX files) and invalid wire types
  }
  field->end = pos;
  return true;
}

// Appends a length-delimited field `number` holding `payload`.
void AppendMessageField(uint32_t number, const std::string& payload, std::string& out) {
  AppendVarint((static_cast<uint64_t>(number) << 3) | kLengthDelimited, out);
  AppendVarint(payload.size(), out);
  out += payload;
}

// A TensorProto at [begin, end): appends it to `out`, without its raw_data
// when that is large float data kept inline, and says where that was.
bool ScanTensor(Cursor& cursor, uint64_t begin, uint64_t end, uint64_t min_bytes, std::string& out,
                std::optional<RawDataLocation>* elided) {
  std::optional<Field> raw;
  uint64_t data_type = 0;
  bool external = false;
  for (uint64_t pos = begin; pos < end;) {
    Field f;
    if (!NextField(cursor, pos, end, &f)) return false;
    if (f.number == kTensorRawData) {
      // Protobuf keeps the last of repeated raw_data fields; rare enough
      // to leave to it.
      if (f.wire != kLengthDelimited || raw) return false;
      raw = f;
    } else if (f.number == kTensorDataType && f.wire == kVarint) {
      data_type = f.varint;
    } else if (f.number == kTensorDataLocation && f.wire == kVarint) {
      external = f.varint != 0;
    }
    pos = f.end;
  }
  const bool elide =
      raw && !external && (data_type == kFloat || data_type == kDouble) && raw->end - raw->payload_start >= min_bytes;
  if (!elide) return cursor.Append(begin, end, out);
  *elided = RawDataLocation{raw->payload_start, raw->end - raw->payload_start};
  return cursor.Append(begin, raw->start, out) && cursor.Append(raw->end, end, out);
}

// A GraphProto at [begin, end), with its initializers scanned.
bool ScanGraph(Cursor& cursor, uint64_t begin, uint64_t end, uint64_t min_bytes, std::string& out,
               std::vector<std::optional<RawDataLocation>>& initializers) {
  for (uint64_t pos = begin; pos < end;) {
    Field f;
    if (!NextField(cursor, pos, end, &f)) return false;
    if (f.number == kGraphInitializer) {
      if (f.wire != kLengthDelimited) return false;
      std::string tensor;
      std::optional<RawDataLocation> elided;
      if (!ScanTensor(cursor, f.payload_start, f.end, min_bytes, tensor, &elided)) return false;
      AppendMessageField(kGraphInitializer, tensor, out);
      initializers.push_back(elided);
    } else if (!cursor.Append(f.start, f.end, out)) {
      return false;
    }
    pos = f.end;
  }
  return true;
}

}  // namespace

bool MemoryByteSource::Read(uint64_t offset, size_t count, void* dst) const {
  if (offset > size_ || count > size_ - offset) return false;
  if (count > 0) std::memcpy(dst, data_ + offset, count);
  return true;
}

std::unique_ptr<FileByteSource> FileByteSource::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
    ::close(fd);
    return nullptr;
  }
  // The whole file is about to be read: start reading ahead now.
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
  return std::unique_ptr<FileByteSource>(new FileByteSource(fd, static_cast<uint64_t>(st.st_size)));
}

FileByteSource::~FileByteSource() { ::close(fd_); }

bool FileByteSource::Read(uint64_t offset, size_t count, void* dst) const {
  if (offset > size_ || count > size_ - offset) return false;
  auto* out = static_cast<char*>(dst);
  while (count > 0) {
    const ssize_t n = ::pread(fd_, out, count, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // an error, or the file shrank under us
    out += n;
    offset += static_cast<uint64_t>(n);
    count -= static_cast<size_t>(n);
  }
  return true;
}

std::optional<ElidedModel> ElideInitializerRawData(const ByteSource& source, uint64_t min_bytes) {
  // The cursor's window is large; keep it off the stack.
  auto cursor = std::make_unique<Cursor>(source);
  ElidedModel model;
  bool seen_graph = false;
  const uint64_t end = source.size();
  for (uint64_t pos = 0; pos < end;) {
    Field f;
    if (!NextField(*cursor, pos, end, &f)) return std::nullopt;
    if (f.number == kModelGraph) {
      // Protobuf merges repeated message fields; leave that to it.
      if (f.wire != kLengthDelimited || seen_graph) return std::nullopt;
      seen_graph = true;
      std::string graph;
      if (!ScanGraph(*cursor, f.payload_start, f.end, min_bytes, graph, model.initializer_raw_data)) {
        return std::nullopt;
      }
      AppendMessageField(kModelGraph, graph, model.bytes);
    } else if (!cursor->Append(f.start, f.end, model.bytes)) {
      return std::nullopt;
    }
    pos = f.end;
  }
  const bool any = std::any_of(model.initializer_raw_data.begin(), model.initializer_raw_data.end(),
                               [](const std::optional<RawDataLocation>& r) { return r.has_value(); });
  if (!any) return std::nullopt;
  return model;
}

}  // namespace kiln::graph
