-- Stored API keys: a name, a role and the SHA-256 of the secret (never the secret),
-- and a change counter every API process polls to see revocations within a second.
-- All new tables: nothing existing is rewritten or locked.

CREATE TABLE api_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL,
    role          text        NOT NULL,
    -- SHA-256 of a 256-bit random secret: fast is fine for secrets that cannot be
    -- guessed (see docs/operations.md, "API keys").
    secret_sha256 bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Written lazily (about once a minute per API process that saw the key).
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    -- Revoked keys keep their names, so audit rows and link owners stay unambiguous.
    CONSTRAINT api_keys_name_key UNIQUE (name),
    CONSTRAINT api_keys_secret_sha256_key UNIQUE (secret_sha256),
    CONSTRAINT api_keys_role_known CHECK (role IN ('admin', 'creator')),
    CONSTRAINT api_keys_name_shape CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
    CONSTRAINT api_keys_secret_sha256_length CHECK (octet_length(secret_sha256) = 32)
);

-- One row: bumped by every statement that changes which keys authenticate, so an
-- API process reads one integer per poll and reloads the (small) key set only when
-- it moved. A counter, not a timestamp: it is read after commit, so a transaction
-- that commits late cannot hide behind a newer one's timestamp.
CREATE TABLE api_key_generation (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint  NOT NULL
);
INSERT INTO api_key_generation (generation) VALUES (0);

CREATE FUNCTION api_keys_bump_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE api_key_generation SET generation = generation + 1;
    RETURN NULL;
END;
$$;

-- Also fires for changes made by hand in SQL (an emergency revocation with psql
-- reaches every replica too). `last_used_at` updates do not bump it.
CREATE TRIGGER api_keys_changed
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF name, role, secret_sha256, revoked_at ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION api_keys_bump_generation();

-- Links can now point at their owner. NOT VALID: no scan of a large links table
-- under lock; new and updated rows are checked.
ALTER TABLE links
    ADD CONSTRAINT links_owner_key_id_fkey FOREIGN KEY (owner_key_id) REFERENCES api_keys (id) NOT VALID;
