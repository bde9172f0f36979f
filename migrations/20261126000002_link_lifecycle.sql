-- Managing links after they are made: expiry, visit limits, disabling, deleted
-- phrases in quarantine, and replayable create requests (Idempotency-Key).
-- Additive and safe on a live database: nullable columns without defaults are
-- catalogue changes (no table rewrite), the other tables are new. Indexes on
-- `links` are built concurrently by the next migration.

ALTER TABLE links
    -- Following the link answers 410 Link.Expired from this instant on.
    ADD COLUMN expires_at timestamptz,
    -- Human visits after which following answers 410 Link.VisitLimitReached.
    ADD COLUMN max_visits integer,
    -- Taken down (410 Link.Disabled) since this instant; NULL: not disabled.
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN disabled_reason text,
    -- Set by the worker when the human visits reach `max_visits`.
    ADD COLUMN limit_reached_at timestamptz,
    ADD COLUMN updated_at timestamptz;

-- NOT VALID: existing rows are all NULL here, and checking them would scan the
-- table under lock; new and updated rows are checked.
ALTER TABLE links ADD CONSTRAINT links_max_visits_positive CHECK (max_visits >= 1) NOT VALID;
ALTER TABLE links ADD CONSTRAINT links_disabled_reason_length
    CHECK (char_length(disabled_reason) <= 500) NOT VALID;

-- Deleted links' phrases: they answer 410 Link.Deleted, and are not issued again
-- (generated or chosen) before `quarantined_until`.
CREATE TABLE phrase_tombstones (
    phrase            text PRIMARY KEY,
    link_id           uuid        NOT NULL,
    owner_key_id      bigint,
    deleted_at        timestamptz NOT NULL,
    quarantined_until timestamptz NOT NULL
);

-- Create requests with an Idempotency-Key: the first answer is kept for 24 h and
-- replayed to the same caller with the same body. The row is inserted before the
-- link is created, so of two concurrent requests with one key only one creates.
CREATE TABLE idempotency_keys (
    actor        text        NOT NULL,
    key          text        NOT NULL,
    -- SHA-256 of the request body: a different body under the same key is refused.
    request_hash bytea       NOT NULL,
    -- NULL while the first request is still running.
    status       smallint,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- Trigram search over phrase and target (GET /v1/links?search=). pg_trgm is a
-- trusted extension, so the database owner may create it. The indexes on
-- `links` are built concurrently, one per migration (20261126000003 to ...06):
-- PostgreSQL runs the statements of one migration file in one implicit
-- transaction, where CREATE INDEX CONCURRENTLY cannot run.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
