#!/usr/bin/env bash
# kiln's main job, end to end: installs what is missing, builds the `kiln`
# tool and the demo models (generated with fixed-seed weights), then runs
# the demo transformer and CNN, printing output shapes, checksums, the JIT's
# tier-up (regions compiled, latency before and after) and the latency and
# throughput of the tiered-up model. The README's first command.
#
# --wait-for-jit is what makes the tier-up visible: without it the timed
# runs of a model this small end before the background compiles do, and
# every run is interpreted.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install_deps.sh
bazel build -c opt //:kiln //tools:demo_models
bin=$(bazel info -c opt bazel-bin 2>/dev/null)
out=$(mktemp -d)
trap 'rm -rf "${out}"' EXIT
"${bin}/tools/kiln" --version
for model in transformer_tiny cnn_small; do
  echo
  echo "== ${model}"
  "${bin}/tools/kiln" run "${bin}/tools/${model}.onnx" \
      --input "input=${bin}/tools/${model}_input_0.npy" \
      --output-dir "${out}/${model}" --warmup 5 --wait-for-jit --duration 2 --threads 1
done
