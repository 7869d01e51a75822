-- wrk script for tools/load_test.sh: every request POSTs the same .npy body
-- (the file named by KILN_BODY) to the URL given to wrk, and the run ends
-- with one machine-readable RESULT line.
local file = assert(io.open(os.getenv("KILN_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/x-npy"

function done(summary, latency, requests)
  local errors = summary.errors
  local seconds = summary.duration / 1e6
  -- wrk's latency statistics are in microseconds.
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f qps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
    "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d http_errors=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    errors.connect, errors.read, errors.write, errors.timeout, errors.status))
end
