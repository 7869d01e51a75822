// Paths the user typed on the command line, as the user meant them.
//
// `bazel run //:kiln -- run model.onnx` starts the tool inside its runfiles
// tree, not in the folder the command was typed in; Bazel passes that
// folder as BUILD_WORKING_DIRECTORY. Without this, every relative path
// would fail under `bazel run`, the way the README runs the tool.
#pragma once

#include <string>

namespace kiln::cli {

// `path` unchanged when it is empty or absolute, or when
// BUILD_WORKING_DIRECTORY is unset or empty; otherwise `path` under that
// folder.
std::string ResolveUserPath(const std::string& path);

}  // namespace kiln::cli
