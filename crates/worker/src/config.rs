//! Settings of `offndat-worker`: its listener, consuming and retention here, and
//! the settings it shares with the API from `offndat_infrastructure::config`.
//! Every setting is a flag and an `OFFNDAT_*` environment variable (the flag
//! wins); `--help` prints them.

use std::net::SocketAddr;
use std::time::Duration;

use offndat_infrastructure::config::{DatabaseConfig, LogConfig, MessagingConfig, VisitLogConfig, duration_in};

/// Settings of the worker binary. Each group has a help heading, shared by
/// `--help` and the tables of docs/configuration.md; the worker's own settings
/// come before the groups, whose headings would carry over to them.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Worker")]
pub struct WorkerConfig {
    /// Address of the worker's health and metrics endpoints: `/health/live`,
    /// `/health/ready`, `/health` and `/metrics`.
    #[arg(long, env = "OFFNDAT_WORKER_LISTEN", default_value = "127.0.0.1:8091", global = true)]
    pub worker_listen: SocketAddr,

    /// Most unacknowledged deliveries per queue (AMQP prefetch) [range: 1 to 65535].
    ///
    /// A `link.visited` message holds up to 500 links (about 400 KB when each
    /// has a newest visit, 1 MiB at most), so this bounds the memory of
    /// deliveries waiting for their batch.
    #[arg(long, env = "OFFNDAT_WORKER_PREFETCH", default_value_t = 200, value_parser = clap::value_parser!(u16).range(1..), global = true)]
    pub worker_prefetch: u16,

    /// Most deliveries applied (and merged per link) in one batch, one database
    /// transaction per lane [range: 1 to 10000].
    ///
    /// A batch takes whatever is waiting, up to this and
    /// `OFFNDAT_WORKER_BATCH_MAX_BYTES`: idle, a batch is a message or two;
    /// behind, batches grow and each link's visits of many flushes become one
    /// write, which is how the worker catches up.
    #[arg(long, env = "OFFNDAT_WORKER_BATCH_SIZE", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub worker_batch_size: u32,

    /// Concurrent transactions a batch is applied in, each over its own share
    /// of the links [range: 1 to 16].
    ///
    /// The API cuts visit events by link partition (16), and a batch's
    /// partitions are spread over the lanes, so the lanes' transactions write
    /// different rows and use as many PostgreSQL cores. Each lane's messages are
    /// acknowledged once it commits; a lane that fails is retried (or split)
    /// alone. Each lane holds a connection of `OFFNDAT_DATABASE_MAX_CONNECTIONS`
    /// while it runs, for each of the two queues. `1` applies a batch in one
    /// transaction.
    #[arg(long, env = "OFFNDAT_WORKER_LANES", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=16), global = true)]
    pub worker_lanes: u8,

    /// Longest a delivery waits for its batch to fill [range: 1ms to 1m].
    #[arg(long, env = "OFFNDAT_WORKER_BATCH_TIMEOUT", value_parser = duration_in(Duration::from_millis(1), Duration::from_secs(60)), default_value = "50ms", global = true)]
    pub worker_batch_timeout: Duration,

    /// Most message bytes in one batch: a batch stops filling once its bodies
    /// reach this, so the worker's memory is bounded by it whatever the batch
    /// size [range: 1024 to 1073741824].
    ///
    /// A batch is parsed, merged and written (one transaction per lane): its memory is
    /// a few times its bodies. The default, 64 MiB, holds about 160 visit
    /// events over 500 links each, about 80,000 links: over 100,000 links at
    /// 25,000 visits a second, smaller batches left the worker further behind
    /// the longer the load lasted (docs/performance.md). The worker's peak
    /// memory at the default is about 300 MB; a single message larger than this
    /// still forms a batch alone.
    #[arg(long, env = "OFFNDAT_WORKER_BATCH_MAX_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u32).range(1024..=1024 * 1024 * 1024), global = true)]
    pub worker_batch_max_bytes: u32,

    /// Largest message body the worker reads, in bytes; larger ones are
    /// dead-lettered unread [range: 1024 to 134217728].
    ///
    /// From 1 KiB to 128 MiB; the default is 16 MiB. The API never writes events
    /// near this size (it splits flushes at 1 MiB).
    #[arg(long, env = "OFFNDAT_WORKER_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u32).range(1024..=128 * 1024 * 1024), global = true)]
    pub worker_max_message_bytes: u32,

    /// Most visits one message may add to one link (and orphan visits to one hour);
    /// a message claiming more is dead-lettered, not applied
    /// [range: 1 to 1000000000000000].
    #[arg(long, env = "OFFNDAT_WORKER_MAX_VISITS_PER_LINK", default_value_t = 10_000_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000_000), global = true)]
    pub worker_max_visits_per_link: u64,

    /// How long applied message ids are remembered for de-duplication
    /// [range: 1m to 365d].
    #[arg(long, env = "OFFNDAT_INBOX_RETENTION", value_parser = duration_in(Duration::from_secs(60), Duration::from_secs(31536000)), default_value = "7d", global = true)]
    pub inbox_retention: Duration,

    /// How long SIGTERM waits for the batch in hand [range: 0s to 1h].
    #[arg(long, env = "OFFNDAT_SHUTDOWN_TIMEOUT", value_parser = duration_in(Duration::ZERO, Duration::from_secs(3600)), default_value = "30s", global = true)]
    pub shutdown_timeout: Duration,

    #[command(flatten)]
    pub visit_log: VisitLogConfig,

    #[command(flatten)]
    pub database: DatabaseConfig,

    #[command(flatten)]
    pub messaging: MessagingConfig,

    #[command(flatten)]
    pub log: LogConfig,
}

#[cfg(test)]
mod tests {
    use offndat_infrastructure::config::reference;

    use super::*;

    #[test]
    fn every_default_is_within_its_bounds() {
        use clap::Parser;
        #[derive(Parser)]
        struct Worker {
            #[command(flatten)]
            config: WorkerConfig,
        }
        assert!(Worker::try_parse_from(["worker"]).is_ok());
    }

    /// docs/configuration.md's tables of the worker's settings are rendered from
    /// their definitions; regenerate with `OFFNDAT_UPDATE_DOCS=1`.
    #[test]
    fn config_docs_match_the_definitions() {
        use clap::CommandFactory;
        if let Err(message) = reference::check_docs(&crate::cli::Cli::command(), "worker") {
            panic!("{message}");
        }
    }
}
