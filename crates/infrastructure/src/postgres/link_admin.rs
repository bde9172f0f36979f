//! `LinkAdminStore` on PostgreSQL: edits, deletes and visit erasure, each in one
//! transaction with its audit row and its `link.changed` outbox row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offndat_application::events::{Event, LinkChangedV1};
use offndat_application::list_links::{LinkPage, ListLinksQuery, ListOrder, ListedLink, StateFilter, contains_pattern};
use offndat_application::manage_links::{ErasedVisits, LinkAdminStore, LinkAuditRecord, LinkEdit};
use offndat_application::ports::StoreError;
use offndat_domain::{Link, Phrase};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::errors::store_error;
use super::link_store::LinkRow;

/// Link management in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgLinkAdminStore {
    pool: PgPool,
}

impl PgLinkAdminStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// A `links` row with its visit totals, as listed.
struct ListedRow {
    id: Uuid,
    phrase: String,
    target_url: String,
    language_id: i16,
    theme_id: i16,
    created_at: DateTime<Utc>,
    owner_key_id: Option<i64>,
    expires_at: Option<DateTime<Utc>>,
    max_visits: Option<i32>,
    disabled_at: Option<DateTime<Utc>>,
    disabled_reason: Option<String>,
    limit_reached_at: Option<DateTime<Utc>>,
    visits: i64,
    bot_visits: i64,
}

impl TryFrom<ListedRow> for ListedLink {
    type Error = StoreError;

    fn try_from(row: ListedRow) -> Result<Self, StoreError> {
        let (visits, bot_visits) = (row.visits, row.bot_visits);
        let link = Link::try_from(LinkRow {
            id: row.id,
            phrase: row.phrase,
            target_url: row.target_url,
            language_id: row.language_id,
            theme_id: row.theme_id,
            created_at: row.created_at,
            owner_key_id: row.owner_key_id,
            expires_at: row.expires_at,
            max_visits: row.max_visits,
            disabled_at: row.disabled_at,
            disabled_reason: row.disabled_reason,
            limit_reached_at: row.limit_reached_at,
        })?;
        Ok(ListedLink { link, visits, bot_visits })
    }
}

/// The filter's name in SQL.
fn state_name(state: Option<StateFilter>) -> Option<&'static str> {
    state.map(|state| match state {
        StateFilter::Active => "active",
        StateFilter::Disabled => "disabled",
        StateFilter::Expired => "expired",
    })
}

/// Writes the audit row and the `link.changed` outbox row of a change.
pub(super) async fn record(
    conn: &mut PgConnection,
    link_id: Uuid,
    phrase: &Phrase,
    audit: &LinkAuditRecord,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO audit_log (at, actor, action, link_phrase, detail) VALUES ($1, $2, $3, $4, $5)",
        audit.at,
        audit.actor,
        audit.change.audit_action(),
        phrase.as_str(),
        audit.detail,
    )
    .execute(&mut *conn)
    .await
    .map_err(store_error)?;
    let event = Event::LinkChanged(LinkChangedV1 {
        version: 1,
        link_id,
        phrase: phrase.to_string(),
        change: audit.change,
        changed_at: audit.at,
    });
    sqlx::query!(
        "INSERT INTO outbox (id, event_type, payload, headers, created_at) VALUES ($1, $2, $3, $4, $5)",
        Uuid::now_v7(),
        event.event_type(),
        event.payload(),
        crate::trace_context::current_headers(),
        audit.at,
    )
    .execute(&mut *conn)
    .await
    .map_err(store_error)?;
    Ok(())
}

