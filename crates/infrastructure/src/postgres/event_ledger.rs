//! The worker's side of PostgreSQL: applying a batch of inbound events exactly once
//! (the inbox records every message id in the same transaction as its effect), and
//! pruning the inbox.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offndat_application::VisitTally;
use offndat_application::apply_events::{EventLedger, InboxMessage, LedgerError, LedgerOutcome};
use offndat_application::events::{Event, LINK_CHANGED, LinkChange, LinkChangedV1};
use offndat_domain::stats::Granularity;
use sqlx::PgPool;
use uuid::Uuid;

use super::BulkConnection;
use super::errors::is_unavailable;
use super::rollups::{self, LinkRollupRows, ServiceRollupRows};

/// Most inbox rows one pruning statement deletes, so pruning never holds long
/// locks or bloats one transaction.
const PRUNE_CHUNK: i64 = 5_000;

/// Most links one compaction transaction takes (≈ 24 hourly rows each for a day):
/// the summary rows it locks hold up only the worker batches touching them, and
/// only briefly.
const COMPACT_CHUNK: i64 = 1_000;

/// Why a batch could not be applied, as PostgreSQL said it; becomes the
/// application's `LedgerError` at the port.
#[derive(Debug, thiserror::Error)]
pub enum PgLedgerError {
    /// PostgreSQL is unreachable, or the transaction lost a race (deadlock,
    /// serialization failure): the same batch is worth retrying as is.
    #[error("PostgreSQL is unavailable: {0}")]
    Transient(#[source] sqlx::Error),
    /// Anything else: retrying the same batch would fail the same way.
    #[error("PostgreSQL refused the batch: {0}")]
    Permanent(#[source] sqlx::Error),
}

impl From<PgLedgerError> for LedgerError {
    fn from(error: PgLedgerError) -> Self {
        match error {
            PgLedgerError::Transient(e) => Self::Transient(e.into()),
            PgLedgerError::Permanent(e) => Self::Permanent(e.into()),
        }
    }
}

impl From<sqlx::Error> for PgLedgerError {
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
    async fn ping_db(&self) -> Result<(), PgLedgerError> {
        sqlx::query!("SELECT 1 AS one").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// Applies `messages` in one transaction: records their ids in the inbox and
    /// applies only the ones not seen before. Set-based (arrays and `UNNEST`), so
    /// the number of statements does not grow with the batch.
    async fn apply_batch(&self, messages: &[&InboxMessage]) -> Result<LedgerOutcome, PgLedgerError> {
        let mut outcome = LedgerOutcome::default();
        // Keep the first of any id repeated within the batch; sort by id so
        // concurrent replicas lock inbox keys in one order and cannot deadlock.
        let mut seen = HashSet::with_capacity(messages.len());
        let mut unique: Vec<&InboxMessage> = messages.iter().copied().filter(|m| seen.insert(m.message_id)).collect();
        outcome.duplicates = (messages.len() - unique.len()) as u64;
        unique.sort_by_key(|m| m.message_id);
        let ids: Vec<Uuid> = unique.iter().map(|m| m.message_id).collect();
        let types: Vec<&str> = unique.iter().map(|m| m.event_type()).collect();

        let mut conn = BulkConnection::acquire(&self.pool).await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
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

        // Created links' zero summaries first: the visit upsert may insert the same
        // rows, and one order in every replica keeps concurrent batches from
        // deadlocking on them.
        let created = record_created(&mut tx, &fresh).await?;
        let counted = count_visits(&mut tx, &fresh, &mut outcome).await?;
        tx.commit().await?;

        for message in &fresh {
            let known = match &message.event {
                Event::LinkVisitedV1(event) => {
                    event.links.is_empty() || event.links.iter().any(|l| counted.contains(&l.link_id))
                }
                Event::LinkVisited(event) => {
                    event.links.is_empty() || event.links.iter().any(|l| counted.contains(&l.link_id))
                }
                Event::LinkCreated(event) => created.contains(&event.link_id),
                // Meant for the API processes' caches; nothing to apply here.
                Event::LinkChanged(_) => true,
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
    async fn prune_inbox_rows(&self, older_than: Duration) -> Result<u64, PgLedgerError> {
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

#[async_trait]
impl EventLedger for PgEventLedger {
    async fn apply(&self, messages: &[&InboxMessage]) -> Result<LedgerOutcome, LedgerError> {
        Ok(self.apply_batch(messages).await?)
    }

    async fn ping(&self) -> Result<(), LedgerError> {
        Ok(self.ping_db().await?)
    }

    async fn prune_inbox(&self, older_than: Duration) -> Result<u64, LedgerError> {
        Ok(self.prune_inbox_rows(older_than).await?)
    }

    async fn prune_visit_log(&self, older_than: Option<Duration>) -> Result<u64, LedgerError> {
        Ok(self.prune_raw_visits(older_than).await?)
    }

    async fn compact_daily_rollups(&self, now: DateTime<Utc>) -> Result<u64, LedgerError> {
        Ok(self.compact_daily(Granularity::Day.floor(now)).await?)
    }
}

impl PgEventLedger {
    /// Deletes raw visits the visit log no longer keeps, in chunks; returns how
    /// many went. `None`: the `recent` log, which keeps each link's newest visits
    /// on its summary, so every raw row goes (rows from before that existed).
    /// `Some(age)`: the `full` log, pruned by age. Totals and rollups are kept
    /// apart and never change.
    async fn prune_raw_visits(&self, older_than: Option<Duration>) -> Result<u64, PgLedgerError> {
        let mut deleted = 0;
        loop {
            let query = match older_than {
                None => sqlx::query!(
                    "DELETE FROM visits WHERE id IN (SELECT id FROM visits LIMIT $1 FOR UPDATE SKIP LOCKED)",
                    PRUNE_CHUNK,
                ),
                Some(age) => sqlx::query!(
                    "DELETE FROM visits WHERE id IN (
                         SELECT id FROM visits
                         WHERE visited_at < now() - make_interval(secs => $1)
                         ORDER BY visited_at
                         LIMIT $2
                         FOR UPDATE SKIP LOCKED)",
                    age.as_secs_f64(),
                    PRUNE_CHUNK,
                ),
            };
            let chunk = query.execute(&self.pool).await?.rows_affected();
            deleted += chunk;
            if chunk < PRUNE_CHUNK as u64 {
                return Ok(deleted);
            }
        }
    }

    /// Folds the hourly rollups of every closed pending day (before `today`) into
    /// `link_rollups_daily`, a chunk of links per transaction; returns how many
    /// links were compacted.
    ///
    /// Exact whatever runs beside it: the summary rows are locked first, the lock
    /// a worker batch takes (in its summary upsert) before it writes hourly rows,
    /// so a batch commits either before (its hours are read here) or after (it
    /// moves `daily_pending_from` back to its own days, to be compacted again). A
    /// daily row is replaced, not added to, so compacting a day twice, or a day a
    /// worker of an earlier release also wrote, leaves it equal to its hours.
    /// SKIP LOCKED: replicas share the work, and a link in a batch at the moment
    /// waits for the next run instead of stalling this one.
    async fn compact_daily(&self, today: DateTime<Utc>) -> Result<u64, PgLedgerError> {
        let mut compacted = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let due = sqlx::query!(
                r#"SELECT link_id, daily_pending_from AS "pending_from!" FROM visit_summaries
                   WHERE daily_pending_from < $1
                   ORDER BY daily_pending_from
                   LIMIT $2
                   FOR UPDATE SKIP LOCKED"#,
                today,
                COMPACT_CHUNK,
            )
            .fetch_all(&mut *tx)
            .await?;
            if due.is_empty() {
                tx.commit().await?;
                return Ok(compacted);
            }
            let mut due: Vec<(Uuid, DateTime<Utc>)> = due.into_iter().map(|r| (r.link_id, r.pending_from)).collect();
            due.sort_unstable();
            let ids: Vec<Uuid> = due.iter().map(|d| d.0).collect();
            let from: Vec<DateTime<Utc>> = due.iter().map(|d| d.1).collect();
            // Each dimension value's count summed over the day's hours, in the
            // layout of the hourly rows (docs/events.md, Link rollups).
            sqlx::query!(
                r#"WITH h AS (
                       SELECT h.link_id, date_trunc('day', h.bucket, 'UTC') AS day, h.human, h.bot, h.human_by, h.bot_by
                       FROM UNNEST($1::uuid[], $2::timestamptz[]) AS p(link_id, from_day)
                       JOIN link_rollups_hourly h ON h.link_id = p.link_id AND h.bucket >= p.from_day AND h.bucket < $3),
                   human_by AS (
                       SELECT link_id, day, jsonb_object_agg(key, n) AS counts
                       FROM (SELECT h.link_id, h.day, e.key, sum(e.value::bigint)::bigint AS n
                             FROM h, jsonb_each(h.human_by) AS e GROUP BY 1, 2, 3) v
                       GROUP BY 1, 2),
                   bot_by AS (
                       SELECT link_id, day, jsonb_object_agg(key, n) AS counts
                       FROM (SELECT h.link_id, h.day, e.key, sum(e.value::bigint)::bigint AS n
                             FROM h, jsonb_each(h.bot_by) AS e GROUP BY 1, 2, 3) v
                       GROUP BY 1, 2)
                   INSERT INTO link_rollups_daily AS d (link_id, bucket, human, bot, human_by, bot_by)
                   SELECT t.link_id, t.day, t.human, t.bot, COALESCE(hb.counts, '{}'), COALESCE(bb.counts, '{}')
                   FROM (SELECT link_id, day, sum(human)::bigint AS human, sum(bot)::bigint AS bot FROM h GROUP BY 1, 2) t
                   LEFT JOIN human_by hb USING (link_id, day)
                   LEFT JOIN bot_by bb USING (link_id, day)
                   ORDER BY 1, 2
                   ON CONFLICT (link_id, bucket) DO UPDATE
                   SET human = EXCLUDED.human, bot = EXCLUDED.bot, human_by = EXCLUDED.human_by, bot_by = EXCLUDED.bot_by"#,
                &ids,
                &from,
                today,
            )
            .execute(&mut *tx)
            .await?;
            // Today stays pending for a link with hourly rows from today on (one
            // key probe; under the summary's lock no batch can add one meanwhile).
            // Not judged from `last_visited_at`: that trusts every event's newest
            // visits to be as new as its hours.
            sqlx::query!(
                "UPDATE visit_summaries s
                 SET daily_pending_from = CASE WHEN EXISTS (
                         SELECT 1 FROM link_rollups_hourly h WHERE h.link_id = s.link_id AND h.bucket >= $2)
                     THEN $2 END
                 WHERE s.link_id = ANY($1::uuid[])",
                &ids,
                today,
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            compacted += ids.len() as u64;
        }
    }
}

/// What a batch adds to one link's summary: total, bots, last visited, newest
/// visits if any (JSON text, cast to `jsonb` in the statement), and the start of
/// the earliest day it has hourly rollups for.
type SummaryDelta = (i64, i64, Option<DateTime<Utc>>, Option<String>, Option<DateTime<Utc>>);

/// Applies the visits of new `link.visited` messages to the links that exist:
/// totals, newest visits, hourly rollups (their days left pending for the daily
/// compaction) and the service-wide rollups. Returns the ids of the links
/// counted. Visits of unknown links (deleted between the redirect and the flush)
/// are skipped and counted as such, never an error that would cost the other
/// links their visits.
async fn count_visits(
    tx: &mut sqlx::PgConnection,
    fresh: &[&InboxMessage],
    outcome: &mut LedgerOutcome,
) -> Result<HashSet<Uuid>, PgLedgerError> {
    let mut tally = VisitTally::default();
    // Version 1 (older releases): totals only.
    let mut v1: BTreeMap<Uuid, (i64, DateTime<Utc>)> = BTreeMap::new();
    for message in fresh {
        match &message.event {
            Event::LinkVisited(event) => tally.merge(event.tally()),
            Event::LinkVisitedV1(event) => {
                for link in &event.links {
                    let entry = v1.entry(link.link_id).or_insert((0, link.last_visited_at));
                    entry.0 += i64::from(link.visits);
                    entry.1 = entry.1.max(link.last_visited_at);
                }
            }
            Event::LinkCreated(_) | Event::LinkChanged(_) => {}
        }
    }
    let created: Vec<DateTime<Utc>> = fresh
        .iter()
        .filter_map(|m| match &m.event {
            Event::LinkCreated(event) => Some(event.created_at),
            _ => None,
        })
        .collect();
    let mut candidates: Vec<Uuid> = tally.links.keys().chain(v1.keys()).copied().collect();
    candidates.sort_unstable();
    candidates.dedup();
    let known: HashSet<Uuid> = if candidates.is_empty() {
        HashSet::new()
    } else {
        sqlx::query_scalar!("SELECT id FROM links WHERE id = ANY($1::uuid[])", &candidates)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect()
    };

    // Per link, merged over versions.
    let mut summaries: BTreeMap<Uuid, SummaryDelta> = BTreeMap::new();
    for (id, fold) in &tally.links {
        let visits = fold.visits();
        let n = i64::try_from(visits.total()).unwrap_or(i64::MAX);
        if !known.contains(id) {
            outcome.visits_skipped += visits.total();
            continue;
        }
        outcome.visits_counted += visits.total();
        let last = fold.recent.first().map(|v| v.visited_at);
        let recent = (!fold.recent.is_empty()).then(|| serde_json::to_string(&fold.recent).ok()).flatten();
        let first_day = fold.hours.first().map(|(hour, _)| Granularity::Day.floor(*hour));
        summaries.insert(*id, (n, i64::try_from(visits.bot).unwrap_or(i64::MAX), last, recent, first_day));
    }
    for (id, (n, last)) in &v1 {
        if !known.contains(id) {
            outcome.visits_skipped += n.unsigned_abs();
            continue;
        }
        outcome.visits_counted += n.unsigned_abs();
        let entry = summaries.entry(*id).or_insert((0, 0, None, None, None));
        entry.0 += n;
        entry.2 = entry.2.max(Some(*last));
    }

    if !summaries.is_empty() {
        let ids: Vec<Uuid> = summaries.keys().copied().collect();
        let totals: Vec<i64> = summaries.values().map(|s| s.0).collect();
        let bots: Vec<i64> = summaries.values().map(|s| s.1).collect();
        let last: Vec<Option<DateTime<Utc>>> = summaries.values().map(|s| s.2).collect();
        let first_days: Vec<Option<DateTime<Utc>>> = summaries.values().map(|s| s.4).collect();
        // Daily rollups are not written here: the days this batch touches stay
        // pending (read from the hourly rows) until `compact_daily_rollups` folds
        // them in, under this same row lock. LEAST ignores NULLs.
        sqlx::query!(
            r#"INSERT INTO visit_summaries AS s (link_id, total_visits, bot_visits, last_visited_at, daily_pending_from, updated_at)
               SELECT v.link_id, v.total, v.bots, v.last_visited_at, v.first_day, now()
               FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])
                    AS v(link_id, total, bots, last_visited_at, first_day)
               ORDER BY v.link_id
               ON CONFLICT (link_id) DO UPDATE
               SET total_visits = s.total_visits + EXCLUDED.total_visits,
                   bot_visits = s.bot_visits + EXCLUDED.bot_visits,
                   last_visited_at = GREATEST(s.last_visited_at, EXCLUDED.last_visited_at),
                   daily_pending_from = LEAST(s.daily_pending_from, EXCLUDED.daily_pending_from),
                   updated_at = now()"#,
            &ids,
            &totals,
            &bots,
            &last as &[Option<DateTime<Utc>>],
            &first_days as &[Option<DateTime<Utc>>],
        )
        .execute(&mut *tx)
        .await?;
        // After the summaries, in link order: the order every replica and the
        // API's erase take these rows in.
        let with_recent: Vec<(Uuid, &str)> =
            summaries.iter().filter_map(|(id, s)| Some((*id, s.3.as_deref()?))).collect();
        if !with_recent.is_empty() {
            let recent_ids: Vec<Uuid> = with_recent.iter().map(|(id, _)| *id).collect();
            let recent: Vec<&str> = with_recent.iter().map(|(_, json)| *json).collect();
            sqlx::query!(
                r#"INSERT INTO link_recent_visits AS r (link_id, visits)
                   SELECT v.link_id, v.recent::jsonb
                   FROM UNNEST($1::uuid[], $2::text[]) AS v(link_id, recent)
                   ORDER BY v.link_id
                   ON CONFLICT (link_id) DO UPDATE
                   SET visits = CASE
                       -- The usual case, time moving forward: every new visit is newer
                       -- than every stored one, so prepend and cut (half the cost of
                       -- parsing and sorting both).
                       WHEN (EXCLUDED.visits -> -1 ->> 'visitedAt')::timestamptz
                            >= (r.visits -> 0 ->> 'visitedAt')::timestamptz
                           THEN jsonb_path_query_array(EXCLUDED.visits || r.visits, '$[0 to 9]')
                       ELSE offndat_newest_visits(r.visits, EXCLUDED.visits, 10)
                   END"#,
                &recent_ids,
                &recent as &[&str],
            )
            .execute(&mut *tx)
            .await?;
        }
        mark_visit_limits_reached(tx, &ids).await?;
    }

    upsert_hourly_link_rollups(tx, &rollups::link_rows(&tally, &known, Granularity::Hour)).await?;
    let hourly = rollups::service_rows(&tally, &known, &created, Granularity::Hour);
    upsert_service_rollups(tx, &hourly, Granularity::Hour).await?;
    let daily = rollups::service_rows(&tally, &known, &created, Granularity::Day);
    upsert_service_rollups(tx, &daily, Granularity::Day).await?;
    Ok(summaries.into_keys().collect())
}

/// Marks the links among `ids` whose human visits reached their `max_visits`
/// (in the same transaction as the counts), and tells every API process with a
/// `link.changed` so cached redirects stop. Counts arrive per flush, so a link
/// may overshoot its limit by the visits of one flush window.
async fn mark_visit_limits_reached(tx: &mut sqlx::PgConnection, ids: &[Uuid]) -> Result<(), PgLedgerError> {
    let reached = sqlx::query!(
        r#"UPDATE links l SET limit_reached_at = now(), updated_at = now()
           FROM visit_summaries s
           WHERE l.id = ANY($1::uuid[]) AND s.link_id = l.id
             AND l.max_visits IS NOT NULL AND l.limit_reached_at IS NULL
             AND s.total_visits - s.bot_visits >= l.max_visits
           RETURNING l.id, l.phrase, l.limit_reached_at AS "at!""#,
        ids,
    )
    .fetch_all(&mut *tx)
    .await?;
    if reached.is_empty() {
        return Ok(());
    }
    let mut outbox_ids = Vec::with_capacity(reached.len());
    let mut payloads = Vec::with_capacity(reached.len());
    for link in &reached {
        let event = Event::LinkChanged(LinkChangedV1 {
            version: 1,
            link_id: link.id,
            phrase: link.phrase.clone(),
            change: LinkChange::VisitLimitReached,
            changed_at: link.at,
        });
        outbox_ids.push(Uuid::now_v7());
        payloads.push(event.payload());
    }
    sqlx::query!(
        "INSERT INTO outbox (id, event_type, payload)
         SELECT id, $2, payload FROM UNNEST($1::uuid[], $3::jsonb[]) AS e(id, payload)",
        &outbox_ids,
        LINK_CHANGED,
        &payloads,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One row per link and hour: the counts add up, and the dimension values'
/// counts add up key by key in SQL, so concurrent workers never lose each
/// other's visits and no prior read is needed. Rows come sorted by (link,
/// bucket), the lock order of every replica. The merge is `offndat_add_counts`
/// written out: as a subquery in the statement it costs ≈ 30 % less than calling
/// the SQL function per row (measured; the function is not inlined). Daily rows
/// are compacted from these (`compact_daily_rollups`).
async fn upsert_hourly_link_rollups(tx: &mut sqlx::PgConnection, rows: &LinkRollupRows) -> Result<(), PgLedgerError> {
    if rows.link_id.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO link_rollups_hourly AS r (link_id, bucket, human, bot, human_by, bot_by)
         SELECT v.link_id, v.bucket, v.human, v.bot, v.human_by::jsonb, v.bot_by::jsonb
         FROM UNNEST($1::uuid[], $2::timestamptz[], $3::bigint[], $4::bigint[], $5::text[], $6::text[])
              AS v(link_id, bucket, human, bot, human_by, bot_by)
         ORDER BY 1, 2
         ON CONFLICT (link_id, bucket) DO UPDATE
         SET human = r.human + EXCLUDED.human, bot = r.bot + EXCLUDED.bot,
             human_by = r.human_by || COALESCE((
                 SELECT jsonb_object_agg(e.key, COALESCE((r.human_by ->> e.key)::bigint, 0) + e.value::bigint)
                 FROM jsonb_each(EXCLUDED.human_by) AS e), '{}'),
             bot_by = CASE WHEN EXCLUDED.bot_by = '{}' THEN r.bot_by ELSE r.bot_by || COALESCE((
                 SELECT jsonb_object_agg(e.key, COALESCE((r.bot_by ->> e.key)::bigint, 0) + e.value::bigint)
                 FROM jsonb_each(EXCLUDED.bot_by) AS e), '{}') END",
        &rows.link_id,
        &rows.bucket,
        &rows.human,
        &rows.bot,
        &rows.human_by,
        &rows.bot_by,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn upsert_service_rollups(
    tx: &mut sqlx::PgConnection,
    rows: &ServiceRollupRows,
    granularity: Granularity,
) -> Result<(), PgLedgerError> {
    if rows.bucket.is_empty() {
        return Ok(());
    }
    let query = match granularity {
        Granularity::Hour => sqlx::query!(
            "INSERT INTO service_visits_hourly AS r (bucket, dimension, value, human, bot)
             SELECT * FROM UNNEST($1::timestamptz[], $2::smallint[], $3::text[], $4::bigint[], $5::bigint[])
             ON CONFLICT (bucket, dimension, value)
             DO UPDATE SET human = r.human + EXCLUDED.human, bot = r.bot + EXCLUDED.bot",
            &rows.bucket,
            &rows.dimension,
            &rows.value,
            &rows.human,
            &rows.bot,
        ),
        Granularity::Day => sqlx::query!(
            "INSERT INTO service_visits_daily AS r (bucket, dimension, value, human, bot)
             SELECT * FROM UNNEST($1::timestamptz[], $2::smallint[], $3::text[], $4::bigint[], $5::bigint[])
             ON CONFLICT (bucket, dimension, value)
             DO UPDATE SET human = r.human + EXCLUDED.human, bot = r.bot + EXCLUDED.bot",
            &rows.bucket,
            &rows.dimension,
            &rows.value,
            &rows.human,
            &rows.bot,
        ),
    };
    query.execute(&mut *tx).await?;
    Ok(())
}

/// Gives links of new `link.created` messages a zero summary, so stats read a row
/// from the start; returns the ids of the links that exist.
async fn record_created(tx: &mut sqlx::PgConnection, fresh: &[&InboxMessage]) -> Result<HashSet<Uuid>, PgLedgerError> {
    let mut link_ids: Vec<Uuid> = fresh
        .iter()
        .filter_map(|m| match &m.event {
            Event::LinkCreated(event) => Some(event.link_id),
            _ => None,
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
