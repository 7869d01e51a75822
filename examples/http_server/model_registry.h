// The models the server serves: every .onnx file of one folder, loaded once
// at start, each with one Session that all request threads share (Session::Run
// is thread-safe). Fixed after start, so lookups need no lock.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <kiln/session.h>

namespace kiln_http {

struct ServedModel {
  std::string name;  // file name without ".onnx"; the {name} of the URLs
  std::string path;
  std::shared_ptr<const kiln::Model> model;
  std::unique_ptr<kiln::Session> session;
};

class ModelRegistry {
 public:
  // Loads every "*.onnx" in `dir` (not its subfolders), in name order so that
  // listings and metrics come out the same on every start. Fails naming the
  // file when any model does not load or has no session: a server that
  // silently served fewer models than it was given would hide the problem
  // until requests fail.
  static kiln::StatusOr<ModelRegistry> LoadDirectory(const std::string& dir, const kiln::SessionOptions& options);

  // Null when no model has that name.
  const ServedModel* Find(std::string_view name) const;
  // Index into models() of `name`, or -1.
  int IndexOf(std::string_view name) const;
  const std::vector<ServedModel>& models() const { return models_; }

 private:
  std::vector<ServedModel> models_;
};

}  // namespace kiln_http
