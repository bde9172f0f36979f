//! Helpers for integration tests: a database per test, an AMQP namespace per test,
//! a TCP proxy that simulates outages, a redis-server of a test's own, and polling
//! with a deadline.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod amqp;
mod database;
mod poll;
mod proxy;
mod redis;
mod redis_server;

pub use amqp::{AmqpNamespace, amqp_url};
pub use database::{TestDatabase, postgres_server};
pub use poll::eventually;
pub use proxy::TcpProxy;
pub use redis::{RedisPrefix, redis_url};
pub use redis_server::RedisServer;
