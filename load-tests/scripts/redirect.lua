-- Redirect scenarios: GET /{phrase} (the short URL), expecting 301.
--   LT_MODE    hot      one link (a static request: wrk's cheapest path)
--              uniform  every request picks one of the seeded links at random
--              zipf     links by popularity rank, Zipf(s = LT_ZIPF_S, default 1.1):
--                       a pregenerated sequence, so request() only steps through it
--              miss     unknown phrases: random picks from a pool of LT_MISS_POOL
--                       (default 1000) phrases that do not exist; LT_MISS_POOL=0
--                       makes every request a new phrase
--              sweep    every seeded link once, in file order, then wrk exits at once
--                       (a cache warm-up: run it with -t1; it writes no summary)
--   LT_PREFIX  path before the phrase, "/" (default) or "/v1/redirects/"
--   LT_NONCE   makes this run's unknown phrases differ from earlier runs'
dofile(os.getenv("LT_SCRIPTS") .. "/common.lua")

local mode = common.env("LT_MODE", "uniform")
local prefix = common.env("LT_PREFIX", "/")

if mode == "hot" then
  wrk.method = "GET"
  wrk.path = prefix .. common.encode(common.read_phrases(common.env("LT_LINKS"), 1)[1])
elseif mode == "uniform" or mode == "zipf" then
  local reqs, n, seq, seq_len, i
  function init(args)
    common.seed()
    local phrases = common.read_phrases(common.env("LT_LINKS"))
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
  if mode == "uniform" then
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
