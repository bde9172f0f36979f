//! Typed configuration of both binaries, from flags and `OFFNDAT_*` environment
//! variables (flags win). Every field is documented here; `--help` prints it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

mod access;

pub use access::AccessConfig;

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
pub struct LogConfig {
    /// Log format.
    #[arg(long, env = "OFFNDAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` env-filter syntax, e.g. `info,offndat=debug`.
    #[arg(long, env = "OFFNDAT_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Which spans are exported as OpenTelemetry traces, in the same syntax; used
    /// only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    #[arg(long, env = "OFFNDAT_TRACE_FILTER", default_value = "info", global = true)]
    pub trace_filter: String,
}

/// PostgreSQL settings shared by both binaries.
#[derive(Clone, clap::Args)]
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

    /// Most connections this process opens to PostgreSQL.
    #[arg(long, env = "OFFNDAT_DATABASE_MAX_CONNECTIONS", default_value_t = 16, global = true)]
    pub database_max_connections: u32,

    /// How long a query waits for a free connection before failing with 503.
    #[arg(long, env = "OFFNDAT_DATABASE_ACQUIRE_TIMEOUT", value_parser = duration_in(Duration::from_millis(1), Duration::from_secs(600)), default_value = "3s", global = true)]
    pub database_acquire_timeout: Duration,

    /// How long start-up keeps retrying an unreachable PostgreSQL before giving up.
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
pub struct MessagingConfig {
    /// Redis URL of the shared (L2) redirect cache.
    #[arg(
        long,
        env = "OFFNDAT_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true,
        global = true
    )]
    pub redis_url: Url,

    /// RabbitMQ URL the outbox relay publishes to and the worker consumes from.
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

