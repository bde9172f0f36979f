-- Shared by every offndat wrk scenario script (each one starts with
-- `dofile(os.getenv("LT_SCRIPTS") .. "/common.lua")`).
--
-- Environment (set by bench.py; every script also runs by hand with wrk):
--   LT_OUT           file the done() hook writes its JSON summary to (stdout if unset)
--   LT_LINKS         links file, `phrase<TAB>target` per line (the seeded links)
--   LT_COUNT_STATUS  "1": count every response status in the response() hook. Exact,
--                    but wrk then hands each response to Lua, which costs it some
--                    throughput; "0" relies on wrk's own non-2xx/3xx counter.
--   LT_API_KEY       X-Offnd-Api-Key for the authenticated routes
common = {}

function common.env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

-- The phrases of the links file, in file order.
function common.read_phrases(path, limit)
  local phrases = {}
  local f = assert(io.open(assert(path, "LT_LINKS is not set"), "r"))
  for line in f:lines() do
    local phrase = line:match("^([^\t]+)")
    if phrase then
      phrases[#phrases + 1] = phrase
      if limit and #phrases >= limit then break end
    end
  end
  f:close()
  assert(#phrases > 0, "no phrases in " .. path)
  return phrases
end

-- Percent-encodes a path segment (phrases may hold non-ASCII letters).
function common.encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

-- Wall-clock seconds (Unix epoch, sub-millisecond through LuaJIT's ffi; whole
-- seconds from os.time() where ffi is missing). Comparable with Python's time.time().
do
  local ok, ffi = pcall(require, "ffi")
  if ok and pcall(ffi.cdef, "typedef struct { long tv_sec; long tv_nsec; } lt_timespec; "
      .. "int clock_gettime(int clk_id, lt_timespec *tp);") then
    local ts = ffi.new("lt_timespec")
    function common.now()
      ffi.C.clock_gettime(0, ts) -- CLOCK_REALTIME
      return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
    end
  else
    function common.now() return os.time() end
  end
end

-- One seed per thread, so threads do not replay the same sequence.
function common.seed()
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919 + math.floor(os.clock() * 1e6))
end

-- Status counting, per thread, merged in done().
statuses = {}
if common.env("LT_COUNT_STATUS", "0") == "1" then
  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
  end
end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("thread_id", #threads)
end

local function json_number(x)
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  if x == math.floor(x) and math.abs(x) < 1e15 then return string.format("%d", x) end
  return string.format("%.4f", x)
end

function done(summary, latency, requests)
  local merged, counted = {}, false
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if type(s) == "table" then
      for code, n in pairs(s) do
        merged[tostring(code)] = (merged[tostring(code)] or 0) + n
        counted = true
      end
    end
  end
  local parts = {}
  local function add(k, v) parts[#parts + 1] = string.format('"%s":%s', k, v) end
  local seconds = summary.duration / 1e6
  add("requests", json_number(summary.requests))
  add("duration_s", json_number(seconds))
  add("rps", json_number(summary.requests / seconds))
  add("bytes", json_number(summary.bytes))
  local e = summary.errors
  add("errors", string.format('{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}',
    e.connect, e.read, e.write, e.status, e.timeout))
  local ms = function(us) return json_number(us / 1000.0) end
  add("latency_ms", string.format(
    '{"p50":%s,"p75":%s,"p90":%s,"p95":%s,"p99":%s,"p999":%s,"max":%s,"mean":%s,"stdev":%s}',
    ms(latency:percentile(50)), ms(latency:percentile(75)), ms(latency:percentile(90)),
    ms(latency:percentile(95)), ms(latency:percentile(99)), ms(latency:percentile(99.9)),
    ms(latency.max), ms(latency.mean), ms(latency.stdev)))
  -- Clean stop (redirect.lua with LT_CLEAN_STOP_S): requests sent after the switch
  -- and the time of the last counted request, over all threads.
  local tail, last, clean = 0, nil, false
  for _, t in ipairs(threads) do
    local n = t:get("tail_sent")
    if type(n) == "number" then tail, clean = tail + n, true end
    local at = t:get("last_load_request_at")
    if type(at) == "number" and at > 0 and (last == nil or at > last) then last = at end
  end
  if clean then
    add("tail_sent", json_number(tail))
    add("last_load_request_unix", last and string.format("%.4f", last) or "null")
  end
  if counted then
    local codes = {}
    for code, n in pairs(merged) do codes[#codes + 1] = string.format('"%s":%d', code, n) end
    table.sort(codes)
    add("statuses", "{" .. table.concat(codes, ",") .. "}")
  else
    add("statuses", "null")
  end
  local text = "{" .. table.concat(parts, ",") .. "}\n"
  local path = common.env("LT_OUT", nil)
  if path then
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
  else
    io.write(text)
  end
end
