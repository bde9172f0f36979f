-- Groundwork for managing links: which stored API key made a link, and the audit
-- trail of what keys did. Both are additive: a nullable column without a default is
-- a catalogue change (no table rewrite), and the audit table is new.

-- The `api_keys.id` of the key that created the link; NULL for links made before
-- keys were stored, or by a key from OFFNDAT_API_KEYS (admins see those).
ALTER TABLE links ADD COLUMN owner_key_id bigint;

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    -- The acting key's name (stored keys) or `OFFNDAT_API_KEYS#n`, or `cli`.
    actor       text        NOT NULL,
    -- What was done, dotted: `link.disabled`, `link.deleted`, `key.revoked`, ...
    action      text        NOT NULL,
    link_phrase text,
    -- Action-specific details (a reason, a key's role), never a secret.
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb
);

-- Newest first, paginated.
CREATE INDEX audit_log_newest ON audit_log (at DESC, id DESC);
