-- wrk script for the benchmarks (bench/loadgen.py's `wrk_closed_loop` and
-- `wrk_paced` write the first two lines, `local COUNT_STATUSES = ...` and
-- `local THREAD_INTERVAL_MS = ...`, and run it as `wrk -s`).
--
-- Arguments after `--`: a file of targets, one per line "host<TAB>path<TAB>client"
-- (client: an X-Forwarded-For address or empty), and "bust" for a query string of
-- its own on every request (`?b=<thread>-<n>`, a cache-busting flood). Threads take
-- the targets in turn, each from its own offset. At the end one line
-- `WRK_JSON {...}`: requests, duration, errors, latency percentiles and, when
-- COUNT_STATUSES, the count of every status (parsing each response costs wrk a
-- little; the validity checks need it).
--
-- Paced (THREAD_INTERVAL_MS not nil): each thread sends one request every
-- THREAD_INTERVAL_MS on whichever of its connections is free. wrk asks `delay()`
-- before every request of a connection and counts the delay from that connection's
-- previous answer, so a fixed delay would slow down with the server; `delay()`
-- instead hands the request the thread's next slot on the monotonic clock (LuaJIT's
-- ffi, as wrk has no clock of its own) and returns the time until it, 0 when the
-- slot has passed (every connection was waiting: the late request goes at once).

local targets = {}
local counter = 0
local bust = false
local threads = {}
statuses = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

function init(args)
  for line in io.lines(args[1]) do
    local host, path, client = line:match("^([^\t]*)\t([^\t]*)\t?(.*)$")
    if host then
      local headers = { Host = host }
      if client ~= nil and client ~= "" then
        headers["X-Forwarded-For"] = client
      end
      table.insert(targets, {
        path = path,
        headers = headers,
        request = wrk.format("GET", path, headers),
      })
    end
  end
  bust = args[2] == "bust"
  counter = ((thread_number or 1) - 1) * 7919
end

function request()
  counter = counter + 1
  local target = targets[(counter % #targets) + 1]
  if bust then
    local separator = target.path:find("?", 1, true) and "&" or "?"
    return wrk.format(
      "GET",
      target.path .. separator .. "b=" .. (thread_number or 1) .. "-" .. counter,
      target.headers
    )
  end
  return target.request
end

if THREAD_INTERVAL_MS then
  local ffi = require("ffi")
  ffi.cdef([[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clock_id, bench_timespec *tp);
  ]])
  local CLOCK_MONOTONIC = 1
  local clock = ffi.new("bench_timespec")
  local next_slot = nil

  local function now_ms()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
    return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
  end

  function delay()
    local now = now_ms()
    next_slot = next_slot or now
    local slot = next_slot
    next_slot = next_slot + THREAD_INTERVAL_MS
    -- whole milliseconds (wrk's timer); never negative (wrk reads it unsigned)
    return math.max(0, math.floor(slot - now + 0.5))
  end
end

if COUNT_STATUSES then
  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local theirs = thread:get("statuses") or {}
    for status, count in pairs(theirs) do
      counts[tostring(status)] = (counts[tostring(status)] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(counts) do
    table.insert(parts, string.format('"%s": %d', status, count))
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, '
      .. '"timeout": %d}, "latency_us": {"min": %d, "mean": %.1f, "max": %d, '
      .. '"p50": %d, "p90": %d, "p99": %d, "p999": %d}, "statuses": {%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9),
    table.concat(parts, ", ")
  ))
end
