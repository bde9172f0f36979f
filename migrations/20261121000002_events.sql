-- The worker's inbox, outbox wake-ups, and pruning support.

-- Ids of broker messages the worker has applied. Recording an id in the same
-- transaction as its effect makes redelivery harmless.
CREATE TABLE inbox (
    message_id   uuid PRIMARY KEY,
    event_type   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_processed_at ON inbox (processed_at);

-- Published rows are kept for a while for inspection, then pruned oldest first.
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Wake outbox relays as soon as rows commit, instead of polling. PostgreSQL folds
-- identical notifications of one transaction into one.
CREATE FUNCTION offndat_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('offndat_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION offndat_notify_outbox();
