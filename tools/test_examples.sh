#!/usr/bin/env bash
# The checks of kiln as an installed library, run by tools/test_all.sh after
# `bazel test //...`: install into a temporary prefix, check the library's
# exports and headers, build and run the CMake and pkg-config consumers,
# build the HTTP serving example and run its request tests and a short load
# test (loopback only). Prints one line per check in Bazel's form
# ("//examples/cmake_consumer   PASSED in 3.1s"), which .ci/run counts, the
# log of each failed check, and exits non-zero if any failed.
#
#   tools/test_examples.sh
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
failures=0

# run_check LABEL COMMAND...: runs COMMAND with its output in a log, prints
# the result line, and the log when it failed.
run_check() {
  local label=$1
  shift
  local log="$work/$(echo "$label" | tr '/:' '__').log"
  local start=$EPOCHREALTIME
  local status=0
  "$@" >"$log" 2>&1 || status=$?
  local seconds
  seconds=$(awk -v a="$EPOCHREALTIME" -v s="$start" 'BEGIN { printf "%.1f", a - s }')
  if [ "$status" -eq 0 ]; then
    printf '%-45s PASSED in %ss\n' "$label" "$seconds"
  else
    printf '%-45s FAILED in %ss\n' "$label" "$seconds"
    sed 's/^/    /' "$log"
    failures=$((failures + 1))
  fi
  return "$status"
}

# The demo models and their numpy reference outputs.
bazel build //tools:demo_models >"$work/models.log" 2>&1 || { cat "$work/models.log"; exit 1; }
models="$(bazel info bazel-bin)/tools"

run_check //tools:install ./tools/install.sh "$prefix" || { echo "test_examples: nothing installed"; exit 1; }
run_check //tools:check_libkiln ./tools/check_libkiln.sh "$prefix"

cmake_consumer() {
  cmake -S examples/cmake_consumer -B "$work/cmake_consumer" -DCMAKE_PREFIX_PATH="$prefix" &&
    cmake --build "$work/cmake_consumer" &&
    "$work/cmake_consumer/kiln_consumer" "$models/mlp.onnx" | tee "$work/cmake_consumer.out" &&
    grep -q '^kiln 0\.9\.0 (headers 0\.9\.0)$' "$work/cmake_consumer.out" &&
    grep -q '^y float32 \[2, 10\]:' "$work/cmake_consumer.out"
}
run_check //examples/cmake_consumer cmake_consumer

# Only what pkg-config says; the loader finds the library through
# LD_LIBRARY_PATH, as for any prefix outside the system's.
pkg_config_consumer() {
  local flags
  flags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs kiln) &&
    echo "c++ main.cc $flags" &&
    c++ -o "$work/pkg_config_consumer" examples/cmake_consumer/main.cc $flags &&
    LD_LIBRARY_PATH="$prefix/lib" "$work/pkg_config_consumer" "$models/transformer_tiny.onnx" |
    tee "$work/pkg_config_consumer.out" &&
      grep -q '^output float32 \[1, 16, 64\]:' "$work/pkg_config_consumer.out"
}
run_check //examples/pkg_config_consumer pkg_config_consumer

server="$work/http_server/kiln_http_server"
build_server() {
  cmake -S examples/http_server -B "$work/http_server" -DCMAKE_PREFIX_PATH="$prefix" &&
    cmake --build "$work/http_server" -j2
}
if run_check //examples/http_server:build build_server; then
  run_check //examples/http_server:requests examples/http_server/test_requests.sh "$server" "$models"
  run_check //examples/http_server:load_test ./tools/load_test.sh --short --server "$server" --models "$models"
  cat "$work/__examples_http_server_load_test.log" 2>/dev/null | sed -n '/^load_test: transformer/,$p'
fi

if [ "$failures" -ne 0 ]; then
  echo "test_examples: $failures checks failed"
  exit 1
fi
echo "test_examples: all checks passed"
