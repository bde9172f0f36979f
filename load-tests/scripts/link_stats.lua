-- GET LT_PATH with the API key, expecting 200: one fixed request, e.g.
-- /v1/links/{phrase}/stats?granularity=day&from=...&to=... (the rollup-stats scenario).
dofile(os.getenv("LT_SCRIPTS") .. "/common.lua")

wrk.method = "GET"
wrk.path = assert(common.env("LT_PATH"), "LT_PATH is not set")
wrk.headers["X-Offnd-Api-Key"] = assert(common.env("LT_API_KEY"), "LT_API_KEY is not set")
