-- Link rollups as one row per link and bucket instead of one row per link, bucket,
-- dimension and value: the worker upserted 6-13 rows per link and hour (twice, hour
-- and day), and those upserts were most of its transaction. Now it upserts one row
-- per link and bucket, with the dimension breakdown in two small JSON objects that
-- the upsert adds up in SQL. See docs/events.md ("Link rollups").
--
-- Additive and safe on a live database: two new tables and a function. The old
-- `link_visits_hourly` / `link_visits_daily` keep their rows and stay readable:
-- readers sum old and new tables (every visit is in exactly one of them: a batch is
-- applied by either an old worker, which writes the old tables, or a new one), so
-- nothing is backfilled and a rolling deploy counts every visit once. A later
-- release folds the old rows into the new tables in chunks and drops them.

-- `human` / `bot`: the bucket's visits. `human_by` / `bot_by`: per dimension value,
-- keyed by the dimension id (one digit: 0 referrer host, 1 browser family, 2 OS
-- family, 3 device class) followed by the value ('0' alone: no referrer), e.g.
-- {"0news.example": 4, "1Chrome": 4, "2Windows": 4, "3desktop": 4}. Values with no
-- visits are left out (most buckets have no bots, so `bot_by` is usually '{}').
-- Every dimension's values sum to the bucket's `human` / `bot`.
-- fillfactor 80: a bucket's row is rewritten many times while it is current; room
-- on its page lets PostgreSQL update it in place (HOT), without a new index entry.
CREATE TABLE link_rollups_hourly (
    link_id  uuid        NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    bucket   timestamptz NOT NULL,
    human    bigint      NOT NULL DEFAULT 0,
    bot      bigint      NOT NULL DEFAULT 0,
    human_by jsonb       NOT NULL DEFAULT '{}',
    bot_by   jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (link_id, bucket)
) WITH (fillfactor = 80);

CREATE TABLE link_rollups_daily (
    link_id  uuid        NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    bucket   timestamptz NOT NULL,
    human    bigint      NOT NULL DEFAULT 0,
    bot      bigint      NOT NULL DEFAULT 0,
    human_by jsonb       NOT NULL DEFAULT '{}',
    bot_by   jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (link_id, bucket)
) WITH (fillfactor = 80);

-- Adds two objects of counts key by key (`a` stored, `b` new). Only `b`'s keys are
-- visited, and `b` is one flush's worth; `a`'s other keys are kept as they are.
CREATE FUNCTION offndat_add_counts(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN b = '{}'::jsonb THEN a
        WHEN a = '{}'::jsonb THEN b
        ELSE a || (SELECT jsonb_object_agg(e.key, COALESCE((a ->> e.key)::bigint, 0) + e.value::bigint)
                   FROM jsonb_each(b) AS e)
    END
$$;
