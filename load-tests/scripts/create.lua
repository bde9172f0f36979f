-- POST /v1/links, expecting 201. A static request (one body for every call):
-- English, theme none, kebab-case unless LT_CREATE_BODY overrides the JSON.
dofile(os.getenv("LT_SCRIPTS") .. "/common.lua")

wrk.method = "POST"
wrk.path = "/v1/links"
wrk.body = common.env("LT_CREATE_BODY",
  '{"targetUrl":"https://example.com/bench/created","languageId":0,"themeId":0,"formatId":0}')
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Offnd-Api-Key"] = assert(common.env("LT_API_KEY"), "LT_API_KEY is not set")