/// Settings of the API binary.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiConfig {
    /// Address the API listens on: the v1 API, short URLs, `/health/live`, the
    /// OpenAPI document and `/docs`.
    #[arg(long, env = "OFFNDAT_LISTEN", default_value = "127.0.0.1:8090", global = true)]
    pub listen: SocketAddr,

    /// Address of the operations endpoints (`/health/live`, `/health/ready`,
    /// `/health`, `/metrics`): for probes and Prometheus, never the internet.
    #[arg(long, env = "OFFNDAT_OPS_LISTEN", default_value = "127.0.0.1:8092", global = true)]
    pub ops_listen: SocketAddr,

    /// Base of the short URLs handed out (`<base>/<phrase>`); targets under it are refused.
    #[arg(long, env = "OFFNDAT_PUBLIC_BASE_URL", default_value = "http://127.0.0.1:8090", value_parser = parse_base_url, global = true)]
    pub public_base_url: Url,

    /// Comma-separated API keys accepted in `X-Offnd-Api-Key`, each at least 32
    /// characters and none a placeholder from deploy/ (unless
    /// `OFFNDAT_DEVELOPMENT_MODE`). When none is set a random key is generated at
    /// start and written to `OFFNDAT_GENERATED_API_KEY_FILE`, never to the log.
    #[arg(long, env = "OFFNDAT_API_KEYS", value_delimiter = ',', hide_env_values = true, global = true)]
    pub api_keys: Vec<Secret<String>>,

    /// Where a generated API key is written (created readable by its owner only,
    /// replaced if present). Default: `offndat-api-<pid>.key` in the temporary
    /// directory.
    #[arg(long, env = "OFFNDAT_GENERATED_API_KEY_FILE", global = true)]
    pub generated_api_key_file: Option<PathBuf>,

    /// Development mode: accepts short API keys and the placeholders of deploy/
    /// (`local-dev-key`). Never in production.
    #[arg(long, env = "OFFNDAT_DEVELOPMENT_MODE", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub development_mode: bool,

    /// Load vocabularies from this directory (same layout as the built-in ones)
    /// instead of the built-in lists.
    #[arg(long, env = "OFFNDAT_VOCABULARY_DIR", global = true)]
    pub vocabulary_dir: Option<PathBuf>,

    /// Comma-separated origins allowed to call the API from a browser (CORS).
    #[arg(long, env = "OFFNDAT_CORS_ORIGINS", value_delimiter = ',', global = true)]
    pub cors_origins: Vec<String>,

    /// Comma-separated IPs or CIDRs of proxies whose `X-Forwarded-For` is believed.
    #[arg(long, env = "OFFNDAT_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_ip_net, global = true)]
    pub trusted_proxies: Vec<IpNet>,

    /// Let people create links from the home page (`/`) without an API key, under
    /// their own rate limit (`OFFNDAT_RATE_LIMIT_WEB_CREATE_PER_MINUTE`). `false`
    /// leaves the page up but without its form, saying how to use the API instead.
    #[arg(long, env = "OFFNDAT_WEB_CREATE", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub web_create: bool,

    #[command(flatten)]
    pub limits: LimitsConfig,

    #[command(flatten)]
    pub access: AccessConfig,

    /// Apply pending migrations at start (safe with many replicas: they take a lock).
    #[arg(long, env = "OFFNDAT_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub migrate_on_start: bool,

    /// Largest request body accepted, in bytes; larger bodies get a 413 problem.
    #[arg(long, env = "OFFNDAT_MAX_BODY_BYTES", default_value_t = 64 * 1024, global = true)]
    pub max_body_bytes: usize,

    /// How long shutdown waits for in-flight requests before exiting anyway.
    #[arg(long, env = "OFFNDAT_SHUTDOWN_TIMEOUT", value_parser = duration_in(Duration::ZERO, Duration::from_secs(3600)), default_value = "30s", global = true)]
    pub shutdown_timeout: Duration,

    /// How often the visits counted in memory are written, as one event per flush
    /// (PostgreSQL sees about one transaction per interval, whatever the visit rate).
    #[arg(long, env = "OFFNDAT_VISIT_FLUSH_INTERVAL", value_parser = parse_flush_interval, default_value = "1s", global = true)]
    pub visit_flush_interval: Duration,

    /// Distinct (link, hour, user agent, referrer host) keys in memory at which a
    /// flush starts before the interval is up.
    #[arg(long, env = "OFFNDAT_VISIT_FLUSH_AT_KEYS", default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub visit_flush_at_keys: u32,

    /// Store visitors' IPs anonymised (IPv4 last octet zeroed, IPv6 cut to /48).
    /// `false` stores them whole.
    #[arg(long, env = "OFFNDAT_ANONYMIZE_IPS", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub anonymize_ips: bool,

    /// How long a stats answer (`/v1/links/{phrase}/stats`, `/v1/stats`) is reused;
    /// counts change once per flush interval at most. `0s` turns the cache off.
    #[arg(long, env = "OFFNDAT_STATS_CACHE_TTL", value_parser = duration_in(Duration::ZERO, Duration::from_secs(3600)), default_value = "2s", global = true)]
    pub stats_cache_ttl: Duration,

    /// Days a deleted link's phrase is not issued again (generated or chosen); it
    /// answers `410 Link.Deleted` meanwhile.
    #[arg(long, env = "OFFNDAT_PHRASE_QUARANTINE_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=36_500), global = true)]
    pub phrase_quarantine_days: u32,

    /// PostgreSQL cancels a redirect lookup (a phrase not in the caches) running
    /// longer than this; the redirect then answers 503.
    #[arg(long, env = "OFFNDAT_DATABASE_LOOKUP_TIMEOUT", value_parser = duration_in(Duration::from_millis(10), Duration::from_secs(60)), default_value = "1s", global = true)]
    pub database_lookup_timeout: Duration,

    /// Connections of the separate pool redirect lookups use, on top of
    /// `OFFNDAT_DATABASE_MAX_CONNECTIONS`: a flood of unknown phrases can take
    /// these, never the ones creates and stats need.
    #[arg(long, env = "OFFNDAT_DATABASE_LOOKUP_CONNECTIONS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub database_lookup_connections: u32,

    #[command(flatten)]
    pub visit_log: VisitLogConfig,

    #[command(flatten)]
    pub relay: RelayConfig,

    #[command(flatten)]
    pub cache: CacheConfig,

    #[command(flatten)]
    pub database: DatabaseConfig,

    #[command(flatten)]
    pub messaging: MessagingConfig,

    #[command(flatten)]
    pub log: LogConfig,
}

