#!/usr/bin/env bash
# Installs what is missing and runs every test: the README's second command.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install_deps.sh
# --local_test_jobs=1 keeps the conformance suite and the concurrency tests
# from competing for the machine's two cores.
bazel test //... --test_output=errors --local_test_jobs=2
