-- What tells this deployment apart from every other one that may share a Redis:
-- a random secret made once, when the schema is created, and read by every API
-- process at start. The default Redis key prefix is derived from it (with the
-- database's name, so a copy made with CREATE DATABASE ... TEMPLATE differs),
-- and every value cached in Redis carries a MAC keyed by it, so a value written
-- by another deployment (or by anyone without this row) is never served.
-- A new table: nothing existing is rewritten or locked.

CREATE TABLE deployment_identity (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    -- From PostgreSQL's strong random source (gen_random_uuid, built in since 13).
    secret     uuid        NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO deployment_identity DEFAULT VALUES;
