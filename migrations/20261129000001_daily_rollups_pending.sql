-- The worker stops upserting `link_rollups_daily` per batch (a third of its
-- per-link JSON merges); a link's daily rows are compacted from its hourly rows
-- once a day has closed. `daily_pending_from` is the start of the earliest UTC
-- day whose daily row is not yet complete: reads take days from it on from the
-- hourly rows. NULL: every daily row is complete (all rows from before this
-- release, whose daily rows the worker wrote itself). Adding a nullable column
-- without a default does not rewrite the table.
ALTER TABLE visit_summaries ADD COLUMN IF NOT EXISTS daily_pending_from timestamptz;

COMMENT ON COLUMN visit_summaries.daily_pending_from IS
    'Start of the earliest UTC day whose link_rollups_daily row is not complete (read from the hourly rows); NULL when all are complete.';
