//! `LinkAdminStore` on PostgreSQL: edits, deletes and visit erasure, each in one
//! transaction with its audit row and its `link.changed` outbox row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offndat_application::events::{Event, LinkChangedV1};
use offndat_application::manage_links::{AuditEntry, ErasedVisits, LinkAdminStore, LinkEdit};
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

/// Writes the audit row and the `link.changed` outbox row of a change.
async fn record(conn: &mut PgConnection, link_id: Uuid, phrase: &Phrase, audit: &AuditEntry) -> Result<(), StoreError> {
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
        audit: &AuditEntry,
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
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
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
        audit: &AuditEntry,
    ) -> Result<Option<ErasedVisits>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let link_id = sqlx::query_scalar!(
            "SELECT id FROM links WHERE phrase = $1 AND ($2::bigint IS NULL OR owner_key_id = $2) FOR UPDATE",
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
        let recent_visits = sqlx::query_scalar!(
            r#"WITH old AS (
                   SELECT link_id, COALESCE(jsonb_array_length(recent_visits), 0) AS n
                   FROM visit_summaries WHERE link_id = $1 FOR UPDATE
               )
               UPDATE visit_summaries s SET recent_visits = '[]'::jsonb, updated_at = $2
               FROM old WHERE s.link_id = old.link_id
               RETURNING old.n AS "n!""#,
            link_id,
            audit.at,
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?
        .unwrap_or(0);
        let hourly = sqlx::query!("DELETE FROM link_visits_hourly WHERE link_id = $1", link_id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected();
        let daily = sqlx::query!("DELETE FROM link_visits_daily WHERE link_id = $1", link_id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected();
        let erased = ErasedVisits {
            raw_visits,
            recent_visits: u64::try_from(recent_visits).unwrap_or(0),
            rollup_rows: hourly + daily,
        };
        let audit = AuditEntry {
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
}
