// A read-only view of a whole file's bytes, mapped rather than read, so that
// loading a model does not first copy it into a buffer: the parser reads the
// page cache directly, and pages are brought in as it reaches them.
#pragma once

#include <cstddef>
#include <string>

#include "kiln/status.h"

namespace kiln::graph {

class MappedFile {
 public:
  // Maps `path`. NotFound when it does not exist, InvalidArgument for a
  // folder, IoError when it cannot be opened or mapped. A file that cannot be
  // mapped (a pipe, a /proc file) or is empty is read into memory instead,
  // so every readable file gives its bytes.
  static StatusOr<MappedFile> Open(const std::string& path);

  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const void* data() const { return mapped_ != nullptr ? mapped_ : read_.data(); }
  size_t size() const { return mapped_ != nullptr ? mapped_size_ : read_.size(); }
  // True when the bytes are mapped (not copied into memory).
  bool is_mapped() const { return mapped_ != nullptr; }

 private:
  void Release();

  void* mapped_ = nullptr;
  size_t mapped_size_ = 0;
  std::string read_;  // the bytes of a file that could not be mapped
};

}  // namespace kiln::graph
