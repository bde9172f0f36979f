-- Visit events are written as JSON text in `body` instead of `jsonb` in
-- `payload`. Each API flush writes megabytes of them (about 1 MB per 500 links
-- visited), and the relay only ever sends them on as text: parsing into jsonb
-- and compressing with pglz made the flush's INSERT cost PostgreSQL 650–750 ms
-- a second under uniform load over 100k links, and the relay's `payload::text`
-- another 170–340 ms. Text with lz4 does the same write in a sixteenth of the
-- time (42 rows of 300 KB: 210 ms as jsonb, 13 ms as text with lz4;
-- docs/performance.md, "Eighth run"). Small events keep `payload`; a row has
-- one or the other, and the relay sends whichever it has.
--
-- Catalog only, no rewrite, so safe on a live database; the table's exclusive
-- lock waits at most 5 s (run it again if it gave up). While replicas of an
-- earlier release still run, their relays cannot read rows without `payload`
-- and log errors until a replica of this release has published them; nothing
-- is lost (docs/operations.md, "Upgrading to this release").
SET LOCAL lock_timeout = '5s';
ALTER TABLE outbox ADD COLUMN body text;
ALTER TABLE outbox ALTER COLUMN payload DROP NOT NULL;
-- NOT VALID: no scan of the existing rows (they all have a payload); new rows
-- are checked.
ALTER TABLE outbox ADD CONSTRAINT outbox_payload_or_body CHECK (payload IS NOT NULL OR body IS NOT NULL) NOT VALID;
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'ALTER TABLE outbox ALTER COLUMN body SET COMPRESSION lz4';
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available on this server; outbox bodies use pglz';
END
$$;
