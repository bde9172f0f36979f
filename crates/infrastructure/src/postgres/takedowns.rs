//! `LinkTakedowns` on PostgreSQL: the links a blocklist apply walks through.

use async_trait::async_trait;
use chrono::Utc;
use offndat_application::blocklist::{LinkTakedowns, LinkTarget, Takedown};
use offndat_application::events::LinkChange;
use offndat_application::manage_links::LinkAuditRecord;
use offndat_application::ports::StoreError;
use offndat_domain::{Phrase, TargetUrl};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::errors::store_error;
use super::link_admin::record;

/// Links for take-downs, in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgLinkTakedowns {
    pool: PgPool,
}

impl PgLinkTakedowns {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl LinkTakedowns for PgLinkTakedowns {
    async fn links_after(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<LinkTarget>, StoreError> {
        // Keyset pagination on the primary key: every batch is an index range scan.
        let rows = sqlx::query!(
            "SELECT id, phrase, target_url FROM links WHERE id > $1 AND disabled_at IS NULL ORDER BY id LIMIT $2",
            after.unwrap_or(Uuid::nil()),
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows
            .into_iter()
            .map(|row| LinkTarget {
                id: row.id,
                phrase: row.phrase,
                host: TargetUrl::from_stored(&row.target_url).map(|t| t.host()).unwrap_or_default(),
            })
            .collect())
    }

    async fn disable(&self, takedowns: &[Takedown], actor: &str) -> Result<u64, StoreError> {
        // One transaction: every link of this batch is disabled with its audit row
        // and its `link.changed` event (which makes every API replica evict it from
        // its caches), or none is.
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let mut disabled = 0;
        for takedown in takedowns {
            let at = Utc::now();
            let reason = format!("blocklisted: {}", takedown.domain);
            let row = sqlx::query!(
                "UPDATE links SET disabled_at = $2, disabled_reason = $3, updated_at = $2
                 WHERE id = $1 AND disabled_at IS NULL RETURNING phrase",
                takedown.link.id,
                at,
                reason,
            )
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
            // Disabled (or deleted) since it was listed: nothing to do.
            let Some(row) = row else { continue };
            let phrase = Phrase::parse(&row.phrase).map_err(|e| StoreError::Other(Box::new(e)))?;
            let audit = LinkAuditRecord {
                actor: actor.to_owned(),
                change: LinkChange::Disabled,
                detail: json!({ "reason": reason, "domain": takedown.domain }),
                at,
            };
            record(&mut tx, takedown.link.id, &phrase, &audit).await?;
            disabled += 1;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(disabled)
    }
}
