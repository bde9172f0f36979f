//! Configuration shared by both binaries: PostgreSQL, the broker and Redis
//! endpoints, logging, and the visit log, plus the bounded value parsers every
//! setting uses. Each binary's own settings live in its crate
//! (`offndat_api::config`, `offndat_worker::config`) and flatten these in. Every
//! setting is a flag and an `OFFNDAT_*` environment variable (the flag wins);
//! every field is documented, and `--help` prints it. `reference` renders the
//! tables of docs/configuration.md from these definitions.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

mod bounded;
pub mod reference;

pub use bounded::{duration_in, parse_positive_rate};

pub use crate::visit_aggregator::VisitLog;

/// A value that must never reach a log line: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret<String> {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.trim().to_owned()))
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Logging settings shared by both binaries.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Logging and traces")]
pub struct LogConfig {
    /// Log format.
    #[arg(long, env = "OFFNDAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` env-filter syntax, e.g. `info,offndat=debug`.
    ///
    /// `info,sqlx=warn` quiets the database driver;
    /// `info,offndat_api::request_context=debug` adds an access log line per
    /// request.
    #[arg(long, env = "OFFNDAT_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Which spans are exported as OpenTelemetry traces, in the same syntax; used
    /// only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    #[arg(long, env = "OFFNDAT_TRACE_FILTER", default_value = "info", global = true)]
    pub trace_filter: String,
}

/// PostgreSQL settings shared by both binaries.
#[derive(Clone, clap::Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseConfig {
    /// PostgreSQL URL. The database is created if missing.
    #[arg(
        long,
        env = "OFFNDAT_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/offndat",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Url,

    /// Most connections this process opens to PostgreSQL [range: 1 to 10000].
    #[arg(long, env = "OFFNDAT_DATABASE_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub database_max_connections: u32,

    /// How long a query waits for a free connection before failing with 503
    /// [range: 1ms to 10m].
    #[arg(long, env = "OFFNDAT_DATABASE_ACQUIRE_TIMEOUT", value_parser = duration_in(Duration::from_millis(1), Duration::from_secs(600)), default_value = "3s", global = true)]
    pub database_acquire_timeout: Duration,

    /// How long start-up keeps retrying an unreachable PostgreSQL (with capped
    /// exponential backoff) before giving up [range: 0s to 1d].
    #[arg(long, env = "OFFNDAT_DATABASE_STARTUP_TIMEOUT", value_parser = duration_in(Duration::ZERO, Duration::from_secs(86400)), default_value = "60s", global = true)]
    pub database_startup_timeout: Duration,
}

impl DatabaseConfig {
    /// The URL with any password replaced, for log lines.
    pub fn redacted_url(&self) -> String {
        redact(&self.database_url)
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("database_url", &self.redacted_url())
            .field("database_max_connections", &self.database_max_connections)
            .field("database_acquire_timeout", &self.database_acquire_timeout)
            .field("database_startup_timeout", &self.database_startup_timeout)
            .finish()
    }
}

/// A URL with its password replaced by `***`.
pub fn redact(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        // Only fails for URLs that cannot have a password, which then has none.
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

/// Broker and cache endpoints shared by both binaries.
#[derive(Clone, clap::Args)]
#[command(next_help_heading = "Broker and Redis")]
pub struct MessagingConfig {
    /// Redis URL of the shared (L2) redirect cache.
    ///
    /// `redis://[user]:password@host:port/db`, or `rediss://…` for TLS: the
    /// server's certificate is verified against the system's roots, or against
    /// the PEM file in `SSL_CERT_FILE` for a private CA (`#insecure` is refused).
    #[arg(
        long,
        env = "OFFNDAT_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true,
        global = true
    )]
    pub redis_url: Url,

    /// RabbitMQ URL the outbox relay publishes to and the worker consumes from.
    /// Connections propose 32 KiB frames unless its query sets `frame_max`
    /// (each connection keeps two buffers of 32 frames).
    #[arg(
        long,
        env = "OFFNDAT_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true,
        global = true
    )]
    pub amqp_url: Url,

    /// Prefix of every RabbitMQ name: exchange `<ns>.events`, queues
    /// `<ns>.link-visited` and `<ns>.link-created`, dead letters `<ns>.dead-letter`.
    ///
    /// 1 to 100 letters, digits, `-`, `_` and `.`.
    #[arg(long, env = "OFFNDAT_AMQP_NAMESPACE", default_value = "offndat", value_parser = parse_namespace, global = true)]
    pub amqp_namespace: String,
}

impl fmt::Debug for MessagingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessagingConfig")
            .field("redis_url", &redact(&self.redis_url))
            .field("amqp_url", &redact(&self.amqp_url))
            .field("amqp_namespace", &self.amqp_namespace)
            .finish()
    }
}

/// What is kept of raw visits; both binaries read it (the API writes the full
/// log, the worker prunes it).
#[derive(Debug, Clone, Copy, clap::Args)]
#[command(next_help_heading = "Visits")]
pub struct VisitLogConfig {
    /// `recent`: keep each link's newest 10 visits only. `full`: keep every visit
    /// (written with COPY), pruned after `OFFNDAT_VISIT_RETENTION_DAYS`. Totals
    /// and rollups are exact and kept either way.
    ///
    /// Set it the same on the API and the worker.
    #[arg(long, env = "OFFNDAT_VISIT_LOG", value_enum, default_value_t = VisitLog::Recent, global = true)]
    pub visit_log: VisitLog,

    /// Days the full visit log keeps a visit [range: 1 to 36500].
    ///
    /// The worker prunes older ones; totals and rollups stay.
    #[arg(long, env = "OFFNDAT_VISIT_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=36_500), global = true)]
    pub visit_retention_days: u32,
}

impl VisitLogConfig {
    /// The age past which raw visits go: `None` keeps none (`recent`).
    pub fn prune_older_than(&self) -> Option<Duration> {
        match self.visit_log {
            VisitLog::Recent => None,
            VisitLog::Full => Some(Duration::from_secs(u64::from(self.visit_retention_days) * 86_400)),
        }
    }
}

fn parse_namespace(raw: &str) -> Result<String, String> {
    let valid = !raw.is_empty()
        && raw.len() <= 100
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid { Ok(raw.to_owned()) } else { Err("use 1-100 characters of letters, digits, `-`, `_`, `.`".to_owned()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_passwords_stay_out_of_debug() {
        let secret = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{secret:?}"), "***");
        let url = Url::parse("postgres://app:hunter2@db:5432/offndat").expect("url");
        assert_eq!(redact(&url), "postgres://app:***@db:5432/offndat");
    }
}
