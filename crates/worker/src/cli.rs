//! Command-line interface of `offndat-worker`.

use crate::config::WorkerConfig;

/// offndat worker: consumes link events from RabbitMQ.
///
/// Every setting is a flag and an `OFFNDAT_*` environment variable (the flag wins).
#[derive(Debug, clap::Parser)]
#[command(name = "offndat-worker", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub config: WorkerConfig,
}
