-- wrk script for the benchmarks (bench/loadgen.py's `wrk_closed_loop` writes the
-- first line, `local COUNT_STATUSES = ...`, and runs it as `wrk -s`).
--
-- Arguments after `--`: a file of targets, one per line "host<TAB>path<TAB>client"
-- (client: an X-Forwarded-For address or empty), and "bust" for a query string of
-- its own on every request (`?b=<thread>-<n>`, a cache-busting flood). Threads take
-- the targets in turn, each from its own offset. At the end one line
-- `WRK_JSON {...}`: requests, duration, errors, latency percentiles and, when
-- COUNT_STATUSES, the count of every status (parsing each response costs wrk a
-- little; the validity checks need it).

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
