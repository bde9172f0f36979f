//! The audit trail: who (a key's name) did what to which link, when; read by
//! admins page by page, newest first.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::ApplicationError;
use crate::pagination::{Page, PageRequest};
use crate::ports::StoreError;

/// One audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The acting key's name, `OFFNDAT_API_KEYS#n`, `cli` or `OFFNDAT_BLOCKLIST_FILE`.
    pub actor: String,
    /// Dotted: `key.created`, `key.revoked`, `blocklist.changed`, `link.disabled`, ...
    pub action: String,
    pub link_phrase: Option<String>,
    /// Action-specific details, never a secret.
    pub detail: serde_json::Value,
}

/// Reads the audit log. (Rows are written by the stores, in the transaction of
/// the change they record.)
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// The entries of `page`, newest first, and how many there are in all.
    async fn page(&self, page: PageRequest) -> Result<(Vec<AuditEntry>, u64), StoreError>;
}

/// The read-audit use case.
#[derive(Clone)]
pub struct ReadAudit {
    log: Arc<dyn AuditLog>,
}

impl ReadAudit {
    pub fn new(log: Arc<dyn AuditLog>) -> Self {
        Self { log }
    }

    /// One page of the audit log, newest first.
    pub async fn execute(&self, page: PageRequest) -> Result<Page<AuditEntry>, ApplicationError> {
        let (items, total) = self.log.page(page).await?;
        Ok(Page::new(items, page, total))
    }
}
