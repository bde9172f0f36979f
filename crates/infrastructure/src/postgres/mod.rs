//! PostgreSQL: start-up (create the database if missing, migrate), the connection
//! pool, and the stores.

mod bootstrap;
mod errors;
mod event_ledger;
mod link_store;
mod visit_store;

pub use bootstrap::{BootstrapError, connect, migrate};
pub use errors::is_unavailable;
pub use event_ledger::{InboxMessage, LedgerError, LedgerOutcome, PgEventLedger};
pub use link_store::PgLinkStore;
pub use visit_store::{BotCheck, IsBot, PgVisitStore};

/// The migrations of record, embedded in the binaries.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
