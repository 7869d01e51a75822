#!/usr/bin/env bash
# Load test of the HTTP serving example while kiln's JIT tiers up.
#
#   tools/load_test.sh [--short] [--duration S] [--connections N]
#                      [--server BIN] [--models DIR] [--model NAME]
#                      [--batch N]
#
# Starts examples/http_server on 127.0.0.1 (a free port; loopback only) and
# drives POST /v1/models/NAME:predict with wrk (tools/wrk_predict.lua), one
# fixed .npy input (the model's reference input repeated --batch times
# along its first dim, default 16), in three bounded phases:
#   1. interpreter only: a server started with --tier interp, the
#      latency before any tier-up (--baseline-seconds, default 5);
#   2. tier-up: a fresh --tier auto server, from its first request until
#      every region has a compiled (or declined, or failed) specialization
#      as /metrics tells, while the JIT compiles in the background under
#      the load (at most --tierup-max-seconds, default 60);
#   3. after tier-up: the same server, --duration seconds (default 20).
# Prints QPS, p50, p99 and errors per phase, with the regions compiled, and
# exits non-zero if any request failed (a socket error, a timeout or a
# non-2xx answer) or the server did not exit cleanly on SIGTERM.
# --short: phase 1 for 1 s, phase 2 for at most 20 s, phase 3 for 3 s; for
# the test command.
#
# Without --server it installs kiln into a temporary prefix and builds the
# example; without --models it builds //tools:demo_models. The default model
# is transformer_tiny, whose LayerNorm, GELU and GEMM regions the JIT compiles;
# at batch 16 a run's compute outweighs the HTTP work around it, so the
# tiers differ visibly (at batch 1 HTTP dominates). Models with a fixed
# batch dim (mlp, cnn_small) need --batch 1.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=20
connections=8
baseline_seconds=5
tierup_max_seconds=60
server_bin=
models_dir=
model=transformer_tiny
batch=16
while [ $# -gt 0 ]; do
  case $1 in
    --short) duration=3 baseline_seconds=1 tierup_max_seconds=20 ;;
    --duration) duration=$2; shift ;;
    --connections) connections=$2; shift ;;
    --baseline-seconds) baseline_seconds=$2; shift ;;
    --tierup-max-seconds) tierup_max_seconds=$2; shift ;;
    --server) server_bin=$2; shift ;;
    --models) models_dir=$2; shift ;;
    --model) model=$2; shift ;;
    --batch) batch=$2; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "load_test: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

work=$(mktemp -d)
server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    local status=0
    wait "$server_pid" || status=$?
    server_pid=
    return "$status"
  fi
}
trap 'stop_server || true; rm -rf "$work"' EXIT

if [ -z "$models_dir" ]; then
  bazel build //tools:demo_models >/dev/null 2>&1 || bazel build //tools:demo_models
  models_dir="$(bazel info bazel-bin)/tools"
fi
if [ -z "$server_bin" ]; then
  ./tools/install.sh "$work/prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
  cmake -S examples/http_server -B "$work/server_build" -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/cmake.log" &&
    cmake --build "$work/server_build" -j2 >>"$work/cmake.log" || { cat "$work/cmake.log"; exit 1; }
  server_bin="$work/server_build/kiln_http_server"
fi
body="$work/body.npy"
/usr/bin/python3 - "$models_dir/${model}_input_0.npy" "$batch" "$body" <<'PY'
import sys
import numpy as np
x = np.load(sys.argv[1])
np.save(sys.argv[3], np.concatenate([x] * int(sys.argv[2])))
PY
mkdir "$work/models"
cp "$models_dir/$model.onnx" "$work/models/"

