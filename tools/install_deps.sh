#!/usr/bin/env bash
# Installs kiln's build and test dependencies from Debian 12's archive.
# Idempotent: packages already present are skipped, so a warm machine pays
# only for a dpkg query.
set -euo pipefail

packages=(
  bazel-bootstrap
  build-essential
  clang-19
  libclang-rt-19-dev
  libomp-14-dev
  llvm-19-dev
  libdnnl-dev
  libspdlog-dev
  libfmt-dev
  nlohmann-json3-dev
  libbenchmark-dev
  googletest
  libgtest-dev
  libgmock-dev
  libonnx-dev
  libonnx-testdata
  libprotobuf-dev
  protobuf-compiler
  python3-onnx
  python3-numpy
  zlib1g-dev
  libzstd-dev
  # The installed-library checks (tools/test_examples.sh): the consumers,
  # the HTTP serving example and its load test.
  cmake
  pkg-config
  curl
  libcpp-httplib-dev
  wrk
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
