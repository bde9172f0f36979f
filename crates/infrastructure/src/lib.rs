//! Adapters of offndat: configuration, PostgreSQL stores and migrations, vocabulary
//! loading, telemetry, and the system clock and randomness.

pub mod allocator;
pub mod amqp;
pub mod blocklist;
pub mod cache;
pub mod config;
pub mod deployment;
pub mod outbox_relay;
pub mod postgres;
pub mod shutdown;
pub mod stored_keys;
pub mod system;
pub mod telemetry;
pub mod trace_context;
pub mod user_agents;
pub mod visit_aggregator;
pub mod vocabulary;
