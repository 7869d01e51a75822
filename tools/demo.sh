#!/usr/bin/env bash
# kiln's main job, end to end: installs what is missing, builds the `kiln`
# tool and the demo models (generated with fixed-seed weights), then runs
# the demo transformer and CNN, printing output shapes, checksums, the JIT's
# tier-up (regions compiled, latency before and after), whether compiling
# paid off (break-even), the code cache, and the latency and throughput of
# the tiered-up model. The README's first command.
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
# Each model runs twice, as two processes sharing a JIT code cache folder:
# the first compiles its hot regions and stores them, the second (a restart,
# or another replica) links them from the folder instead of compiling.
for model in transformer_tiny cnn_small; do
  for start in "cold code cache" "warm code cache: a new process links what the first compiled"; do
    echo
    echo "== ${model}, ${start}"
    "${bin}/tools/kiln" run "${bin}/tools/${model}.onnx" \
        --input "input=${bin}/tools/${model}_input_0.npy" \
        --output-dir "${out}/${model}" --warmup 5 --wait-for-jit --duration 2 --threads 1 \
        --jit-cache "${out}/jit-cache"
  done
done
