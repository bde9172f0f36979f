-- GET /v1/links/{phrase} with the API key, expecting 200: the link, its visit
-- total and its ten newest visits. Uniformly random over the seeded links.
dofile(os.getenv("LT_SCRIPTS") .. "/common.lua")

local key = assert(common.env("LT_API_KEY"), "LT_API_KEY is not set")
local reqs, n
function init(args)
  common.seed()
  local phrases = common.read_phrases(common.env("LT_LINKS"))
  n = #phrases
  reqs = {}
  for k = 1, n do
    reqs[k] = wrk.format("GET", "/v1/links/" .. common.encode(phrases[k]), { ["X-Offnd-Api-Key"] = key })
  end
end

function request() return reqs[math.random(n)] end
