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
