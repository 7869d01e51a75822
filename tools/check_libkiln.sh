#!/usr/bin/env bash
# Checks an installed kiln (tools/install.sh PREFIX) the way a program
# outside the repo would meet it:
#   - lib/libkiln.so.X.Y.Z has SONAME libkiln.so.X, the links exist, and the
#     loader resolves every NEEDED library;
#   - the dynamic symbol table holds only kiln's public API: every defined
#     symbol is in namespace kiln, none in an internal namespace
#     (kiln::graph, kernels, jit, runtime, internal, tools) or a private
#     Impl, and the entry points a program needs are there;
#   - each installed header compiles on its own (C++17) with nothing but
#     PREFIX/include, so none includes an internal header;
#   - kiln.pc and the CMake package name this prefix and this version.
#
#   tools/check_libkiln.sh PREFIX
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: tools/check_libkiln.sh PREFIX" >&2
  exit 2
fi
prefix=$1
cd "$(dirname "$0")/.."
version_part() { sed -n "s/^#define KILN_VERSION_$1 \([0-9][0-9]*\)$/\1/p" graph/include/kiln/version.h; }
major=$(version_part MAJOR)
version="$major.$(version_part MINOR).$(version_part PATCH)"
lib="$prefix/lib/libkiln.so.$version"

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

[ -f "$lib" ] || { echo "FAIL: no $lib"; exit 1; }
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libkiln.so.$major" ] || fail "SONAME is '$soname', expected libkiln.so.$major"
[ "$(readlink "$prefix/lib/libkiln.so.$major")" = "libkiln.so.$version" ] || fail "libkiln.so.$major link"
[ "$(readlink "$prefix/lib/libkiln.so")" = "libkiln.so.$major" ] || fail "libkiln.so link"
echo "SONAME $soname; NEEDED: $(readelf -d "$lib" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
if ldd "$lib" | grep -q "not found"; then
  fail "unresolved libraries: $(ldd "$lib" | grep "not found" | tr '\n' ' ')"
fi

symbols=$(nm -D --defined-only -C "$lib" | cut -d' ' -f3-)
echo "exported symbols: $(echo "$symbols" | wc -l)"
outside=$(echo "$symbols" | grep -v '^kiln::' || true)
[ -z "$outside" ] || fail "symbols outside namespace kiln:"$'\n'"$outside"
internal=$(echo "$symbols" | grep -E '^kiln::(graph|kernels|jit|runtime|internal|tools)::|::Impl::' || true)
[ -z "$internal" ] || fail "internal symbols exported:"$'\n'"$internal"
for wanted in 'kiln::Version()' 'kiln::Model::Load(' 'kiln::Session::Create(' 'kiln::Session::Run(' \
  'kiln::Tensor::Allocate(' 'kiln::Status::ToString' 'kiln::CheckHostCpu()' 'kiln::ThreadBudget::Create('; do
  echo "$symbols" | grep -qF "$wanted" || fail "$wanted is not exported"
done

for header in "$prefix"/include/kiln/*.h; do
  echo "#include <kiln/$(basename "$header")>" |
    c++ -std=c++17 -fsyntax-only -Wall -Wextra -Werror -I"$prefix/include" -x c++ - ||
    fail "$header does not compile on its own"
done
echo "headers: $(cd "$prefix/include" && ls kiln/*.h | tr '\n' ' ')"

pc_version=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --modversion kiln)
[ "$pc_version" = "$version" ] || fail "kiln.pc has version '$pc_version', expected $version"
pc_cflags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags kiln | xargs)
[ "$pc_cflags" = "-I$prefix/include" ] || fail "kiln.pc has cflags '$pc_cflags'"
grep -q "libkiln.so.$version" "$prefix/lib/cmake/kiln/kilnConfig.cmake" || fail "kilnConfig.cmake names another library"
grep -q "PACKAGE_VERSION \"$version\"" "$prefix/lib/cmake/kiln/kilnConfigVersion.cmake" ||
  fail "kilnConfigVersion.cmake has another version"

if [ "$failures" -ne 0 ]; then
  echo "check_libkiln: $failures problems"
  exit 1
fi
echo "check_libkiln: kiln $version in $prefix is self-contained and exports only its public API"
