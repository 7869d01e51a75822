#include "graph/atomic_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace kiln::graph {

Status WriteFileAtomically(const std::string& path, const std::string& bytes) {
  namespace fs = std::filesystem;
  std::random_device random;
  const std::string temp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(random());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::error_code ec;
      fs::remove(temp, ec);
      return IoError("cannot write ", temp);
    }
  }
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove(temp, ec);
    return IoError("cannot rename ", temp, " into place: ", why);
  }
  return Status::Ok();
}

}  // namespace kiln::graph
