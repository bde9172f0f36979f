//! `LinkTakedowns` on PostgreSQL: the links a blocklist apply walks through.

use async_trait::async_trait;
use offndat_application::blocklist::{LinkTakedowns, LinkTarget, Takedown};
use offndat_application::ports::StoreError;
use offndat_domain::TargetUrl;
use sqlx::PgPool;
use uuid::Uuid;

use super::errors::store_error;

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
        // TODO(integration): also skip links already disabled
        // (`AND disabled_at IS NULL`) once the link-lifecycle columns exist.
        let rows = sqlx::query!(
            "SELECT id, phrase, target_url FROM links WHERE id > $1 ORDER BY id LIMIT $2",
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

    async fn disable(&self, takedowns: &[Takedown], _actor: &str) -> Result<u64, StoreError> {
        // Disabling is the link-lifecycle work (its `disabled_at` and
        // `disabled_reason` columns, `link.changed` event and cache eviction),
        // which this branch does not have; the integrator wires it here.
        Err(StoreError::Other(
            format!(
                "cannot disable {} link(s): disabling links needs the link-lifecycle migration (disabled_at, \
                 disabled_reason); use --dry-run to list them",
                takedowns.len()
            )
            .into(),
        ))
    }
}
