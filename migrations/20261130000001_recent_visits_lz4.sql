-- Each link's newest visits (ten, about 2.5 KB of JSON) are over PostgreSQL's
-- 2 KB threshold, so every worker batch that touches a link decompresses and
-- recompresses its array. pglz, the default, made that the worker's second
-- largest cost per link; lz4 does the same work in about 40 % less time
-- (50,000 upserts of full arrays: 870 ms against 490 ms, docs/performance.md).
-- The rollup rows' dimension counts take lz4 too once they grow that large.
--
-- Catalog only, no rewrite: stored values keep pglz until their next update
-- (both are read). Each ALTER takes its table's exclusive lock until the
-- migration commits; a worker batch holds these tables for a few seconds, so
-- the lock waits at most 5 s and the migration fails rather than queue every
-- reader behind it (run it again). Servers older than PostgreSQL 14 (no such
-- syntax, hence EXECUTE) or built without lz4 keep pglz.
SET LOCAL lock_timeout = '5s';
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'ALTER TABLE link_recent_visits ALTER COLUMN visits SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE link_rollups_hourly ALTER COLUMN human_by SET COMPRESSION lz4, '
                'ALTER COLUMN bot_by SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE link_rollups_daily ALTER COLUMN human_by SET COMPRESSION lz4, '
                'ALTER COLUMN bot_by SET COMPRESSION lz4';
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available on this server; newest visits keep pglz';
END
$$;
