// Writing a whole file so that readers, in this process or another, see its
// old contents or its new ones, never a part: for folders that several
// processes share (the JIT's code cache and hot sets).
#pragma once

#include <string>

#include "kiln/status.h"

namespace kiln::graph {

// Writes `bytes` to a temporary file beside `path` (the same folder, so the
// same file system), named `<path>.tmp.<pid>.<random>` so that whoever owns
// the folder can recognise a writer's leftovers, then renames it over
// `path`. IoError naming the step that failed; the temporary file is
// removed then.
Status WriteFileAtomically(const std::string& path, const std::string& bytes);

}  // namespace kiln::graph