/// What is kept of raw visits; both binaries read it (the API writes the full
/// log, the worker prunes it).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct VisitLogConfig {
    /// `recent`: keep each link's newest 10 visits only. `full`: keep every visit
    /// (written with COPY), pruned after `OFFNDAT_VISIT_RETENTION_DAYS`. Totals
    /// and rollups are exact and kept either way.
    #[arg(long, env = "OFFNDAT_VISIT_LOG", value_enum, default_value_t = VisitLog::Recent, global = true)]
    pub visit_log: VisitLog,

    /// Days the full visit log keeps a visit.
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

/// The two-level redirect cache: L1 in this process, L2 in Redis.
#[derive(Debug, Clone, clap::Args)]
pub struct CacheConfig {
    /// Use the in-process L1 cache.
    #[arg(long, env = "OFFNDAT_CACHE_L1_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub cache_l1_enabled: bool,

    /// Most links in L1.
    #[arg(long, env = "OFFNDAT_CACHE_L1_MAX_ENTRIES", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub cache_l1_max_entries: u64,

    /// Most bytes L1 may hold, counting each entry's phrase, target and overhead.
    #[arg(long, env = "OFFNDAT_CACHE_L1_MAX_BYTES", default_value_t = 24 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..), global = true)]
    pub cache_l1_max_bytes: u64,

    /// How long a link stays in L1 at most. Edits, disables and deletes reach every
    /// replica's L1 within a second through `link.changed`; while RabbitMQ is
    /// down this caps how long a replica may still serve the old answer.
    #[arg(long, env = "OFFNDAT_CACHE_L1_TTL", value_parser = duration_in(Duration::from_secs(1), Duration::from_secs(2592000)), default_value = "60s", global = true)]
    pub cache_l1_ttl: Duration,

    /// How long an unread link stays in L1.
    #[arg(long, env = "OFFNDAT_CACHE_L1_TIME_TO_IDLE", value_parser = duration_in(Duration::from_secs(1), Duration::from_secs(2592000)), default_value = "2m", global = true)]
    pub cache_l1_time_to_idle: Duration,

    /// How long an unknown phrase is remembered as unknown in L1. A link created on
    /// another replica under such a phrase is hidden there for at most this long.
    #[arg(long, env = "OFFNDAT_CACHE_NEGATIVE_TTL", value_parser = duration_in(Duration::ZERO, Duration::from_secs(3600)), default_value = "2s", global = true)]
    pub cache_negative_ttl: Duration,

    /// Use Redis as the shared L2 cache.
    #[arg(long, env = "OFFNDAT_CACHE_L2_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub cache_l2_enabled: bool,

    /// How long a link stays in Redis.
    #[arg(long, env = "OFFNDAT_CACHE_L2_TTL", value_parser = duration_in(Duration::from_secs(1), Duration::from_secs(31536000)), default_value = "24h", global = true)]
    pub cache_l2_ttl: Duration,

    /// Prefix of every Redis key this service writes.
    #[arg(long, env = "OFFNDAT_REDIS_KEY_PREFIX", default_value = "offndat:", global = true)]
    pub redis_key_prefix: String,

    /// Longest a Redis command (or connecting) may take before it counts as a miss.
    #[arg(long, env = "OFFNDAT_REDIS_TIMEOUT", value_parser = duration_in(Duration::from_millis(1), Duration::from_secs(60)), default_value = "50ms", global = true)]
    pub redis_timeout: Duration,

