#!/usr/bin/env bash
# Request tests of kiln_http_server: a valid request in each form checked
# against numpy's answer, one request per error class (each must get its
# 4xx or 5xx with a JSON error, and the server must stay up), the metrics,
# and a SIGTERM that arrives while a request is in flight.
#
#   test_requests.sh SERVER_BINARY MODEL_DATA_DIR
#
# MODEL_DATA_DIR holds tools/make_models.py's output (mlp.onnx,
# transformer_tiny.onnx and their _input_0/_expected_0 .npy files). The
# server listens on 127.0.0.1 only, on a port the system picks. Prints one
# line per check and exits non-zero if any failed.
set -uo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 SERVER_BINARY MODEL_DATA_DIR" >&2
  exit 2
fi
server_bin=$1
data=$2
python=/usr/bin/python3  # Debian's, with python3-numpy
work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

failures=0
check() {  # check NAME COMMAND...: runs the command, reports
  local name=$1
  shift
  if "$@" >"$work/check.log" 2>&1; then
    echo "ok   $name"
  else
    echo "FAIL $name"
    sed 's/^/     /' "$work/check.log"
    failures=$((failures + 1))
  fi
}

mkdir "$work/models"
cp "$data/mlp.onnx" "$data/transformer_tiny.onnx" "$work/models/"

# --tier jit compiles every region at the first run: the valid requests then
# also show that JIT code runs from inside libkiln.so.
"$server_bin" --models "$work/models" --port 0 --tier jit --max-body-bytes 1048576 >"$work/server.log" 2>&1 &
server_pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$work/server.log")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "FAIL server did not start"
  cat "$work/server.log"
  exit 1
fi
base="http://127.0.0.1:$port"

# post NAME CONTENT_TYPE BODY_FILE [curl args...]: writes the body to
# $work/NAME.out and prints the HTTP status.
post() {
  local name=$1 type=$2 body=$3
  shift 3
  curl -s -o "$work/$name.out" -w '%{http_code}' -H "Content-Type: $type" --data-binary @"$body" "$@"
}

# expect_error NAME STATUS ERROR_CODE CONTENT_TYPE BODY_FILE URL [curl args...]
expect_error() {
  local name=$1 status=$2 code=$3 type=$4 body=$5 url=$6
  shift 6
  local got
  got=$(post "$name" "$type" "$body" "$url" "$@")
  if [ "$got" != "$status" ]; then
    echo "HTTP $got, expected $status: $(head -c 300 "$work/$name.out")"
    return 1
  fi
  "$python" - "$work/$name.out" "$code" <<'PY'
import json, sys
body = json.load(open(sys.argv[1]))
error = body["error"]
assert error["code"] == sys.argv[2], "error code %s, expected %s" % (error["code"], sys.argv[2])
assert error["message"], "empty message"
print(error["code"], "-", error["message"])
PY
}

# --- valid requests, checked against the numpy reference outputs ---
valid_npy() {
  local status
  status=$(post tt application/x-npy "$data/transformer_tiny_input_0.npy" "$base/v1/models/transformer_tiny:predict")
  [ "$status" = 200 ] || { echo "HTTP $status: $(head -c 300 "$work/tt.out")"; return 1; }
  "$python" - "$work/tt.out" "$data/transformer_tiny_expected_0.npy" <<'PY'
import sys
import numpy as np
got, want = np.load(sys.argv[1]), np.load(sys.argv[2])
assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype)
err = float(np.abs(got - want).max())
assert err < 1e-4, "max abs error %g" % err
print("max abs error vs numpy: %g" % err)
PY
}
check "npy request: transformer_tiny output matches numpy" valid_npy

"$python" - "$data/mlp_input_0.npy" >"$work/mlp.json" <<'PY'
import json, sys
import numpy as np
x = np.load(sys.argv[1])
print(json.dumps({"inputs": {"x": {"shape": list(x.shape), "data": x.ravel().tolist()}}}))
PY
valid_json() {
  local status
  status=$(post mlp application/json "$work/mlp.json" "$base/v1/models/mlp:predict")
  [ "$status" = 200 ] || { echo "HTTP $status: $(head -c 300 "$work/mlp.out")"; return 1; }
  "$python" - "$work/mlp.out" "$data/mlp_expected_0.npy" <<'PY'
import json, sys
import numpy as np
y = json.load(open(sys.argv[1]))["outputs"]["y"]
want = np.load(sys.argv[2])
assert y["dtype"] == "float32" and y["shape"] == list(want.shape), (y["dtype"], y["shape"])
err = float(np.abs(np.array(y["data"]).reshape(y["shape"]) - want).max())
assert err < 1e-4, "max abs error %g" % err
print("max abs error vs numpy: %g" % err)
PY
}
check "json request: mlp output matches numpy" valid_json

