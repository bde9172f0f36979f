//! The worker's side of PostgreSQL: applying a batch of inbound events exactly once
//! (the inbox records every message id in the same transaction as its effect), and
//! pruning the inbox.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::errors::is_unavailable;
use crate::events::{InboundEvent, LINK_CREATED, LINK_VISITED};

/// Most inbox rows one pruning statement deletes, so pruning never holds long
/// locks or bloats one transaction.
const PRUNE_CHUNK: i64 = 5_000;

/// A message the worker parsed and is about to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxMessage {
    /// The AMQP `message_id`: the de-duplication key.
    pub message_id: Uuid,
    /// The event it carries.
    pub event: InboundEvent,
}

impl InboxMessage {
    /// The event type recorded in the inbox.
    pub fn event_type(&self) -> &'static str {
        match self.event {
            InboundEvent::LinkCreated(_) => LINK_CREATED,
            InboundEvent::LinkVisited(_) => LINK_VISITED,
        }
    }
}

/// What applying one batch did. Every message of the batch is exactly one of
/// `applied`, `duplicates` or `skipped`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerOutcome {
    /// New messages with an effect (or nothing to do, like an empty visit list).
    pub applied: u64,
    /// Messages already in the inbox, or repeated within the batch: no effect.
    pub duplicates: u64,
    /// New messages recorded in the inbox whose every link is unknown.
    pub skipped: u64,
    /// Visits added to summaries.
    pub visits_counted: u64,
    /// Visits of links that do not exist, not counted.
    pub visits_skipped: u64,
}

