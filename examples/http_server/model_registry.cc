#include "model_registry.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace kiln_http {

kiln::StatusOr<ModelRegistry> ModelRegistry::LoadDirectory(const std::string& dir,
                                                           const kiln::SessionOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return kiln::NotFound("cannot list model folder ", dir, ": ", ec.message());

  std::vector<fs::path> paths;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return kiln::IoError("cannot list model folder ", dir, ": ", ec.message());
    if (it->path().extension() == ".onnx" && it->is_regular_file(ec)) paths.push_back(it->path());
  }
  if (paths.empty()) return kiln::NotFound("no .onnx model in ", dir);
  std::sort(paths.begin(), paths.end());

  ModelRegistry registry;
  for (const fs::path& path : paths) {
    ServedModel served;
    served.name = path.stem().string();
    served.path = path.string();
    kiln::StatusOr<std::shared_ptr<const kiln::Model>> model = kiln::Model::Load(served.path);
    if (!model.ok()) return model.status().WithContext(served.path);
    served.model = *model;
    kiln::StatusOr<std::unique_ptr<kiln::Session>> session = kiln::Session::Create(served.model, options);
    if (!session.ok()) return session.status().WithContext(served.path);
    served.session = std::move(*session);
    registry.models_.push_back(std::move(served));
  }
  return registry;
}

int ModelRegistry::IndexOf(std::string_view name) const {
  for (size_t i = 0; i < models_.size(); ++i) {
    if (models_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

const ServedModel* ModelRegistry::Find(std::string_view name) const {
  const int index = IndexOf(name);
  return index < 0 ? nullptr : &models_[static_cast<size_t>(index)];
}

}  // namespace kiln_http