    /// After a Redis failure, how long to skip Redis before trying again.
    #[arg(long, env = "OFFNDAT_REDIS_COOLDOWN", value_parser = duration_in(Duration::ZERO, Duration::from_secs(3600)), default_value = "5s", global = true)]
    pub redis_cooldown: Duration,

    /// How long Redis commands may time out with no answer in between before the
    /// breaker opens (a connection error opens it at once). Late answers on a
    /// busy machine only count as misses; 0s: open at the first timeout.
    #[arg(long, env = "OFFNDAT_REDIS_UNANSWERED_TO_OPEN", value_parser = duration_in(Duration::ZERO, Duration::from_secs(60)), default_value = "1s", global = true)]
    pub redis_unanswered_to_open: Duration,
}

/// Protection of the API: rate limits (per client IP, per replica), timeouts and
/// sizes.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitsConfig {
    /// `false` turns rate limiting off (benchmarks from one IP).
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub rate_limit_enabled: bool,

    /// Redirects a client may make in a burst (token bucket size).
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_REDIRECT_BURST", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub rate_limit_redirect_burst: u32,

    /// Redirect tokens refilled per second (the original: 10 every 10 s).
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_REDIRECT_PER_SECOND", default_value_t = 1.0, value_parser = parse_positive_rate, global = true)]
    pub rate_limit_redirect_per_second: f64,

    /// Requests a client may make to the other v1 routes per minute.
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_API_PER_MINUTE", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub rate_limit_api_per_minute: u32,

    /// Links a client may create from the home page per minute (a bucket of
    /// its own; the API's `POST /v1/links` is not affected).
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_WEB_CREATE_PER_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub rate_limit_web_create_per_minute: u32,

    /// Links one API key may create per minute, on every replica alike (a quota
    /// per key, on top of the per-client limits): a leaked or runaway key cannot
    /// fill the phrase space.
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_CREATE_PER_KEY_PER_MINUTE", default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub rate_limit_create_per_key_per_minute: u32,

    /// IPv6 clients share a bucket per network of this prefix length (a host
    /// usually holds a whole /64 and could rotate addresses in it); IPv4 clients
    /// have one each.
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_IPV6_PREFIX", default_value_t = 64, value_parser = clap::value_parser!(u8).range(32..=128), global = true)]
    pub rate_limit_ipv6_prefix: u8,

    /// Longest a request may take, body included, before a 408 problem.
    #[arg(long, env = "OFFNDAT_REQUEST_TIMEOUT", value_parser = duration_in(Duration::from_millis(1), Duration::from_secs(600)), default_value = "10s", global = true)]
    pub request_timeout: Duration,

    /// Longest the server waits for a request's headers in full, from when it
    /// starts waiting: a client trickling headers is closed, and so is a kept-alive
    /// HTTP/1.1 connection idle this long (the wait for the next request starts
    /// when a response is sent).
    #[arg(long, env = "OFFNDAT_HTTP_HEADER_READ_TIMEOUT", value_parser = duration_in(Duration::from_millis(100), Duration::from_secs(300)), default_value = "10s", global = true)]
    pub http_header_read_timeout: Duration,

    /// Longest a connection's read or write may wait without progress before the
    /// connection is closed: a client that stops sending its body or reading the
    /// answer, or a quiet HTTP/2 connection. Must exceed `OFFNDAT_REQUEST_TIMEOUT`.
    #[arg(long, env = "OFFNDAT_HTTP_IDLE_TIMEOUT", value_parser = duration_in(Duration::from_secs(1), Duration::from_secs(3600)), default_value = "60s", global = true)]
    pub http_idle_timeout: Duration,

    /// Most client connections open at once; more wait in the kernel's accept
    /// queue until one closes. Keep it below the process's file descriptor limit.
    #[arg(long, env = "OFFNDAT_HTTP_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub http_max_connections: u32,

    /// Largest total size of a request's headers, in bytes; more gets a 431 problem.
    #[arg(long, env = "OFFNDAT_MAX_HEADER_BYTES", default_value_t = 16 * 1024, global = true)]
    pub max_header_bytes: usize,
}

