#include "kiln/version.h"

#define KILN_STRINGIFY_IMPL(x) #x
#define KILN_STRINGIFY(x) KILN_STRINGIFY_IMPL(x)

namespace kiln {

const char* Version() {
  return KILN_STRINGIFY(KILN_VERSION_MAJOR) "." KILN_STRINGIFY(KILN_VERSION_MINOR) "." KILN_STRINGIFY(
      KILN_VERSION_PATCH);
}

}  // namespace kiln
