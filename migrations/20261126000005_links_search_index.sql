-- no-transaction
-- Built without blocking writes; see 20261126000002 for why one index per file.
-- IF NOT EXISTS: an interrupted build leaves an INVALID index; drop it and
-- migrate again.
-- GET /v1/links?search=: substring match on phrase or target (ILIKE).
CREATE INDEX CONCURRENTLY IF NOT EXISTS links_search_trgm ON links USING gin (phrase gin_trgm_ops, target_url gin_trgm_ops);
