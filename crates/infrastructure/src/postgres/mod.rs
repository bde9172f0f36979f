//! PostgreSQL: start-up (create the database if missing, migrate), the connection
//! pool, and the stores.

mod bootstrap;
mod errors;
mod link_store;

pub use bootstrap::{BootstrapError, connect, migrate};
pub use link_store::PgLinkStore;

/// The migrations of record, embedded in the binaries.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
