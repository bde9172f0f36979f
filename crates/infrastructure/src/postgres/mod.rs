//! PostgreSQL: start-up (create the database if missing, migrate), the connection
//! pool, and the stores.

mod bootstrap;
mod errors;
mod event_ledger;
mod link_store;
mod rollups;
mod stats_store;
mod visit_store;

pub use bootstrap::{BootstrapError, connect, lookup_pool, migrate, pending_migrations};
pub use errors::is_unavailable;
pub use event_ledger::{PgEventLedger, PgLedgerError};
pub use link_store::PgLinkStore;
pub use stats_store::PgVisitStatsStore;
pub use visit_store::{FlushBatch, MAX_LINKS_PER_EVENT, PgVisitStore};

/// The migrations of record, embedded in the binaries.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
