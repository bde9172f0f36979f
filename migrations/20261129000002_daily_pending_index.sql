-- no-transaction
-- Built without blocking writes; see 20261126000002 for why one index per file.
-- IF NOT EXISTS: an interrupted build leaves an INVALID index; drop it and
-- migrate again.
-- The compactor's queue: only links with a day to compact are in it, so an idle
-- run reads an empty index range whatever the number of links.
CREATE INDEX CONCURRENTLY IF NOT EXISTS visit_summaries_daily_pending
    ON visit_summaries (daily_pending_from) WHERE daily_pending_from IS NOT NULL;
