-- Rollup rows are updated in place many times (once per worker batch that
-- carries their link and bucket). Room left on each page lets the new row
-- version stay on it: the rollup tables' only index is their key, which these
-- updates never change, so they become HOT updates (no index entry per update)
-- and pages are pruned in place. Takes effect for pages written from now on;
-- a light lock, safe on a live database.
ALTER TABLE link_rollups_hourly SET (fillfactor = 70);
ALTER TABLE link_rollups_daily SET (fillfactor = 70);
ALTER TABLE service_visits_hourly SET (fillfactor = 70);
ALTER TABLE service_visits_daily SET (fillfactor = 70);