#[async_trait]
impl LinkAdminStore for PgLinkAdminStore {
    async fn is_deleted(&self, phrase: &Phrase, scope: Option<i64>) -> Result<bool, StoreError> {
        sqlx::query_scalar!(
            r#"SELECT EXISTS (
                   SELECT 1 FROM phrase_tombstones
                   WHERE phrase = $1 AND ($2::bigint IS NULL OR owner_key_id = $2)
                     AND NOT EXISTS (SELECT 1 FROM links WHERE phrase = $1)
               ) AS "deleted!""#,
            phrase.as_str(),
            scope,
        )
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)
    }

    async fn edit(
        &self,
        phrase: &Phrase,
        scope: Option<i64>,
        edit: &LinkEdit,
        audit: &LinkAuditRecord,
    ) -> Result<Option<Link>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // A changed limit is compared with the human visits counted so far, so
        // raising it re-opens the link and lowering it closes it at once.
        let row = sqlx::query_as!(
            LinkRow,
            r#"UPDATE links l SET
                   target_url = COALESCE($3, l.target_url),
                   expires_at = CASE WHEN $4::boolean THEN $5::timestamptz ELSE l.expires_at END,
                   max_visits = CASE WHEN $6::boolean THEN $7::integer ELSE l.max_visits END,
                   disabled_at = CASE WHEN $8::boolean IS NULL THEN l.disabled_at
                                      WHEN $8::boolean THEN COALESCE(l.disabled_at, $11)
                                      ELSE NULL END,
                   disabled_reason = CASE WHEN $9::boolean THEN $10::text ELSE l.disabled_reason END,
                   limit_reached_at = CASE
                       WHEN NOT $6::boolean THEN l.limit_reached_at
                       WHEN $7::integer IS NOT NULL AND COALESCE(
                           (SELECT s.total_visits - s.bot_visits FROM visit_summaries s WHERE s.link_id = l.id), 0
                       ) >= $7::integer THEN COALESCE(l.limit_reached_at, $11)
                       ELSE NULL END,
                   updated_at = $11
               WHERE l.phrase = $1 AND ($2::bigint IS NULL OR l.owner_key_id = $2)
               RETURNING l.id, l.phrase, l.target_url, l.language_id, l.theme_id, l.created_at, l.owner_key_id,
                         l.expires_at, l.max_visits, l.disabled_at, l.disabled_reason, l.limit_reached_at"#,
            phrase.as_str(),
            scope,
            edit.target_url.as_ref().map(|url| url.as_str()),
            edit.expires_at.is_some(),
            edit.expires_at.flatten(),
            edit.max_visits.is_some(),
            edit.max_visits.flatten().map(|n| n as i32),
            edit.disabled,
            edit.disabled_reason.is_some(),
            edit.disabled_reason.clone().flatten(),
            audit.at,
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let link = Link::try_from(row)?;
        record(&mut tx, link.id, phrase, audit).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(Some(link))
    }

    async fn delete(
        &self,
        phrase: &Phrase,
        scope: Option<i64>,
        quarantined_until: DateTime<Utc>,
        audit: &LinkAuditRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // The summary row first, in the worker's order: it holds the summary
        // while its visit inserts take a key share lock on the link, so deleting
        // the link first (which then cascades to the summary) could deadlock.
        sqlx::query_scalar!(
            "SELECT s.link_id FROM visit_summaries s JOIN links l ON l.id = s.link_id
             WHERE l.phrase = $1 FOR UPDATE OF s",
            phrase.as_str(),
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        // Visits, the summary and the per-link rollups go with the link (ON DELETE
        // CASCADE); service-wide rollups keep the visits it had.
        let deleted = sqlx::query!(
            "DELETE FROM links WHERE phrase = $1 AND ($2::bigint IS NULL OR owner_key_id = $2)
             RETURNING id, owner_key_id",
            phrase.as_str(),
            scope,
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(deleted) = deleted else {
            return Ok(false);
        };
        sqlx::query!(
            "INSERT INTO phrase_tombstones (phrase, link_id, owner_key_id, deleted_at, quarantined_until)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (phrase) DO UPDATE SET link_id = EXCLUDED.link_id, owner_key_id = EXCLUDED.owner_key_id,
                 deleted_at = EXCLUDED.deleted_at, quarantined_until = EXCLUDED.quarantined_until",
            phrase.as_str(),
            deleted.id,
            deleted.owner_key_id,
            audit.at,
            quarantined_until,
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        record(&mut tx, deleted.id, phrase, audit).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(true)
    }

    async fn erase_visits(
        &self,
        phrase: &Phrase,
        scope: Option<i64>,
        audit: &LinkAuditRecord,
    ) -> Result<Option<ErasedVisits>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // `NO KEY UPDATE`, not `UPDATE`: the worker's visit inserts take a key
        // share lock on the link (foreign key) while holding its summary row,
        // which this transaction locks next; `FOR UPDATE` made the two deadlock.
        let link_id = sqlx::query_scalar!(
            "SELECT id FROM links WHERE phrase = $1 AND ($2::bigint IS NULL OR owner_key_id = $2) FOR NO KEY UPDATE",
            phrase.as_str(),
            scope,
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(link_id) = link_id else {
            return Ok(None);
        };
        let raw_visits = sqlx::query!("DELETE FROM visits WHERE link_id = $1", link_id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected();
        // The summary first, then the newest visits: the worker's order. The
        // summary's own column holds what releases before `link_recent_visits`
        // wrote, so it is emptied too.
        sqlx::query!(
            "UPDATE visit_summaries SET recent_visits = NULL, updated_at = $2 WHERE link_id = $1",
            link_id,
            audit.at,
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        let recent_visits = sqlx::query_scalar!(
            r#"DELETE FROM link_recent_visits WHERE link_id = $1 RETURNING jsonb_array_length(visits)::bigint AS "n!""#,
            link_id,
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?
        .unwrap_or(0);
        // Both rollup layouts: rows from before `link_rollups_*` stay in `link_visits_*`.
        let rollup_rows = sqlx::query_scalar!(
            r#"WITH a AS (DELETE FROM link_rollups_hourly WHERE link_id = $1 RETURNING 1),
                    b AS (DELETE FROM link_rollups_daily WHERE link_id = $1 RETURNING 1),
                    c AS (DELETE FROM link_visits_hourly WHERE link_id = $1 RETURNING 1),
                    d AS (DELETE FROM link_visits_daily WHERE link_id = $1 RETURNING 1)
               SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)
                      + (SELECT count(*) FROM c) + (SELECT count(*) FROM d) AS "n!""#,
            link_id,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let erased = ErasedVisits {
            raw_visits,
            recent_visits: u64::try_from(recent_visits).unwrap_or(0),
            rollup_rows: u64::try_from(rollup_rows).unwrap_or(0),
        };
        let audit = LinkAuditRecord {
            detail: serde_json::json!({
                "rawVisits": erased.raw_visits,
                "recentVisits": erased.recent_visits,
                "rollupRows": erased.rollup_rows,
            }),
            ..audit.clone()
        };
        record(&mut tx, link_id, phrase, &audit).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(Some(erased))
    }

    async fn list(
        &self,
        query: &ListLinksQuery,
        scope: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<LinkPage, StoreError> {
        // Every filter is a parameter that is either NULL (off) or a value, so the
        // checked macros see three fixed statements; PostgreSQL plans each
        // execution with the values (custom plans) and drops the filters that are
        // off, so the orders are served by links_created / links_owner_created /
        // visit_summaries_total and searches by links_search_trgm (docs/api.md).
        let pattern = query.search.as_deref().map(contains_pattern);
        let state = state_name(query.state);
        let limit = i64::from(query.page_size);
        let offset = i64::from(query.page.saturating_sub(1)) * limit;
        let rows = match query.order {
            ListOrder::CreatedDesc => {
                sqlx::query_as!(
                    ListedRow,
                    r#"SELECT l.id, l.phrase, l.target_url, l.language_id, l.theme_id, l.created_at, l.owner_key_id,
                          l.expires_at, l.max_visits, l.disabled_at, l.disabled_reason, l.limit_reached_at,
                          COALESCE(s.total_visits, 0) AS "visits!", COALESCE(s.bot_visits, 0) AS "bot_visits!"
                   FROM links l LEFT JOIN visit_summaries s ON s.link_id = l.id
                   WHERE ($1::bigint IS NULL OR l.owner_key_id = $1)
                     AND ($2::text IS NULL OR l.phrase ILIKE $2 OR l.target_url ILIKE $2)
                     AND ($3::text IS NULL
                          OR ($3 = 'disabled' AND l.disabled_at IS NOT NULL)
                          OR ($3 = 'expired' AND l.disabled_at IS NULL AND l.expires_at <= $4)
                          OR ($3 = 'active' AND l.disabled_at IS NULL AND l.limit_reached_at IS NULL
                              AND (l.expires_at IS NULL OR l.expires_at > $4)))
                   ORDER BY l.created_at DESC, l.id DESC
                   LIMIT $5 OFFSET $6"#,
                    scope,
                    pattern,
                    state,
                    now,
                    limit,
                    offset,
                )
                .fetch_all(&self.pool)
                .await
            }
            ListOrder::CreatedAsc => {
                sqlx::query_as!(
                    ListedRow,
                    r#"SELECT l.id, l.phrase, l.target_url, l.language_id, l.theme_id, l.created_at, l.owner_key_id,
                          l.expires_at, l.max_visits, l.disabled_at, l.disabled_reason, l.limit_reached_at,
                          COALESCE(s.total_visits, 0) AS "visits!", COALESCE(s.bot_visits, 0) AS "bot_visits!"
                   FROM links l LEFT JOIN visit_summaries s ON s.link_id = l.id
                   WHERE ($1::bigint IS NULL OR l.owner_key_id = $1)
                     AND ($2::text IS NULL OR l.phrase ILIKE $2 OR l.target_url ILIKE $2)
                     AND ($3::text IS NULL
                          OR ($3 = 'disabled' AND l.disabled_at IS NOT NULL)
                          OR ($3 = 'expired' AND l.disabled_at IS NULL AND l.expires_at <= $4)
                          OR ($3 = 'active' AND l.disabled_at IS NULL AND l.limit_reached_at IS NULL
                              AND (l.expires_at IS NULL OR l.expires_at > $4)))
                   ORDER BY l.created_at ASC, l.id ASC
                   LIMIT $5 OFFSET $6"#,
                    scope,
                    pattern,
                    state,
                    now,
                    limit,
                    offset,
                )
                .fetch_all(&self.pool)
                .await
            }
            // Driven by visit_summaries_total: a link is listed in this order once the
            // worker has its summary (written on link.created, seconds after create).
            ListOrder::VisitsDesc => {
                sqlx::query_as!(
                    ListedRow,
                    r#"SELECT l.id, l.phrase, l.target_url, l.language_id, l.theme_id, l.created_at, l.owner_key_id,
                          l.expires_at, l.max_visits, l.disabled_at, l.disabled_reason, l.limit_reached_at,
                          s.total_visits AS "visits!", s.bot_visits AS "bot_visits!"
                   FROM visit_summaries s JOIN links l ON l.id = s.link_id
                   WHERE ($1::bigint IS NULL OR l.owner_key_id = $1)
                     AND ($2::text IS NULL OR l.phrase ILIKE $2 OR l.target_url ILIKE $2)
                     AND ($3::text IS NULL
                          OR ($3 = 'disabled' AND l.disabled_at IS NOT NULL)
                          OR ($3 = 'expired' AND l.disabled_at IS NULL AND l.expires_at <= $4)
                          OR ($3 = 'active' AND l.disabled_at IS NULL AND l.limit_reached_at IS NULL
                              AND (l.expires_at IS NULL OR l.expires_at > $4)))
                   ORDER BY s.total_visits DESC, s.link_id
                   LIMIT $5 OFFSET $6"#,
                    scope,
                    pattern,
                    state,
                    now,
                    limit,
                    offset,
                )
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(store_error)?;
        let total_items = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM links l
               WHERE ($1::bigint IS NULL OR l.owner_key_id = $1)
                 AND ($2::text IS NULL OR l.phrase ILIKE $2 OR l.target_url ILIKE $2)
                 AND ($3::text IS NULL
                      OR ($3 = 'disabled' AND l.disabled_at IS NOT NULL)
                      OR ($3 = 'expired' AND l.disabled_at IS NULL AND l.expires_at <= $4)
                      OR ($3 = 'active' AND l.disabled_at IS NULL AND l.limit_reached_at IS NULL
                          AND (l.expires_at IS NULL OR l.expires_at > $4)))"#,
            scope,
            pattern,
            state,
            now,
        )
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        let links = rows.into_iter().map(ListedLink::try_from).collect::<Result<_, _>>()?;
        Ok(LinkPage { links, total_items })
    }
}
