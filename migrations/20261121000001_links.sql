-- Links, their visits and visit summaries, and the transactional outbox.

CREATE TABLE links (
    id          uuid PRIMARY KEY,
    phrase      text        NOT NULL,
    target_url  text        NOT NULL,
    language_id smallint    NOT NULL,
    theme_id    smallint    NOT NULL,
    created_at  timestamptz NOT NULL,
    -- Uniqueness is the database's job: inserts use ON CONFLICT DO NOTHING on it.
    CONSTRAINT links_phrase_key UNIQUE (phrase),
    CONSTRAINT links_phrase_length CHECK (char_length(phrase) BETWEEN 1 AND 256),
    CONSTRAINT links_target_url_length CHECK (char_length(target_url) BETWEEN 1 AND 4096),
    CONSTRAINT links_language_id_range CHECK (language_id BETWEEN 0 AND 1),
    CONSTRAINT links_theme_id_range CHECK (theme_id BETWEEN 0 AND 2)
);

CREATE TABLE visits (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    link_id       uuid        NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    visited_at    timestamptz NOT NULL,
    -- The stored form: anonymised unless the operator turned that off.
    ip_address    varchar(45),
    user_agent    varchar(512),
    referrer      varchar(2048),
    potential_bot boolean     NOT NULL DEFAULT false
);

-- "The newest N visits of a link" is an index range scan.
CREATE INDEX visits_link_newest ON visits (link_id, visited_at DESC, id DESC);

CREATE TABLE visit_summaries (
    link_id         uuid PRIMARY KEY REFERENCES links (id) ON DELETE CASCADE,
    total_visits    bigint      NOT NULL DEFAULT 0 CHECK (total_visits >= 0),
    last_visited_at timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox (
    id           uuid PRIMARY KEY,
    event_type   text        NOT NULL,
    payload      jsonb       NOT NULL,
    -- AMQP headers to publish with (W3C trace context).
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

-- "Oldest unpublished first" reads only the small unpublished part.
CREATE INDEX outbox_unpublished ON outbox (created_at, id) WHERE published_at IS NULL;
