#!/usr/bin/env bash
# Builds libkiln.so (-c opt) and installs it for programs outside the repo:
#
#   tools/install.sh PREFIX
#
#   PREFIX/lib/libkiln.so.X.Y.Z  (SONAME libkiln.so.X) and the links
#                                libkiln.so.X, libkiln.so
#   PREFIX/include/kiln/*.h      the public headers
#   PREFIX/lib/pkgconfig/kiln.pc
#   PREFIX/lib/cmake/kiln/kilnConfig.cmake, kilnConfigVersion.cmake
#                                (imported target kiln::kiln)
#
# Then: c++ app.cc $(pkg-config --cflags --libs kiln) with
# PKG_CONFIG_PATH=PREFIX/lib/pkgconfig, or find_package(kiln) with
# CMAKE_PREFIX_PATH=PREFIX. At run time the loader must find libkiln.so.X:
# PREFIX/lib in LD_LIBRARY_PATH, an rpath, or a PREFIX ldconfig knows.
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  echo "usage: tools/install.sh PREFIX" >&2
  exit 2
fi
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."

version_part() { sed -n "s/^#define KILN_VERSION_$1 \([0-9][0-9]*\)$/\1/p" graph/include/kiln/version.h; }
major=$(version_part MAJOR)
minor=$(version_part MINOR)
patch=$(version_part PATCH)
if [ -z "$major" ] || [ -z "$minor" ] || [ -z "$patch" ]; then
  echo "install: cannot read KILN_VERSION_* from graph/include/kiln/version.h" >&2
  exit 1
fi
version="$major.$minor.$patch"

bazel build -c opt //:libkiln.so
built="$(bazel info -c opt bazel-bin)/libkiln.so"

# The SONAME is set in BUILD; it must name the same major version as the
# headers, or programs would load a library of another ABI.
soname=$(readelf -d "$built" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ "$soname" != "libkiln.so.$major" ]; then
  echo "install: $built has SONAME '$soname', expected libkiln.so.$major (KILN_SONAME in BUILD)" >&2
  exit 1
fi

install -d "$prefix/lib" "$prefix/include/kiln" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/kiln"
install -m 0755 "$built" "$prefix/lib/libkiln.so.$version"
ln -sfn "libkiln.so.$version" "$prefix/lib/libkiln.so.$major"
ln -sfn "libkiln.so.$major" "$prefix/lib/libkiln.so"

# Every header under */include/kiln is public API (STYLE.md: public
# headers in one place, internal ones next to their sources).
rm -f "$prefix"/include/kiln/*.h
install -m 0644 graph/include/kiln/*.h runtime/include/kiln/*.h "$prefix/include/kiln/"

fill() {
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@VERSION_MAJOR@|$major|g" "$1" >"$2"
}
fill tools/package/kiln.pc.in "$prefix/lib/pkgconfig/kiln.pc"
fill tools/package/kilnConfig.cmake.in "$prefix/lib/cmake/kiln/kilnConfig.cmake"
fill tools/package/kilnConfigVersion.cmake.in "$prefix/lib/cmake/kiln/kilnConfigVersion.cmake"

echo "install: kiln $version in $prefix"
