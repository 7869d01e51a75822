#!/usr/bin/env bash
# Installs what is missing and runs every test: the README's second command.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install_deps.sh
# Two test jobs at a time: one per core of the CI machine; the concurrency
# tests start threads of their own.
bazel test //... --test_output=errors --local_test_jobs=2
# Then check kiln the way a program outside the repo uses it: install into
# a temporary prefix, check the library's exports, build the CMake and
# pkg-config consumers and the HTTP serving example against it, run the
# server's request tests and a short load test. One "//... PASSED/FAILED"
# line each.
# A failure here still lets the sanitizer suite run; the exit status says.
examples_status=0
./tools/test_examples.sh || examples_status=$?
# Then the sanitizer suite (ASan + UBSan, clang-19) and a bounded fuzzing run
# of each libFuzzer target (see the script; it builds in its own output base).
./tools/sanitize_and_fuzz.sh 120
exit "$examples_status"
