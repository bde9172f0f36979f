-- Aggregated visits: the API counts visits in memory and flushes one event per
-- batch; the worker keeps exact totals, the newest visits and hourly and daily
-- rollups. Additive: old replicas keep working while this applies.

-- Bot visits apart from the total, and the newest visits of the link as a small
-- JSON array (newest first), replaced in one row update per flush instead of a
-- row insert per visit and a prune. NULL: not filled yet (see the backfill below).
ALTER TABLE visit_summaries
    ADD COLUMN bot_visits bigint NOT NULL DEFAULT 0,
    ADD COLUMN recent_visits jsonb;

-- Newest first, at most `n`, of two arrays of visits (`visitedAt` RFC 3339).
-- Merging in the upsert itself keeps concurrent workers from losing each other's
-- visits without a prior read.
CREATE FUNCTION offndat_newest_visits(a jsonb, b jsonb, n integer) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE(jsonb_agg(v ORDER BY at DESC), '[]'::jsonb)
    FROM (
        SELECT v, (v ->> 'visitedAt')::timestamptz AS at
        FROM jsonb_array_elements(COALESCE(a, '[]'::jsonb) || COALESCE(b, '[]'::jsonb)) AS v
        ORDER BY at DESC
        LIMIT n
    ) newest
$$;

-- Visits counted before this release were rows of `visits`: carry their bot count
-- and newest ten over once, so reads need no second source.
UPDATE visit_summaries s
SET bot_visits = b.bots
FROM (SELECT link_id, count(*) AS bots FROM visits WHERE potential_bot GROUP BY link_id) b
WHERE b.link_id = s.link_id;

UPDATE visit_summaries s
SET recent_visits = (
    SELECT COALESCE(jsonb_agg(jsonb_build_object(
               'visitedAt', to_char(v.visited_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'ipAddress', v.ip_address,
               'userAgent', v.user_agent,
               'referrer', v.referrer,
               'bot', v.potential_bot) ORDER BY v.visited_at DESC, v.id DESC), '[]'::jsonb)
    FROM (SELECT * FROM visits WHERE link_id = s.link_id ORDER BY visited_at DESC, id DESC LIMIT 10) v
);

-- Rollups. `dimension`: 0 referrer host ('' = none), 1 browser family, 2 OS family,
-- 3 device class. Every visit is counted once in each dimension, so the rows of
-- one dimension sum to the bucket's total (totals are read from dimension 0).
-- `bucket` is the start of the UTC hour (hourly) or UTC day (daily).
CREATE TABLE link_visits_hourly (
    link_id   uuid        NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    bucket    timestamptz NOT NULL,
    dimension smallint    NOT NULL,
    value     text        NOT NULL,
    human     bigint      NOT NULL DEFAULT 0,
    bot       bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (link_id, bucket, dimension, value)
);

CREATE TABLE link_visits_daily (
    link_id   uuid        NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    bucket    timestamptz NOT NULL,
    dimension smallint    NOT NULL,
    value     text        NOT NULL,
    human     bigint      NOT NULL DEFAULT 0,
    bot       bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (link_id, bucket, dimension, value)
);

-- The same for the whole service, plus dimension 8 (links created, in `human`)
-- and 9 (orphan visits: requests for phrases that do not exist, in `human`).
CREATE TABLE service_visits_hourly (
    bucket    timestamptz NOT NULL,
    dimension smallint    NOT NULL,
    value     text        NOT NULL,
    human     bigint      NOT NULL DEFAULT 0,
    bot       bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, dimension, value)
);

CREATE TABLE service_visits_daily (
    bucket    timestamptz NOT NULL,
    dimension smallint    NOT NULL,
    value     text        NOT NULL,
    human     bigint      NOT NULL DEFAULT 0,
    bot       bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, dimension, value)
);

-- Pruning the full raw visit log by age. Not built concurrently: replicas migrate
-- at the same moment, and a concurrent build deadlocks with a replica waiting for
-- the migration lock. New releases no longer write `visits` with the default
-- (recent) log, so the brief write lock costs little.
CREATE INDEX IF NOT EXISTS visits_visited_at ON visits (visited_at);
