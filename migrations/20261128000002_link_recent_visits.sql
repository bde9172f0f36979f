-- Each link's newest visits in a table of their own. On `visit_summaries` the
-- JSON array was rewritten with the counts on every worker batch, and the
-- summaries' index on `total_visits` (for orderBy=visits) makes every such
-- update a new row version with new index entries: after a partial benchmark
-- run (sweeps over 100k links, a minute of uniform ingest) none of 775k updates
-- had been HOT and the table held 263 MB, nearly all dead versions. Here the
-- only index is the key, which updates never change, and room on each page
-- keeps the new versions beside the old (HOT). The summaries keep the small
-- counts only.
CREATE TABLE link_recent_visits (
    link_id uuid PRIMARY KEY REFERENCES links (id) ON DELETE CASCADE,
    -- Newest first, at most ten: [{"visitedAt", "ipAddress", "userAgent", "referrer", "bot"}].
    visits  jsonb NOT NULL
) WITH (fillfactor = 50);

INSERT INTO link_recent_visits (link_id, visits)
SELECT link_id, recent_visits FROM visit_summaries
WHERE recent_visits IS NOT NULL AND jsonb_array_length(recent_visits) > 0;

COMMENT ON COLUMN visit_summaries.recent_visits IS
    'Written by releases before link_recent_visits only; read by none since. Erasing a link''s visits empties it too.';
