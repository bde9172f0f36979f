//! Protection of the API: rate limits, timeouts, connection and size caps.

use std::time::Duration;

use offndat_infrastructure::config::{duration_in, parse_positive_rate};

/// Protection of the API: rate limits (per client IP, per replica), timeouts and
/// sizes.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitsConfig {
    /// `false` turns rate limiting off (benchmarks from one IP).
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub rate_limit_enabled: bool,

    /// Redirects a client may make in a burst (token bucket size) [range: at least 1].
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_REDIRECT_BURST", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub rate_limit_redirect_burst: u32,

    /// Redirect tokens refilled per second (the original: 10 every 10 s)
    /// [range: 0.001 to 1000000].
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_REDIRECT_PER_SECOND", default_value_t = 1.0, value_parser = parse_positive_rate, global = true)]
    pub rate_limit_redirect_per_second: f64,

    /// Requests a client may make to the other v1 routes per minute
    /// [range: at least 1].
    ///
    /// QR codes and stats pages count too; health, metrics, docs, the home page
    /// and `/assets/` are never limited.
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_API_PER_MINUTE", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub rate_limit_api_per_minute: u32,

    /// Links a client may create from the home page per minute (a bucket of
    /// its own; the API's `POST /v1/links` is not affected) [range: at least 1].
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_WEB_CREATE_PER_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub rate_limit_web_create_per_minute: u32,

    /// Links one API key may create per minute, on every replica alike (a quota
    /// per key, on top of the per-client limits): a leaked or runaway key cannot
    /// fill the phrase space [range: at least 1].
    ///
    /// Past it, creates get `429 General.TooManyRequests` with `Retry-After`.
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_CREATE_PER_KEY_PER_MINUTE", default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub rate_limit_create_per_key_per_minute: u32,

    /// IPv6 clients share a bucket per network of this prefix length (a host
    /// usually holds a whole /64 and could rotate addresses in it); IPv4 (and
    /// IPv4-mapped IPv6) clients have one each [range: 32 to 128].
    #[arg(long, env = "OFFNDAT_RATE_LIMIT_IPV6_PREFIX", default_value_t = 64, value_parser = clap::value_parser!(u8).range(32..=128), global = true)]
    pub rate_limit_ipv6_prefix: u8,

    /// Longest a v1 API request or a page may take, body included, before a 408
    /// problem [range: 1ms to 10m].
    #[arg(long, env = "OFFNDAT_REQUEST_TIMEOUT", value_parser = duration_in(Duration::from_millis(1), Duration::from_secs(600)), default_value = "10s", global = true)]
    pub request_timeout: Duration,

    /// Longest the server waits for a request's headers in full, from when it
    /// starts waiting: a client trickling headers is closed, and so is a kept-alive
    /// HTTP/1.1 connection idle this long (the wait for the next request starts
    /// when a response is sent) [range: 100ms to 5m].
    #[arg(long, env = "OFFNDAT_HTTP_HEADER_READ_TIMEOUT", value_parser = duration_in(Duration::from_millis(100), Duration::from_secs(300)), default_value = "10s", global = true)]
    pub http_header_read_timeout: Duration,

    /// Longest a connection's read or write may wait without progress before the
    /// connection is closed: a client that stops sending its body or reading the
    /// answer, or a quiet HTTP/2 connection [range: 1s to 1h].
    ///
    /// Must exceed `OFFNDAT_REQUEST_TIMEOUT` (checked at start).
    #[arg(long, env = "OFFNDAT_HTTP_IDLE_TIMEOUT", value_parser = duration_in(Duration::from_secs(1), Duration::from_secs(3600)), default_value = "60s", global = true)]
    pub http_idle_timeout: Duration,

    /// Most client connections open at once; more wait in the kernel's accept
    /// queue until one closes [range: 1 to 1000000].
    ///
    /// Keep it below the process's file descriptor limit (`ulimit -n`) less the
    /// database and broker connections.
    #[arg(long, env = "OFFNDAT_HTTP_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub http_max_connections: u32,

    /// Largest total size of a request's headers, in bytes; more gets a 431 problem
    /// [range: 1024 to 1048576].
    #[arg(long, env = "OFFNDAT_MAX_HEADER_BYTES", default_value_t = 16 * 1024, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1024 * 1024), global = true)]
    pub max_header_bytes: usize,
}
