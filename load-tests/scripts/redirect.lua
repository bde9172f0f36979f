-- Redirect scenarios: GET /{phrase} (the short URL), expecting 301.
--   LT_MODE    hot      one link (a static request: wrk's cheapest path)
--              uniform  every request picks one of the seeded links at random
--              uniform1k  the same over the first 1,000 seeded links only
--              zipf     links by popularity rank, Zipf(s = LT_ZIPF_S, default 1.1):
--                       a pregenerated sequence, so request() only steps through it
--              miss     unknown phrases: random picks from a pool of LT_MISS_POOL
--                       (default 1000) phrases that do not exist; LT_MISS_POOL=0
--                       makes every request a new phrase
--              sweep    every seeded link once, in file order, then wrk exits at once
--                       (a cache warm-up: run it with -t1; it writes no summary)
--   LT_PREFIX  path before the phrase, "/" (default) or "/v1/redirects/"
--   LT_NONCE   makes this run's unknown phrases differ from earlier runs'
--   LT_CLEAN_STOP_S  (hot, uniform, uniform1k, zipf) seconds after its first request
--              each thread stops asking for seeded links and asks for one unknown
--              phrase instead (a 404, never a visit) until wrk stops. wrk forgets the
--              requests still in flight when its -d ends, which the server answered
--              and counted all the same; with a clean stop those are 404s, so wrk's
--              2xx/3xx count is exactly the 301s (visits) the server answered.
--              done() adds `tail_sent` and `last_load_request_unix` (when the last
--              redirect to a seeded link was sent).
dofile(os.getenv("LT_SCRIPTS") .. "/common.lua")

local mode = common.env("LT_MODE", "uniform")
local prefix = common.env("LT_PREFIX", "/")

if mode == "hot" then
  wrk.method = "GET"
  wrk.path = prefix .. common.encode(common.read_phrases(common.env("LT_LINKS"), 1)[1])
elseif mode == "uniform" or mode == "uniform1k" or mode == "zipf" then
  local reqs, n, seq, seq_len, i
  function init(args)
    common.seed()
    local phrases = common.read_phrases(common.env("LT_LINKS"), mode == "uniform1k" and 1000 or nil)
    n = #phrases
    reqs = {}
    for k = 1, n do reqs[k] = wrk.format("GET", prefix .. common.encode(phrases[k])) end
    if mode == "zipf" then
      -- Cumulative weights k^-s, then 2^18 inverse-CDF draws by binary search.
      local s = tonumber(common.env("LT_ZIPF_S", "1.1"))
      local cdf, total = {}, 0
      for k = 1, n do total = total + k ^ (-s); cdf[k] = total end
      seq_len = 262144
      seq = {}
      for j = 1, seq_len do
        local u, lo, hi = math.random() * total, 1, n
        while lo < hi do
          local mid = math.floor((lo + hi) / 2)
          if cdf[mid] < u then lo = mid + 1 else hi = mid end
        end
        seq[j] = lo
      end
      i = math.random(seq_len)
    end
  end
  if mode ~= "zipf" then
    function request() return reqs[math.random(n)] end
  else
    function request()
      i = i + 1
      if i > seq_len then i = 1 end
      return reqs[seq[i]]
    end
  end
elseif mode == "sweep" then
  local reqs, n, i
  function init(args)
    local phrases = common.read_phrases(common.env("LT_LINKS"))
    n = #phrases
    reqs = {}
    for k = 1, n do reqs[k] = wrk.format("GET", prefix .. common.encode(phrases[k])) end
    i = 0
  end
  function request()
    i = i + 1
    if i > n then os.exit(0) end -- wrk would otherwise sleep out its -d; no done()
    return reqs[i]
  end
elseif mode == "miss" then
  local pool_size = tonumber(common.env("LT_MISS_POOL", "1000"))
  local nonce = common.env("LT_NONCE", tostring(os.time()))
  local pool, counter
  function init(args)
    common.seed()
    counter = 0
    pool = {}
    for k = 1, pool_size do
      pool[k] = wrk.format("GET", prefix .. "lt-" .. nonce .. "-" .. k .. "-nobody")
    end
  end
  if pool_size > 0 then
    function request() return pool[math.random(pool_size)] end
  else
    function request()
      counter = counter + 1
      return wrk.format("GET", prefix .. "lt-" .. nonce .. "-" .. thread_id .. "-" .. counter .. "-nobody")
    end
  end
else
  error("unknown LT_MODE " .. mode)
end

local clean_stop = tonumber(common.env("LT_CLEAN_STOP_S", ""))
if clean_stop then
  assert(mode ~= "sweep" and mode ~= "miss", "LT_CLEAN_STOP_S needs a mode that asks for seeded links")
  local nonce = common.env("LT_NONCE", tostring(os.time()))
  local inner_init, inner_request = init, request
  if mode == "hot" then
    -- The static request as a dynamic one, so request() can switch.
    local path = wrk.path
    local req
    inner_init = function(args) req = wrk.format("GET", path) end
    inner_request = function() return req end
  end
  local started, tail_req
  tail_sent, last_load_request_at = 0, 0 -- globals: done() reads them with thread:get
  function init(args)
    if inner_init then inner_init(args) end
    tail_req = wrk.format("GET", prefix .. "lt-tail-" .. nonce .. "-" .. (thread_id or 0) .. "-nobody")
  end
  function request()
    local now = common.now()
    if started == nil then started = now end
    if now - started < clean_stop then
      last_load_request_at = now
      return inner_request()
    end
    tail_sent = tail_sent + 1
    return tail_req
  end
end
