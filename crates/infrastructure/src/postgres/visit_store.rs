//! Writing a flush of the visit aggregator: its `link.visited` events in the
//! outbox and, for the full visit log, every raw visit (with `COPY`), in one
//! transaction.

use std::fmt::Write as _;

use chrono::Utc;
use offndat_application::VisitTally;
use offndat_application::events::{Event, LINK_VISITED, RecentVisit};
use sqlx::{AssertSqlSafe, Connection, PgPool};
use uuid::Uuid;

use super::BulkConnection;
use crate::visit_aggregator::VisitLog;

/// Most links in one `link.visited` event.
pub const MAX_LINKS_PER_EVENT: usize = 500;
/// About the largest `link.visited` body written: far below the worker's
/// `OFFNDAT_WORKER_MAX_MESSAGE_BYTES` (16 MiB by default), whatever headers
/// visitors send.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One flush, ready to write: its events with their ids fixed once, so a retry
/// after a commit whose outcome was lost (the connection dropped while the
/// COMMIT reply was on its way) writes the same rows, not new ones.
#[derive(Debug)]
pub struct FlushBatch {
    ids: Vec<Uuid>,
    /// JSON text, stored as text (`outbox.body`): a `serde_json::Value` of each
    /// was the largest share of the API's heap at peak under load over many links
    /// (measured with heaptrack), several times the text.
    payloads: Vec<String>,
    raw: Vec<(Uuid, RecentVisit)>,
    /// Link visits the batch counts (orphans aside).
    pub visits: u64,
    /// Links the batch counts.
    pub links: usize,
}

impl FlushBatch {
    /// The events of `tally` (at most `MAX_LINKS_PER_EVENT` links and about
    /// `MAX_EVENT_BYTES` each) and the
    /// raw visits for the full log; `None` when there is nothing to write.
    pub fn new(tally: &VisitTally, raw: Vec<(Uuid, RecentVisit)>) -> Option<Self> {
        let events = tally.to_events(MAX_LINKS_PER_EVENT, MAX_EVENT_BYTES);
        if events.is_empty() && raw.is_empty() {
            return None;
        }
        Some(Self {
            ids: events.iter().map(|_| Uuid::now_v7()).collect(),
            payloads: events.into_iter().map(|e| Event::LinkVisited(e).payload_text()).collect(),
            raw,
            visits: tally.visits(),
            links: tally.links.len(),
        })
    }
}

/// Writes flushes to PostgreSQL.
pub struct PgVisitStore {
    pool: PgPool,
    log: VisitLog,
}

impl PgVisitStore {
    pub fn new(pool: PgPool, log: VisitLog) -> Self {
        Self { pool, log }
    }

    /// Writes `batch`'s outbox events and, with the full log, its raw visits into
    /// `visits`, atomically. Idempotent: a batch whose first event is already in
    /// the outbox was committed before (its reply was lost) and is not written
    /// again. Raw visits of links that no longer exist are left out, never
    /// failing the rest.
    pub async fn write(&self, batch: &FlushBatch) -> Result<(), sqlx::Error> {
        let mut conn = BulkConnection::acquire(&self.pool).await?;
        let mut tx = conn.begin().await?;
        if let Some(first) = batch.ids.first() {
            let written =
                sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM outbox WHERE id = $1) AS "written!""#, first)
                    .fetch_one(&mut *tx)
                    .await?;
            if written {
                return tx.commit().await;
            }
        }
        if self.log == VisitLog::Full && !batch.raw.is_empty() {
            copy_raw(&mut tx, &batch.raw).await?;
        }
        let types: Vec<&str> = batch.ids.iter().map(|_| LINK_VISITED).collect();
        // As text in `body`, not `jsonb`: the relay sends it on unread, and parsing
        // and pglz made this PostgreSQL's largest cost under load (migration
        // `outbox_body`).
        sqlx::query!(
            "INSERT INTO outbox (id, event_type, body, created_at)
             SELECT id, event_type, body, $4 FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS e(id, event_type, body)
             ON CONFLICT (id) DO NOTHING",
            &batch.ids,
            &types as &[&str],
            &batch.payloads,
            Utc::now(),
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
}

/// `COPY`s `raw` into a per-connection staging table, then moves the visits of
/// existing links into `visits` (a deleted link's visits must not fail the batch
/// on the foreign key). The statements name a temporary table, which the
/// compile-time checked macros cannot see, so they are plain queries.
async fn copy_raw(tx: &mut sqlx::PgConnection, raw: &[(Uuid, RecentVisit)]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TEMP TABLE IF NOT EXISTS visits_staging (
             link_id uuid, visited_at timestamptz, ip_address text, user_agent text, referrer text, potential_bot boolean
         ) ON COMMIT DELETE ROWS",
    )
    .execute(&mut *tx)
    .await?;
    let mut csv = String::with_capacity(raw.len() * 160);
    for (link_id, visit) in raw {
        let _ = write!(csv, "{link_id},{},", visit.visited_at.to_rfc3339());
        csv_field(&mut csv, visit.ip_address.as_deref());
        csv.push(',');
        csv_field(&mut csv, visit.user_agent.as_deref());
        csv.push(',');
        csv_field(&mut csv, visit.referrer.as_deref());
        csv.push_str(if visit.bot { ",t\n" } else { ",f\n" });
    }
    let mut copy = tx.copy_in_raw("COPY visits_staging FROM STDIN (FORMAT csv)").await?;
    copy.send(csv.into_bytes()).await?;
    copy.finish().await?;
    sqlx::query(AssertSqlSafe(
        "INSERT INTO visits (link_id, visited_at, ip_address, user_agent, referrer, potential_bot)
         SELECT s.link_id, s.visited_at, s.ip_address, s.user_agent, s.referrer, s.potential_bot
         FROM visits_staging s JOIN links l ON l.id = s.link_id",
    ))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A CSV field: absent is an unquoted empty field (NULL to `COPY`), text is
/// quoted with inner quotes doubled.
fn csv_field(out: &mut String, value: Option<&str>) {
    if let Some(text) = value {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_quote_text_and_leave_null_empty() {
        let mut out = String::new();
        csv_field(&mut out, None);
        out.push(',');
        csv_field(&mut out, Some("a \"b\",\nc"));
        out.push(',');
        csv_field(&mut out, Some(""));
        assert_eq!(out, ",\"a \"\"b\"\",\nc\",\"\"");
    }
}
