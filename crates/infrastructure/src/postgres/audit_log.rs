//! `AuditLog` on PostgreSQL: pages of `audit_log`, newest first.

use async_trait::async_trait;
use offndat_application::PageRequest;
use offndat_application::audit::{AuditEntry, AuditLog};
use offndat_application::ports::StoreError;
use sqlx::PgPool;

use super::errors::store_error;

/// The audit log in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgAuditLog {
    pool: PgPool,
}

impl PgAuditLog {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Writes a `blocklist.changed` row with `detail` unless the newest such row
    /// has the same `sha256`: every replica reloads the same file, and one row
    /// per change is wanted. The advisory lock makes that check-then-insert safe
    /// between replicas. `Ok(true)` when a row was written.
    pub async fn record_blocklist(
        &self,
        actor: &str,
        fingerprint: &str,
        detail: serde_json::Value,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('offndat.audit.blocklist'))").execute(&mut *tx).await?;
        let written = sqlx::query!(
            "INSERT INTO audit_log (actor, action, detail)
             SELECT $1, 'blocklist.changed', $2
             WHERE (SELECT detail->>'sha256' FROM audit_log WHERE action = 'blocklist.changed'
                    ORDER BY at DESC, id DESC LIMIT 1) IS DISTINCT FROM $3",
            actor,
            detail,
            fingerprint
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(written == 1)
    }
}

#[async_trait]
impl AuditLog for PgAuditLog {
    async fn page(&self, page: PageRequest) -> Result<(Vec<AuditEntry>, u64), StoreError> {
        let offset = i64::try_from(page.offset()).unwrap_or(i64::MAX);
        // Served by the `audit_log_newest` index.
        let entries = sqlx::query_as!(
            AuditEntry,
            "SELECT id, at, actor, action, link_phrase, detail FROM audit_log
             ORDER BY at DESC, id DESC LIMIT $1 OFFSET $2",
            i64::from(page.page_size()),
            offset
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let total = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM audit_log"#)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok((entries, u64::try_from(total).unwrap_or(0)))
    }
}
