//! The offndat worker: consumes link events from RabbitMQ into PostgreSQL, and
//! serves health and metrics endpoints. `main.rs` is only the process around it.

pub mod app;
pub mod cli;
pub mod config;
mod health;

pub use app::Worker;
