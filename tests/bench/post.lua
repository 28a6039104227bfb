-- POST one JSON body over and over; wrk reads each whole response (streams included) before
-- counting it. Everything comes from the environment so one script serves every scenario.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if os.getenv("BENCH_AUTH") == "x-api-key" then
  wrk.headers["x-api-key"] = key
else
  wrk.headers["Authorization"] = "Bearer " .. key
end
local version = os.getenv("BENCH_ANTHROPIC_VERSION")
if version and version ~= "" then
  wrk.headers["anthropic-version"] = version
end

-- One machine-readable line for tests/bench/run.py (latencies in microseconds).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