/// A flush interval between 10 ms and 1 minute: shorter would make PostgreSQL
/// the bottleneck again, longer holds counts back for too long.
fn parse_flush_interval(raw: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(raw).map_err(|e| e.to_string())?;
    if (Duration::from_millis(10)..=Duration::from_secs(60)).contains(&interval) {
        Ok(interval)
    } else {
        Err("must be between 10ms and 60s".to_owned())
    }
}

/// A rate of tokens per second from one per 1000 s to a million per second, so
/// the refill period `1 / rate` is a representable duration of at least 1 µs
/// (a tiny rate made `Duration::from_secs_f64` panic).
fn parse_positive_rate(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(rate) if (0.001..=1_000_000.0).contains(&rate) => Ok(rate),
        _ => Err("must be a number from 0.001 to 1000000".to_owned()),
    }
}

/// A value parser for a duration from `min` to `max` inclusive: every duration
/// ends up added to an `Instant` or handed to a cache, where an absurd one
/// (`2000years`) panics or overflows, and a zero timeout fails everything.
pub(crate) fn duration_in(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |raw| {
        let duration = humantime::parse_duration(raw.trim()).map_err(|e| e.to_string())?;
        if (min..=max).contains(&duration) {
            Ok(duration)
        } else {
            Err(format!("must be from {} to {}", humantime::format_duration(min), humantime::format_duration(max)))
        }
    }
}

/// The outbox relay that runs inside every API process.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayConfig {
    /// Run the outbox relay in this process (every replica may; they share the work).
    #[arg(long, env = "OFFNDAT_OUTBOX_RELAY_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub outbox_relay_enabled: bool,

    /// Most outbox rows claimed and published per round.
    #[arg(long, env = "OFFNDAT_OUTBOX_BATCH_SIZE", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub outbox_batch_size: u32,

    /// Fallback poll interval; NOTIFY normally wakes the relay at once.
    #[arg(long, env = "OFFNDAT_OUTBOX_POLL_INTERVAL", value_parser = duration_in(Duration::from_millis(10), Duration::from_secs(3600)), default_value = "5s", global = true)]
    pub outbox_poll_interval: Duration,

    /// How long published rows are kept before they are pruned.
    #[arg(long, env = "OFFNDAT_OUTBOX_RETENTION", value_parser = duration_in(Duration::from_secs(60), Duration::from_secs(31536000)), default_value = "1h", global = true)]
    pub outbox_retention: Duration,
}

/// Settings of the worker binary.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerConfig {
    /// Address of the worker's health and metrics endpoints.
    #[arg(long, env = "OFFNDAT_WORKER_LISTEN", default_value = "127.0.0.1:8091", global = true)]
    pub worker_listen: SocketAddr,

    /// Most unacknowledged deliveries per queue (AMQP prefetch).
    #[arg(long, env = "OFFNDAT_WORKER_PREFETCH", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..), global = true)]
    pub worker_prefetch: u16,

    /// Most deliveries applied in one database transaction.
    #[arg(long, env = "OFFNDAT_WORKER_BATCH_SIZE", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub worker_batch_size: u32,

    /// Longest a delivery waits for its batch to fill.
    #[arg(long, env = "OFFNDAT_WORKER_BATCH_TIMEOUT", value_parser = duration_in(Duration::from_millis(1), Duration::from_secs(60)), default_value = "50ms", global = true)]
    pub worker_batch_timeout: Duration,

    /// Largest message body the worker reads; larger ones are dead-lettered unread.
    /// The API never writes events near this size (it splits flushes at 1 MiB).
    #[arg(long, env = "OFFNDAT_WORKER_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u32).range(1024..=128 * 1024 * 1024), global = true)]
    pub worker_max_message_bytes: u32,

    /// Most visits one message may add to one link (and orphan visits to one hour);
    /// a message claiming more is dead-lettered, not applied.
    #[arg(long, env = "OFFNDAT_WORKER_MAX_VISITS_PER_LINK", default_value_t = 10_000_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000_000), global = true)]
    pub worker_max_visits_per_link: u64,

    /// How long applied message ids are remembered for de-duplication.
    #[arg(long, env = "OFFNDAT_INBOX_RETENTION", value_parser = duration_in(Duration::from_secs(60), Duration::from_secs(31536000)), default_value = "7d", global = true)]
    pub inbox_retention: Duration,

    /// How long SIGTERM waits for the batch in hand.
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

