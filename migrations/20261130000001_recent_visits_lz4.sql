-- Each link's newest visits (ten, about 2.5 KB of JSON) are over PostgreSQL's
-- 2 KB threshold, so every worker batch that touches a link decompresses and
-- recompresses its array. pglz, the default, made that the worker's second
-- largest cost per link; lz4 does the same work in about 40 % less time
-- (50,000 upserts of full arrays: 870 ms against 490 ms, docs/performance.md).
-- The rollup rows' dimension counts take lz4 too once they grow that large.
--
-- Catalog only: no rewrite, a brief lock, safe on a live database. Stored values
-- keep pglz until their next update (both are read). Servers built without lz4,
-- or older than PostgreSQL 14, keep pglz.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        ALTER TABLE link_recent_visits ALTER COLUMN visits SET COMPRESSION lz4;
        ALTER TABLE link_rollups_hourly ALTER COLUMN human_by SET COMPRESSION lz4,
                                        ALTER COLUMN bot_by SET COMPRESSION lz4;
        ALTER TABLE link_rollups_daily ALTER COLUMN human_by SET COMPRESSION lz4,
                                       ALTER COLUMN bot_by SET COMPRESSION lz4;
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available on this server; newest visits keep pglz';
END
$$;
