//! `offndat-worker`: consumes the events the API publishes. Until the events
//! pipeline lands it only starts, says so, and exits cleanly.

use std::process::ExitCode;

use clap::Parser;
use offndat_infrastructure::config::WorkerConfig;

/// offndat worker: consumes link events from RabbitMQ.
///
/// Every setting is a flag and an `OFFNDAT_*` environment variable (the flag wins).
#[derive(Debug, Parser)]
#[command(name = "offndat-worker", version, about)]
struct Cli {
    #[command(flatten)]
    config: WorkerConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = offndat_infrastructure::telemetry::init(&cli.config.log) {
        eprintln!("offndat-worker: {message}");
        return ExitCode::from(2);
    }
    tracing::info!(listen = %cli.config.worker_listen, "offndat-worker started; nothing to consume yet, exiting");
    ExitCode::SUCCESS
}