/// Shortest API key accepted outside development mode: 32 characters of a
/// generated key (`openssl rand -hex 32` gives 64) are beyond guessing.
pub const MIN_API_KEY_CHARS: usize = 32;

/// API keys shipped in deploy/ as placeholders; they are public, so never keys.
pub const PLACEHOLDER_API_KEYS: &[&str] = &["local-dev-key", "CHANGE-ME-api-key"];

/// Refuses configured API keys that are short or placeholders, unless in
/// development mode; one message per key, naming it by position only.
pub fn check_api_keys(keys: &[Secret<String>], development_mode: bool) -> Result<(), String> {
    if development_mode {
        return Ok(());
    }
    let problems: Vec<String> = keys
        .iter()
        .enumerate()
        .filter_map(|(i, key)| {
            let key = key.expose();
            let n = i + 1;
            if PLACEHOLDER_API_KEYS.contains(&key.as_str()) || key.to_ascii_lowercase().contains("change-me") {
                Some(format!("key {n} is a placeholder from the deployment files"))
            } else if key.chars().count() < MIN_API_KEY_CHARS {
                Some(format!("key {n} has {} characters, fewer than {MIN_API_KEY_CHARS}", key.chars().count()))
            } else {
                None
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "OFFNDAT_API_KEYS: {}; use random keys (`openssl rand -hex 32`), or OFFNDAT_DEVELOPMENT_MODE=true on a development machine",
            problems.join("; ")
        ))
    }
}

/// A public base URL: absolute http(s), no query or fragment; kept without a
/// trailing slash so `<base>/<phrase>` joins cleanly.
pub fn parse_base_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http or https URL with a host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    Ok(url)
}