list_models() {
  curl -sf "$base/v1/models" >"$work/models.json" || return 1
  "$python" - "$work/models.json" <<'PY'
import json, sys
models = {m["name"]: m for m in json.load(open(sys.argv[1]))["models"]}
assert sorted(models) == ["mlp", "transformer_tiny"], sorted(models)
assert models["mlp"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": [2, 32]}], models["mlp"]["inputs"]
assert models["transformer_tiny"]["inputs"][0]["shape"] == ["batch", 16, 64]
print("models:", ", ".join(sorted(models)))
PY
}
check "GET /v1/models lists inputs and outputs" list_models
check "GET /healthz" curl -sf "$base/healthz"

# --- one request per error class ---
printf '{"inputs": {"x": ' >"$work/truncated.json"
printf 'not a npy file' >"$work/garbage.npy"
head -c 100 "$data/mlp_input_0.npy" >"$work/truncated.npy"
"$python" - "$data/mlp_input_0.npy" "$work" <<'PY'
import json, sys
import numpy as np
x = np.load(sys.argv[1])
out = sys.argv[2]
np.save(out + "/float64.npy", x.astype(np.float64))
np.save(out + "/wrong_shape.npy", x[:, :16])
json.dump({"inputs": {"x": {"shape": [2, 16], "data": x[:, :16].ravel().tolist()}}}, open(out + "/wrong_shape.json", "w"))
json.dump({"inputs": {"x": {"shape": [2, 32], "dtype": "int64", "data": [1] * 64}}}, open(out + "/wrong_dtype.json", "w"))
json.dump({"inputs": {"x": {"shape": [2, 32], "data": [0.5] * 63}}}, open(out + "/short_data.json", "w"))
json.dump({"inputs": {"nope": {"shape": [1], "data": [1]}}}, open(out + "/unknown_input.json", "w"))
json.dump({"inputs": {"x": {"shape": [2**62, 4], "data": []}}}, open(out + "/huge_shape.json", "w"))
# Nested 100000 deep: the parser must neither recurse that deep nor accept it as data.
open(out + "/deep.json", "w").write('{"inputs": {"x": {"shape": [2, 32], "data": ' + "[" * 100000 + "]" * 100000 + "}}}")
np.save(out + "/big.npy", np.zeros((1, 512, 1024), np.float32))  # 2 MiB > the 1 MiB limit
PY
mlp="$base/v1/models/mlp:predict"
check "unknown model -> 404" expect_error unknown_model 404 NOT_FOUND application/json "$work/mlp.json" \
  "$base/v1/models/no_such_model:predict"
check "unknown route -> 404" expect_error unknown_route 404 NOT_FOUND application/json "$work/mlp.json" "$base/v2/predict"
check "malformed JSON -> 400" expect_error bad_json 400 INVALID_ARGUMENT application/json "$work/truncated.json" "$mlp"
check "unknown input name -> 400" expect_error unknown_input 400 INVALID_ARGUMENT application/json \
  "$work/unknown_input.json" "$mlp"
check "JSON data length != shape -> 400" expect_error short_data 400 INVALID_ARGUMENT application/json \
  "$work/short_data.json" "$mlp"
check "JSON shape too large to hold -> 400" expect_error huge_shape 400 INVALID_ARGUMENT application/json \
  "$work/huge_shape.json" "$mlp"
check "JSON nested 100000 deep -> 400" expect_error deep 400 INVALID_ARGUMENT application/json "$work/deep.json" "$mlp"
check "JSON wrong shape -> 400" expect_error wrong_shape_json 400 INVALID_ARGUMENT application/json \
  "$work/wrong_shape.json" "$mlp"
check "JSON wrong dtype -> 400" expect_error wrong_dtype_json 400 INVALID_ARGUMENT application/json \
  "$work/wrong_dtype.json" "$mlp"
check "malformed npy -> 400" expect_error garbage_npy 400 INVALID_ARGUMENT application/x-npy "$work/garbage.npy" "$mlp"
check "truncated npy -> 400" expect_error truncated_npy 400 INVALID_ARGUMENT application/x-npy "$work/truncated.npy" \
  "$mlp"
check "npy wrong dtype (float64) -> 400" expect_error float64_npy 400 INVALID_ARGUMENT application/x-npy \
  "$work/float64.npy" "$mlp"
check "npy wrong shape -> 400" expect_error wrong_shape_npy 400 INVALID_ARGUMENT application/x-npy \
  "$work/wrong_shape.npy" "$mlp"
check "unknown output name -> 400" expect_error unknown_output 400 INVALID_ARGUMENT application/x-npy \
  "$data/mlp_input_0.npy" "$mlp?output=nope"
check "oversized body -> 413" expect_error big 413 PAYLOAD_TOO_LARGE application/x-npy "$work/big.npy" "$mlp"
check "unsupported Content-Type -> 415" expect_error text 415 UNSUPPORTED_MEDIA_TYPE text/plain "$work/mlp.json" "$mlp"
check "malformed X-Kiln-Deadline-Ms -> 400" expect_error bad_deadline 400 INVALID_ARGUMENT application/json \
  "$work/mlp.json" "$mlp" -H "X-Kiln-Deadline-Ms: soon"
check "passed deadline -> 504" expect_error deadline 504 DEADLINE_EXCEEDED application/x-npy \
  "$data/transformer_tiny_input_0.npy" "$base/v1/models/transformer_tiny:predict" -H "X-Kiln-Deadline-Ms: 0.0001"
check "server still healthy after the errors" curl -sf "$base/healthz"

metrics() {
  curl -sf "$base/metrics" >"$work/metrics.txt" || return 1
  local value
  for line in 'kiln_http_responses_total{code="200"}' 'kiln_http_responses_total{code="400"}' \
    'kiln_http_responses_total{code="413"}' 'kiln_predict_errors_total{model="mlp"}' \
    'kiln_predict_latency_seconds_count{model="mlp"}' 'kiln_model_regions_compiled{model="transformer_tiny"}'; do
    value=$(grep -F "$line " "$work/metrics.txt" | awk '{print $2}')
    echo "$line $value"
    [ -n "$value" ] && [ "$value" != 0 ] || { echo "missing or zero: $line"; return 1; }
  done
  grep -q '^# TYPE kiln_predict_latency_seconds histogram$' "$work/metrics.txt"
}
check "GET /metrics counts requests, errors, latency and compiled regions" metrics

# --- SIGTERM while a request is in flight: it completes, then the server exits 0 ---
"$python" - "$work/slow.npy" <<'PY'
import sys
import numpy as np
np.save(sys.argv[1], np.random.default_rng(0).standard_normal((32, 16, 64)).astype(np.float32))  # 128 KiB
PY
drain() {
  # 128 KiB at 64 KiB/s: the upload is still going when SIGTERM comes.
  curl -s -o "$work/slow.out" -w '%{http_code}' --limit-rate 64K -H 'Content-Type: application/x-npy' \
    --data-binary @"$work/slow.npy" "$base/v1/models/transformer_tiny:predict" >"$work/slow.status" &
  local client=$!
  sleep 0.7
  kill -TERM "$server_pid"
  local signalled=$EPOCHREALTIME
  wait "$client"
  local answered=$EPOCHREALTIME
  local server_status=0
  wait "$server_pid" || server_status=$?
  server_pid=
  local after
  after=$(awk -v a="$answered" -v s="$signalled" 'BEGIN { printf "%.2f", a - s }')
  echo "in-flight request: HTTP $(cat "$work/slow.status"), answered $after s after SIGTERM;" \
    "server exit status $server_status"
  grep -h "kiln_http_server:" "$work/server.log"
  [ "$(cat "$work/slow.status")" = 200 ] && [ "$server_status" = 0 ] &&
    awk -v after="$after" 'BEGIN { exit !(after > 0.3) }'
}
check "SIGTERM drains the in-flight request, then exits 0" drain

if [ "$failures" -ne 0 ]; then
  echo "test_requests: $failures checks failed"
  exit 1
fi
echo "test_requests: all checks passed"
