-- Mixed traffic: LT_CREATE_SHARE (default 0.10) of the requests are creates
-- (POST /v1/links, expecting 201), the rest redirects over the seeded links with
-- Zipf popularity (s = LT_ZIPF_S, default 1.1), expecting 301.
dofile(os.getenv("LT_SCRIPTS") .. "/common.lua")

local key = assert(common.env("LT_API_KEY"), "LT_API_KEY is not set")
local share = tonumber(common.env("LT_CREATE_SHARE", "0.10"))
local body = '{"targetUrl":"https://example.com/bench/mixed","languageId":0,"themeId":0,"formatId":0}'
local reqs, create, seq, seq_len, i
function init(args)
  common.seed()
  local phrases = common.read_phrases(common.env("LT_LINKS"))
  local n = #phrases
  reqs = {}
  for k = 1, n do reqs[k] = wrk.format("GET", "/" .. common.encode(phrases[k]), {}) end
  create = wrk.format("POST", "/v1/links",
    { ["Content-Type"] = "application/json", ["X-Offnd-Api-Key"] = key }, body)
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

function request()
  if math.random() < share then return create end
  i = i + 1
  if i > seq_len then i = 1 end
  return reqs[seq[i]]
end
