-- no-transaction
-- Built without blocking writes; see 20261126000002 for why one index per file.
-- IF NOT EXISTS: an interrupted build leaves an INVALID index; drop it and
-- migrate again.
-- GET /v1/links?orderBy=visits-desc: most visited first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS visit_summaries_total ON visit_summaries (total_visits DESC, link_id);
