-- wrk script for the benchmark: POSTs one JSON body, counts the answers, and drains cleanly.
--
-- Counting: every thread counts the 2xx responses whose body is a logged prediction (it contains
-- MARKER) and every other answer; done() prints one JSON line that bench/run.py compares with the
-- log rows written. Draining: wrk stops at -d by dropping the requests still in flight, which the
-- server may already have logged, so that the counts can match exactly each connection switches
-- to GET DRAIN_PATH (logs nothing) for the last DRAIN seconds; by the end only those are in flight.
-- Latency: run with one connection per thread (-t = -c), so that each response answers the
-- thread's last request; the script times exactly the counted requests (wrk's own histogram
-- would mix in the drain requests).
--
-- Environment (wrk passes no arguments through to done(), so bench/run.py sets these):
--   BENCH_PATH, BENCH_BODY_FILE, BENCH_MARKER, BENCH_DURATION (s), BENCH_DRAIN (s),
--   BENCH_DRAIN_PATH, BENCH_HEADERS ("Name: value|Name: value").

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local function now()
  local ts = ffi.new("bench_timespec")
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local function readfile(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local path = os.getenv("BENCH_PATH")
local body = readfile(os.getenv("BENCH_BODY_FILE"))
local marker = os.getenv("BENCH_MARKER")
local duration = tonumber(os.getenv("BENCH_DURATION"))
local drain = tonumber(os.getenv("BENCH_DRAIN") or "0.5")
local drain_path = os.getenv("BENCH_DRAIN_PATH") or "/healthz"

local headers = { ["Content-Type"] = "application/json" }
for pair in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^|]+") do
  local name, value = string.match(pair, "^%s*([^:]+):%s*(.-)%s*$")
  headers[name] = value
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok, other, drained, sent = 0, 0, 0, 0
  samples, sent_at = {}, 0
  deadline = now() + duration - drain
  work = wrk.format("POST", path, headers, body)
  idle = wrk.format("GET", drain_path, headers)
end

function request()
  sent_at = now()
  if sent_at < deadline then
    sent = sent + 1
    return work
  end
  return idle
end

function response(status, hdrs, resp_body)
  local elapsed = now() - sent_at
  if status >= 200 and status < 300 and string.find(resp_body, marker, 1, true) then
    ok = ok + 1
    samples[ok] = elapsed
  elseif status == 200 then
    drained = drained + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total_ok, total_other, total_drained, total_sent = 0, 0, 0, 0
  local all = {}
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_other = total_other + thread:get("other")
    total_drained = total_drained + thread:get("drained")
    total_sent = total_sent + thread:get("sent")
    for _, value in ipairs(thread:get("samples")) do
      all[#all + 1] = value
    end
  end
  table.sort(all)
  local function pct(p)
    if #all == 0 then return 0 end
    return all[math.max(1, math.ceil(#all * p / 100))] * 1e6
  end
  local sum = 0
  for _, value in ipairs(all) do sum = sum + value end
  io.write(string.format(
    'BENCH_JSON {"ok": %d, "other": %d, "drained": %d, "sent": %d, "requests": %d, "duration_us": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %.0f, "p90": %.0f, "p99": %.0f, "max": %.0f, "mean": %.1f}}\n',
    total_ok, total_other, total_drained, total_sent, summary.requests, summary.duration,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout, pct(50), pct(90), pct(99), pct(100), #all > 0 and sum / #all * 1e6 or 0))
end
