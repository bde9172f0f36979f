//! Helpers for integration tests: a database per test, an AMQP namespace per test,
//! a TCP proxy that simulates outages, and polling with a deadline.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod amqp;
mod database;
mod poll;
mod proxy;
mod redis;

pub use amqp::{AmqpNamespace, amqp_url};
pub use database::{TestDatabase, postgres_server};
pub use poll::eventually;
pub use proxy::TcpProxy;
pub use redis::{RedisPrefix, redis_url};
