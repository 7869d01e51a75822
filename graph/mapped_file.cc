#include "graph/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace kiln::graph {
namespace {

// Closes the descriptor on every path out of Open; the mapping outlives it.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

StatusOr<MappedFile> MappedFile::Open(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return NotFound("cannot open '", path, "'");
    if (errno == EISDIR) return InvalidArgument("'", path, "' is a directory, not a file");
    return IoError("cannot open '", path, "' for reading: ", std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return IoError("cannot read the size of '", path, "': ", std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return InvalidArgument("'", path, "' is a directory, not a file");
  MappedFile file;
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    const size_t size = static_cast<size_t>(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p != MAP_FAILED) {
      // The parser reads the whole file at once: start reading ahead now.
      ::madvise(p, size, MADV_WILLNEED);
      file.mapped_ = p;
      file.mapped_size_ = size;
      return file;
    }
  }
  // Not a regular file, empty (which /proc files claim to be), or the
  // mapping failed: read it to the end.
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("reading '", path, "' failed: ", std::strerror(errno));
    }
    file.read_.append(buffer, static_cast<size_t>(n));
  }
  return file;
}

MappedFile::~MappedFile() { Release(); }

MappedFile::MappedFile(MappedFile&& other) noexcept
    : mapped_(std::exchange(other.mapped_, nullptr)),
      mapped_size_(std::exchange(other.mapped_size_, 0)),
      read_(std::move(other.read_)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    Release();
    mapped_ = std::exchange(other.mapped_, nullptr);
    mapped_size_ = std::exchange(other.mapped_size_, 0);
    read_ = std::move(other.read_);
  }
  return *this;
}

void MappedFile::Release() {
  if (mapped_ != nullptr) ::munmap(mapped_, mapped_size_);
  mapped_ = nullptr;
  mapped_size_ = 0;
}

}  // namespace kiln::graph
