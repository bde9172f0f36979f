//! Adapters of offndat: configuration, PostgreSQL stores and migrations, vocabulary
//! loading, telemetry, and the system clock and randomness.

pub mod config;
pub mod events;
pub mod postgres;
pub mod system;
pub mod telemetry;
pub mod vocabulary;
