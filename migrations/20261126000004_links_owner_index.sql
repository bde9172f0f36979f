-- no-transaction
-- Built without blocking writes; see 20261126000002 for why one index per file.
-- IF NOT EXISTS: an interrupted build leaves an INVALID index; drop it and
-- migrate again.
-- GET /v1/links for a creator key: its links, newest or oldest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS links_owner_created ON links (owner_key_id, created_at DESC, id DESC);
