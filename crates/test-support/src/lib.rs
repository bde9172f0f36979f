//! Helpers for integration tests: a database per test, an AMQP namespace per test,
//! a Redis key prefix per test, a redis-server of a test's own (password, TLS), a
//! TCP proxy that simulates outages, polling with a deadline, the one launcher of
//! the real binaries and the one parser of their `/metrics` pages.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod amqp;
mod database;
mod metrics;
mod poll;
mod process;
mod proxy;
mod redis;
mod redis_server;

pub use amqp::{AmqpNamespace, amqp_url};
pub use database::{TestDatabase, postgres_server};
pub use metrics::{Metrics, Sample};
pub use poll::eventually;
pub use process::{Binary, EXIT_DEADLINE, Launch, Listening, Log, Process, START_DEADLINE};
pub use proxy::TcpProxy;
pub use redis::{RedisPrefix, redis_url};
pub use redis_server::RedisServer;