/// The base URL as a string without trailing slash.
pub fn base_without_slash(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

fn parse_namespace(raw: &str) -> Result<String, String> {
    let valid = !raw.is_empty()
        && raw.len() <= 100
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid { Ok(raw.to_owned()) } else { Err("use 1-100 characters of letters, digits, `-`, `_`, `.`".to_owned()) }
}

fn parse_ip_net(raw: &str) -> Result<IpNet, String> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{raw}` is neither an IP address nor a CIDR block"))
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

    #[test]
    fn base_urls_are_checked() {
        assert!(parse_base_url("https://offnd.at").is_ok());
        assert!(parse_base_url("offnd.at").is_err());
        assert!(parse_base_url("ftp://offnd.at").is_err());
        assert!(parse_base_url("https://offnd.at/?x=1").is_err());
        assert_eq!(base_without_slash(&parse_base_url("https://offnd.at").expect("ok")), "https://offnd.at");
        assert_eq!(base_without_slash(&parse_base_url("https://x.io/s/").expect("ok")), "https://x.io/s");
    }

    #[test]
    fn rates_are_bounded_so_their_period_is_a_duration() {
        assert_eq!(parse_positive_rate("0.5"), Ok(0.5));
        assert_eq!(parse_positive_rate("0.001"), Ok(0.001));
        for bad in ["0", "-1", "1e-300", "1e300", "inf", "NaN", "fast"] {
            assert_eq!(parse_positive_rate(bad), Err("must be a number from 0.001 to 1000000".to_owned()), "{bad}");
        }
        // Every accepted rate has a refill period `Duration::from_secs_f64` takes.
        for rate in [0.001, 1_000_000.0] {
            assert!(Duration::try_from_secs_f64(1.0 / rate).is_ok());
        }
    }

    #[test]
    fn durations_are_bounded_with_a_message_naming_the_bounds() {
        let parse = duration_in(Duration::from_millis(1), Duration::from_secs(600));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse(" 10m "), Ok(Duration::from_secs(600)));
        assert_eq!(parse("0s"), Err("must be from 1ms to 10m".to_owned()));
        assert_eq!(parse("11m"), Err("must be from 1ms to 10m".to_owned()));
        assert_eq!(parse("2000years"), Err("must be from 1ms to 10m".to_owned()));
        assert_eq!(parse("soon"), Err("expected number at 0".to_owned()));
    }

    #[test]
    fn every_default_is_within_its_bounds() {
        use clap::Parser;
        #[derive(Parser)]
        struct Api {
            #[command(flatten)]
            config: ApiConfig,
        }
        #[derive(Parser)]
        struct Worker {
            #[command(flatten)]
            config: WorkerConfig,
        }
        assert!(Api::try_parse_from(["api"]).is_ok());
        assert!(Worker::try_parse_from(["worker"]).is_ok());
    }

    #[test]
    fn short_and_placeholder_api_keys_are_refused_outside_development_mode() {
        let keys = |raw: &[&str]| raw.iter().map(|k| Secret::new((*k).to_owned())).collect::<Vec<_>>();
        let long = "a".repeat(MIN_API_KEY_CHARS);
        assert_eq!(check_api_keys(&keys(&[&long]), false), Ok(()));
        assert_eq!(check_api_keys(&keys(&["short", "local-dev-key"]), true), Ok(()));
        assert_eq!(
            check_api_keys(
                &keys(&[&long, "short", "local-dev-key", "CHANGE-ME-api-key-but-longer-than-32-chars"]),
                false
            ),
            Err("OFFNDAT_API_KEYS: key 2 has 5 characters, fewer than 32; \
                 key 3 is a placeholder from the deployment files; \
                 key 4 is a placeholder from the deployment files; \
                 use random keys (`openssl rand -hex 32`), or OFFNDAT_DEVELOPMENT_MODE=true on a development machine"
                .to_owned())
        );
    }

    #[test]
    fn every_api_key_placeholder_in_deploy_is_refused() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut found = Vec::new();
        for file in ["deploy/kubernetes/secret.yaml", "docker-compose.yaml"] {
            let text = std::fs::read_to_string(root.join(file)).expect(file);
            for line in text.lines().filter(|l| l.trim_start().starts_with("OFFNDAT_API_KEYS:")) {
                let value = line.split_once(':').map(|(_, v)| v.trim().trim_matches('"')).unwrap_or_default();
                // `${OFFNDAT_API_KEYS:-default}` in compose: the default is the placeholder.
                let value = value.rsplit(":-").next().unwrap_or(value).trim_end_matches('}');
                found.push(value.to_owned());
            }
        }
        assert_eq!(found.len(), 2, "{found:?}");
        for placeholder in found {
            assert!(check_api_keys(&[Secret::new(placeholder.clone())], false).is_err(), "{placeholder}");
        }
    }

    #[test]
    fn trusted_proxies_take_ips_and_cidrs() {
        assert_eq!(parse_ip_net("10.0.0.0/8").map(|n| n.to_string()), Ok("10.0.0.0/8".to_owned()));
        assert_eq!(parse_ip_net(" 127.0.0.1 ").map(|n| n.to_string()), Ok("127.0.0.1/32".to_owned()));
        assert!(parse_ip_net("proxy.local").is_err());
    }
}
