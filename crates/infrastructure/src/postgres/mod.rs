//! PostgreSQL: start-up (create the database if missing, migrate), the connection
//! pool, and the stores.

mod audit_log;
mod bootstrap;
mod bulk_connection;
mod errors;
mod event_ledger;
mod idempotency;
mod key_store;
mod link_admin;
mod link_store;
mod rollups;
mod stats_store;
mod takedowns;
mod visit_store;

pub use audit_log::PgAuditLog;
pub use bootstrap::{BootstrapError, connect, lookup_pool, migrate, pending_migrations};
pub use bulk_connection::BulkConnection;
pub use errors::is_unavailable;
pub use event_ledger::{PgEventLedger, PgLedgerError};
pub use idempotency::PgIdempotencyStore;
pub use key_store::{ActiveKey, PgKeyStore};
pub use link_admin::PgLinkAdminStore;
pub use link_store::PgLinkStore;
pub use stats_store::PgVisitStatsStore;
pub use takedowns::PgLinkTakedowns;
pub use visit_store::{FlushBatch, MAX_LINKS_PER_EVENT, PgVisitStore};

/// The migrations of record, embedded in the binaries.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
