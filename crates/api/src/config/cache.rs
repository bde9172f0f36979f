//! The two-level redirect cache of the API: L1 in the process, L2 in Redis.

use std::time::Duration;

use offndat_infrastructure::config::duration_in;

/// The two-level redirect cache: L1 in this process, L2 in Redis.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Redirect cache")]
pub struct CacheConfig {
    /// Use the in-process L1 cache.
    #[arg(long, env = "OFFNDAT_CACHE_L1_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub cache_l1_enabled: bool,

    /// Most links in L1 [range: at least 1].
    #[arg(long, env = "OFFNDAT_CACHE_L1_MAX_ENTRIES", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub cache_l1_max_entries: u64,

    /// Most bytes L1 may hold, counting each entry's phrase, target and overhead
    /// [range: at least 1024].
    ///
    /// An entry weighs its phrase and target plus about 320 bytes: the default
    /// (24 MiB) holds about 67,000 typical links, fewer than
    /// `OFFNDAT_CACHE_L1_MAX_ENTRIES`. Raise it (about 40 MiB per 100,000 links)
    /// when more links are in use.
    #[arg(long, env = "OFFNDAT_CACHE_L1_MAX_BYTES", default_value_t = 24 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..), global = true)]
    pub cache_l1_max_bytes: u64,

    /// How long a link stays in L1 at most. Edits, disables and deletes reach every
    /// replica's L1 within a second through `link.changed`; while RabbitMQ is
    /// down this caps how long a replica may still serve the old answer
    /// [range: 1s to 30d].
    #[arg(long, env = "OFFNDAT_CACHE_L1_TTL", value_parser = duration_in(Duration::from_secs(1), Duration::from_secs(2592000)), default_value = "60s", global = true)]
    pub cache_l1_ttl: Duration,

    /// How long an unread link stays in L1 [range: 1s to 30d].
    #[arg(long, env = "OFFNDAT_CACHE_L1_TIME_TO_IDLE", value_parser = duration_in(Duration::from_secs(1), Duration::from_secs(2592000)), default_value = "2m", global = true)]
    pub cache_l1_time_to_idle: Duration,

    /// How long an unknown phrase is remembered as unknown, in L1 and in Redis
    /// (`0s`: not at all). A link created on another replica under such a phrase
    /// is hidden there for at most this long [range: 0s to 1h].
    #[arg(long, env = "OFFNDAT_CACHE_NEGATIVE_TTL", value_parser = duration_in(Duration::ZERO, Duration::from_secs(3600)), default_value = "2s", global = true)]
    pub cache_negative_ttl: Duration,

    /// Use Redis as the shared L2 cache.
    #[arg(long, env = "OFFNDAT_CACHE_L2_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub cache_l2_enabled: bool,

    /// How long a link stays in Redis [range: 1s to 365d].
    #[arg(long, env = "OFFNDAT_CACHE_L2_TTL", value_parser = duration_in(Duration::from_secs(1), Duration::from_secs(31536000)), default_value = "24h", global = true)]
    pub cache_l2_ttl: Duration,

    /// Prefix of every Redis key this service writes (`<prefix>link:<phrase>`).
    ///
    /// Unset, it is derived from the database (its `deployment_identity` secret
    /// and name): `offndat:<12 hex digits>:`, the same for every replica of a
    /// deployment and different for any other, so deployments sharing a Redis
    /// never share keys; the API logs it at start. Set, it is used as is. Either
    /// way a value is served only if this deployment wrote it (docs/operations.md,
    /// "Several deployments, one Redis").
    #[arg(long, env = "OFFNDAT_REDIS_KEY_PREFIX", global = true)]
    pub redis_key_prefix: Option<String>,

    /// Longest a Redis command (or connecting) may take before it counts as a miss
    /// [range: 1ms to 1m].
    #[arg(long, env = "OFFNDAT_REDIS_TIMEOUT", value_parser = duration_in(Duration::from_millis(1), Duration::from_secs(60)), default_value = "50ms", global = true)]
    pub redis_timeout: Duration,

    /// After a Redis failure, how long to skip Redis before trying again
    /// [range: 0s to 1h].
    #[arg(long, env = "OFFNDAT_REDIS_COOLDOWN", value_parser = duration_in(Duration::ZERO, Duration::from_secs(3600)), default_value = "5s", global = true)]
    pub redis_cooldown: Duration,

    /// How long Redis commands may time out with no answer in between before the
    /// breaker opens; 0s: at the first timeout [range: 0s to 1m].
    ///
    /// A connection error opens it at once. Late answers on a busy machine only
    /// count as misses: with many requests in flight they time out together, and
    /// skipping Redis would send every L1 miss to PostgreSQL.
    #[arg(long, env = "OFFNDAT_REDIS_UNANSWERED_TO_OPEN", value_parser = duration_in(Duration::ZERO, Duration::from_secs(60)), default_value = "1s", global = true)]
    pub redis_unanswered_to_open: Duration,
}