start_server() {  # start_server TIER
  : >"$work/server.log"
  "$server_bin" --models "$work/models" --port 0 --tier "$1" >"$work/server.log" 2>&1 &
  server_pid=$!
  port=
  for _ in $(seq 200); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$work/server.log")
    [ -n "$port" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "load_test: the server did not start" >&2
  cat "$work/server.log" >&2
  exit 1
}

metric() {  # metric NAME: its value for the model, from /metrics
  curl -sf "http://127.0.0.1:$port/metrics" | awk -v name="$1{model=\"$model\"}" '$1 == name { print $2 }'
}

total_errors=0
declare -a rows
start_wrk() {  # start_wrk SECONDS: wrk in the background, its pid in wrk_pid
  KILN_BODY="$body" wrk -t 2 -c "$connections" -d "${1}s" --timeout 5s -s tools/wrk_predict.lua \
    "http://127.0.0.1:$port/v1/models/$model:predict" >"$work/wrk.log" 2>&1 &
  wrk_pid=$!
}

record_phase() {  # record_phase LABEL JIT_NOTE: reads the finished wrk's RESULT line
  local label=$1
  wait "$wrk_pid" || true
  local result
  result=$(grep '^RESULT ' "$work/wrk.log" || true)
  if [ -z "$result" ]; then
    echo "load_test: wrk gave no result:" >&2
    cat "$work/wrk.log" >&2
    exit 1
  fi
  field() { echo "$result" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  local errors=$(($(field connect_errors) + $(field read_errors) + $(field write_errors) + $(field timeouts) +
    $(field http_errors)))
  total_errors=$((total_errors + errors))
  rows+=("$(printf '%-38s %6s %9s %9s %8s %8s %8s %7s  %s' "$label" "$(field seconds)" "$(field requests)" \
    "$(field qps)" "$(field p50_ms)" "$(field p99_ms)" "$(field max_ms)" "$errors" "$2")")
}

# Whether every region has an outcome: a compiled, declined or failed
# specialization (one input shape here, so one signature per region).
tier_up_done() {
  local regions outcomes
  regions=$(metric kiln_model_regions)
  outcomes=$(($(metric kiln_model_jit_specializations) + $(metric kiln_model_jit_declined_total) +
    $(metric kiln_model_jit_failed_compiles_total)))
  [ "${regions:-0}" -gt 0 ] && [ "$outcomes" -ge "$regions" ]
}

compiled_note() {
  local compiled regions compile_seconds
  compiled=$(metric kiln_model_regions_compiled)
  regions=$(metric kiln_model_regions)
  compile_seconds=$(metric kiln_model_jit_compile_seconds_total)
  printf '%s of %s compiled (%.0f ms compiling)' "${compiled%.*}" "${regions%.*}" \
    "$(awk -v s="${compile_seconds:-0}" 'BEGIN { print s * 1000 }')"
}

# 1. The interpreter alone.
start_server interp
start_wrk "$baseline_seconds"
record_phase "interpreter only (--tier interp)" "JIT off"
stop_server || { echo "load_test: the interp server did not exit cleanly" >&2; exit 1; }

# 2. A fresh server tiering up under the load: wrk runs until /metrics
# shows every region settled, then stops on SIGINT (it still reports).
start_server auto
before=$(compiled_note)
start_wrk "$tierup_max_seconds"
settled=no
while kill -0 "$wrk_pid" 2>/dev/null; do
  sleep 0.25
  if tier_up_done; then
    settled=yes
    kill -INT "$wrk_pid" 2>/dev/null || true
    break
  fi
done
record_phase "tier-up (--tier auto, until settled)" "$before -> $(compiled_note)"
if [ "$settled" != yes ]; then
  echo "load_test: the JIT had not settled after ${tierup_max_seconds} s; 'after tier-up' may still include it"
fi

# 3. The same server after tier-up.
start_wrk "$duration"
record_phase "after tier-up" "$(compiled_note)"
deopts=$(metric kiln_model_deopts_total)
server_status=0
stop_server || server_status=$?

isa=$(grep -o 'avx512[a-z]*\|avx2\|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')
shape=$(/usr/bin/python3 -c 'import sys, numpy; print(list(numpy.load(sys.argv[1]).shape))' "$body")
echo "load_test: $model, input $shape, $connections connections, wrk -t 2, 127.0.0.1; $(nproc) cores; ISA: $isa"
printf '%-38s %6s %9s %9s %8s %8s %8s %7s  %s\n' phase seconds requests QPS "p50 ms" "p99 ms" "max ms" errors \
  "JIT regions"
printf '%s\n' "${rows[@]}"
echo "deopts after the run: ${deopts%.*}; server exit status on SIGTERM: $server_status"
if [ "$total_errors" -ne 0 ] || [ "$server_status" -ne 0 ]; then
  echo "load_test: FAILED ($total_errors failed requests)"
  exit 1
fi
echo "load_test: 0 errors"