/// Why a batch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// PostgreSQL is unreachable, or the transaction lost a race (deadlock,
    /// serialization failure): the same batch is worth retrying as is.
    #[error("PostgreSQL is unavailable: {0}")]
    Transient(#[source] sqlx::Error),
    /// Anything else: retrying the same batch would fail the same way.
    #[error("PostgreSQL refused the batch: {0}")]
    Permanent(#[source] sqlx::Error),
}

impl LedgerError {
    /// Whether retrying the same work later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

impl From<sqlx::Error> for LedgerError {
    fn from(error: sqlx::Error) -> Self {
        // 40001 serialization_failure, 40P01 deadlock_detected: concurrent replicas
        // touching the same rows; the loser retries.
        let lost_race =
            matches!(&error, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40001" | "40P01")));
        if is_unavailable(&error) || lost_race { Self::Transient(error) } else { Self::Permanent(error) }
    }
}

/// Visit summaries and the inbox in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgEventLedger {
    pool: PgPool,
}

impl PgEventLedger {
    /// A ledger on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// One round trip, for health checks.
    pub async fn ping(&self) -> Result<(), LedgerError> {
        sqlx::query!("SELECT 1 AS one").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// The tables the ledger needs that the database lacks. The worker does not
    /// migrate (the API owns the schema), so it checks instead.
    pub async fn missing_tables(&self) -> Result<Vec<&'static str>, LedgerError> {
        let present = sqlx::query!(
            r#"SELECT to_regclass('inbox') IS NOT NULL AS "inbox!",
                      to_regclass('visit_summaries') IS NOT NULL AS "visit_summaries!",
                      to_regclass('links') IS NOT NULL AS "links!""#
        )
        .fetch_one(&self.pool)
        .await?;
        Ok([("inbox", present.inbox), ("visit_summaries", present.visit_summaries), ("links", present.links)]
            .into_iter()
            .filter_map(|(table, exists)| (!exists).then_some(table))
            .collect())
    }

    /// Applies `messages` in one transaction: records their ids in the inbox and
    /// applies only the ones not seen before. Set-based (arrays and `UNNEST`), so
    /// the number of statements does not grow with the batch.
    pub async fn apply(&self, messages: &[InboxMessage]) -> Result<LedgerOutcome, LedgerError> {
        let mut outcome = LedgerOutcome::default();
        // Keep the first of any id repeated within the batch; sort by id so
        // concurrent replicas lock inbox keys in one order and cannot deadlock.
        let mut seen = HashSet::with_capacity(messages.len());
        let mut unique: Vec<&InboxMessage> = messages.iter().filter(|m| seen.insert(m.message_id)).collect();
        outcome.duplicates = (messages.len() - unique.len()) as u64;
        unique.sort_by_key(|m| m.message_id);
        let ids: Vec<Uuid> = unique.iter().map(|m| m.message_id).collect();
        let types: Vec<&str> = unique.iter().map(|m| m.event_type()).collect();

        let mut tx = self.pool.begin().await?;
        let inserted: HashSet<Uuid> = sqlx::query_scalar!(
            r#"INSERT INTO inbox (message_id, event_type)
               SELECT id, event_type FROM UNNEST($1::uuid[], $2::text[]) AS m(id, event_type)
               ON CONFLICT (message_id) DO NOTHING
               RETURNING message_id"#,
            &ids,
            &types as &[&str],
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let fresh: Vec<&InboxMessage> = unique.into_iter().filter(|m| inserted.contains(&m.message_id)).collect();
        outcome.duplicates += (ids.len() - fresh.len()) as u64;

        let counted = count_visits(&mut tx, &fresh, &mut outcome).await?;
        let created = record_created(&mut tx, &fresh).await?;
        tx.commit().await?;

        for message in &fresh {
            let known = match &message.event {
                InboundEvent::LinkVisited(event) => {
                    event.links.is_empty() || event.links.iter().any(|l| counted.contains(&l.link_id))
                }
                InboundEvent::LinkCreated(event) => created.contains(&event.link_id),
            };
            if known {
                outcome.applied += 1;
            } else {
                outcome.skipped += 1;
            }
        }
        if outcome.skipped > 0 || outcome.visits_skipped > 0 {
            // Once per batch, not per message: a burst of stale events must not
            // flood the log.
            tracing::warn!(
                messages.skipped = outcome.skipped,
                visits.skipped = outcome.visits_skipped,
                "events for links that do not exist were recorded without effect"
            );
        }
        Ok(outcome)
    }

    /// Deletes inbox rows processed more than `older_than` ago (by the database's
    /// clock, which stamped them), in chunks; returns how many went.
    pub async fn prune_inbox(&self, older_than: Duration) -> Result<u64, LedgerError> {
        let mut deleted = 0;
        loop {
            // SKIP LOCKED: replicas pruning at the same time share the work
            // instead of queueing behind each other.
            let chunk = sqlx::query!(
                "DELETE FROM inbox WHERE message_id IN (
                     SELECT message_id FROM inbox
                     WHERE processed_at < now() - make_interval(secs => $1)
                     ORDER BY processed_at
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED)",
                older_than.as_secs_f64(),
                PRUNE_CHUNK,
            )
            .execute(&self.pool)
            .await?
            .rows_affected();
            deleted += chunk;
            if chunk < PRUNE_CHUNK as u64 {
                return Ok(deleted);
            }
        }
    }
}

/// Adds the visits of new `link.visited` messages to the summaries of links that
/// exist; returns the ids of the links counted.
async fn count_visits(
    tx: &mut sqlx::PgConnection,
    fresh: &[&InboxMessage],
    outcome: &mut LedgerOutcome,
) -> Result<HashSet<Uuid>, LedgerError> {
    // Aggregate per link first: an upsert may touch each row once per statement.
    // A BTreeMap also hands rows over in key order, the same order in every
    // replica, so concurrent upserts cannot deadlock.
    let mut per_link: BTreeMap<Uuid, (i64, DateTime<Utc>)> = BTreeMap::new();
    for message in fresh {
        let InboundEvent::LinkVisited(event) = &message.event else { continue };
        for link in &event.links {
            let entry = per_link.entry(link.link_id).or_insert((0, link.last_visited_at));
            entry.0 += i64::from(link.visits);
            entry.1 = entry.1.max(link.last_visited_at);
        }
    }
    if per_link.is_empty() {
        return Ok(HashSet::new());
    }
    let link_ids: Vec<Uuid> = per_link.keys().copied().collect();
    let visits: Vec<i64> = per_link.values().map(|(n, _)| *n).collect();
    let last_visited: Vec<DateTime<Utc>> = per_link.values().map(|(_, at)| *at).collect();
    // The join leaves out unknown links: their visits are skipped, not an error
    // that would dead-letter the known links' visits with them.
    let counted: HashSet<Uuid> = sqlx::query_scalar!(
        r#"INSERT INTO visit_summaries AS s (link_id, total_visits, last_visited_at, updated_at)
           SELECT v.link_id, v.visits, v.last_visited_at, now()
           FROM UNNEST($1::uuid[], $2::bigint[], $3::timestamptz[]) AS v(link_id, visits, last_visited_at)
           JOIN links l ON l.id = v.link_id
           ORDER BY v.link_id
           ON CONFLICT (link_id) DO UPDATE
           SET total_visits = s.total_visits + EXCLUDED.total_visits,
               last_visited_at = GREATEST(s.last_visited_at, EXCLUDED.last_visited_at),
               updated_at = now()
           RETURNING link_id"#,
        &link_ids,
        &visits,
        &last_visited,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    for (link_id, (n, _)) in &per_link {
        let n = n.unsigned_abs();
        if counted.contains(link_id) {
            outcome.visits_counted += n;
        } else {
            outcome.visits_skipped += n;
        }
    }
    Ok(counted)
}

/// Gives links of new `link.created` messages a zero summary, so stats read a row
/// from the start; returns the ids of the links that exist.
async fn record_created(tx: &mut sqlx::PgConnection, fresh: &[&InboxMessage]) -> Result<HashSet<Uuid>, LedgerError> {
    let mut link_ids: Vec<Uuid> = fresh
        .iter()
        .filter_map(|m| match &m.event {
            InboundEvent::LinkCreated(event) => Some(event.link_id),
            InboundEvent::LinkVisited(_) => None,
        })
        .collect();
    if link_ids.is_empty() {
        return Ok(HashSet::new());
    }
    link_ids.sort_unstable();
    link_ids.dedup();
    let existing = sqlx::query_scalar!(
        r#"WITH existing AS (
               SELECT l.id FROM links l WHERE l.id = ANY($1::uuid[])
           ), inserted AS (
               INSERT INTO visit_summaries (link_id)
               SELECT id FROM existing ORDER BY id
               ON CONFLICT (link_id) DO NOTHING
           )
           SELECT id AS "id!" FROM existing"#,
        &link_ids,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(existing.into_iter().collect())
}
