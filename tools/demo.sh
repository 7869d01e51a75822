#!/usr/bin/env bash
# kiln's main job, end to end: installs what is missing, builds the `kiln`
# tool and the demo models (generated with fixed-seed weights), then runs
# the demo transformer and CNN, printing output shapes, checksums and
# latency. The README's first command.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install_deps.sh
bazel build -c opt //:kiln //tools:demo_models
bin=$(bazel info -c opt bazel-bin 2>/dev/null)
out=$(mktemp -d)
for model in transformer_tiny cnn_small; do
  echo "== ${model}"
  "${bin}/tools/kiln" run "${bin}/tools/${model}.onnx" \
      --input "input=${bin}/tools/${model}_input_0.npy" \
      --output-dir "${out}/${model}" --warmup 5 --iters 100 --threads 1
done
