// kiln's version, as compiled into the headers (KILN_VERSION_*) and into
// the library (kiln::Version()). Compare the two to detect a program built
// against other headers than the libkiln.so it loaded.
#pragma once

#include "kiln/export.h"

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 9
#define KILN_VERSION_PATCH 0

namespace kiln {

// "MAJOR.MINOR.PATCH" of the library in use.
KILN_API const char* Version();

}  // namespace kiln
