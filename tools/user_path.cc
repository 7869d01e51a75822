#include "tools/user_path.h"

#include <cstdlib>
#include <filesystem>

namespace kiln::cli {

std::string ResolveUserPath(const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  // Read at each call rather than cached: the tool resolves a handful of
  // paths, and no process-wide state is needed for that.
  const char* working_dir = std::getenv("BUILD_WORKING_DIRECTORY");
  if (working_dir == nullptr || *working_dir == '\0') return path;
  return (std::filesystem::path(working_dir) / path).lexically_normal().string();
}

}  // namespace kiln::cli
