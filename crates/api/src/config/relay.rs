//! The outbox relay, which runs inside the API processes.

use std::time::Duration;

use offndat_infrastructure::config::duration_in;

/// The outbox relay that runs inside every API process.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Outbox relay")]
pub struct RelayConfig {
    /// Run the outbox relay in this process (every replica may; they share the work).
    #[arg(long, env = "OFFNDAT_OUTBOX_RELAY_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub outbox_relay_enabled: bool,

    /// Most outbox rows claimed and published per round [range: 1 to 10000].
    #[arg(long, env = "OFFNDAT_OUTBOX_BATCH_SIZE", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub outbox_batch_size: u32,

    /// Fallback poll interval; NOTIFY normally wakes the relay at once
    /// [range: 10ms to 1h].
    #[arg(long, env = "OFFNDAT_OUTBOX_POLL_INTERVAL", value_parser = duration_in(Duration::from_millis(10), Duration::from_secs(3600)), default_value = "5s", global = true)]
    pub outbox_poll_interval: Duration,

    /// How long published rows are kept before they are pruned [range: 1m to 365d].
    #[arg(long, env = "OFFNDAT_OUTBOX_RETENTION", value_parser = duration_in(Duration::from_secs(60), Duration::from_secs(31536000)), default_value = "1h", global = true)]
    pub outbox_retention: Duration,
}
