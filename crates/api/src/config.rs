//! Settings of `offndat-api`: its listeners, API keys and behaviour here, its
//! own groups in the submodules (redirect cache, limits, access, outbox relay),
//! and the settings it shares with the worker from
//! `offndat_infrastructure::config`. Every setting is a flag and an `OFFNDAT_*`
//! environment variable (the flag wins); `--help` prints them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use offndat_infrastructure::config::{DatabaseConfig, LogConfig, MessagingConfig, Secret, VisitLogConfig, duration_in};
use url::Url;

mod access;
mod cache;
mod limits;
mod relay;

pub use access::AccessConfig;
pub use cache::CacheConfig;
pub use limits::LimitsConfig;
pub use relay::RelayConfig;

/// Settings of the API binary.
///
/// Each group has a help heading, shared by `--help` and the tables of
/// docs/configuration.md. The service's own settings come first; a flattened
/// group's heading carries over to the fields after it, so every field below the
/// first group names its heading.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Service")]
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
    ///
    /// An http or https URL, without query or fragment.
    #[arg(long, env = "OFFNDAT_PUBLIC_BASE_URL", default_value = "http://127.0.0.1:8090", value_parser = parse_base_url, global = true)]
    pub public_base_url: Url,

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

    /// Apply pending migrations at start (safe with many replicas: they take a lock).
    #[arg(long, env = "OFFNDAT_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub migrate_on_start: bool,

    /// How long shutdown waits for in-flight requests before exiting anyway
    /// [range: 0s to 1h].
    ///
    /// It also bounds how long the final write of the visits counted in memory
    /// keeps retrying a database that is down.
    #[arg(long, env = "OFFNDAT_SHUTDOWN_TIMEOUT", value_parser = duration_in(Duration::ZERO, Duration::from_secs(3600)), default_value = "30s", global = true)]
    pub shutdown_timeout: Duration,

    /// Days a deleted link's phrase is not issued again (generated or chosen); it
    /// answers `410 Link.Deleted` meanwhile [range: 0 to 36500].
    ///
    /// With 0, a reissued phrase may still answer `410` on other replicas for up
    /// to `OFFNDAT_CACHE_L1_TTL`.
    #[arg(long, env = "OFFNDAT_PHRASE_QUARANTINE_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=36_500), global = true)]
    pub phrase_quarantine_days: u32,

    /// Comma-separated API keys accepted in `X-Offnd-Api-Key`, each at least 32
    /// characters and none a placeholder from deploy/ (unless
    /// `OFFNDAT_DEVELOPMENT_MODE`). When none is set a random key is generated at
    /// start and written to `OFFNDAT_GENERATED_API_KEY_FILE`, never to the log.
    ///
    /// These are admin keys, audited as `OFFNDAT_API_KEYS#n` (n from 1, in list
    /// order). A short or placeholder key (`local-dev-key`, `CHANGE-ME…`) stops
    /// start-up with a line naming its position, never the key. Keys stored with
    /// `offndat-api keys create` work besides these.
    #[arg(
        long,
        env = "OFFNDAT_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true,
        global = true,
        help_heading = "Access"
    )]
    pub api_keys: Vec<Secret<String>>,

    /// Where a generated API key is written (created readable by its owner only,
    /// replaced if present). Default: `offndat-api-<pid>.key` in the temporary
    /// directory.
    #[arg(long, env = "OFFNDAT_GENERATED_API_KEY_FILE", global = true, help_heading = "Access")]
    pub generated_api_key_file: Option<PathBuf>,

    /// Development mode: accepts short API keys and the placeholders of deploy/
    /// (`local-dev-key`). Never in production.
    ///
    /// For a laptop and for tests; docker-compose.yaml turns it on.
    #[arg(long, env = "OFFNDAT_DEVELOPMENT_MODE", default_value_t = false, action = clap::ArgAction::Set, global = true, help_heading = "Access")]
    pub development_mode: bool,

    #[command(flatten)]
    pub access: AccessConfig,

    #[command(flatten)]
    pub limits: LimitsConfig,

    /// Largest request body accepted, in bytes; larger bodies get a 413 problem
    /// [range: 1024 to 67108864].
    #[arg(long, env = "OFFNDAT_MAX_BODY_BYTES", default_value_t = 64 * 1024, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=64 * 1024 * 1024), global = true, help_heading = "Limits")]
    pub max_body_bytes: usize,

    #[command(flatten)]
    pub cache: CacheConfig,

    #[command(flatten)]
    pub visit_log: VisitLogConfig,

    /// How often the visits counted in memory are written, as one transaction
    /// of events per flush (PostgreSQL sees about one transaction per interval,
    /// whatever the visit rate) [range: 10ms to 60s]. Shorter would make PostgreSQL the bottleneck
    /// again; longer holds counts back.
    #[arg(long, env = "OFFNDAT_VISIT_FLUSH_INTERVAL", value_parser = duration_in(Duration::from_millis(10), Duration::from_secs(60)), default_value = "1s", global = true, help_heading = "Visits")]
    pub visit_flush_interval: Duration,

    /// Distinct (link, hour, user agent, referrer host) keys in memory at which a
    /// flush starts before the interval is up [range: at least 1].
    #[arg(long, env = "OFFNDAT_VISIT_FLUSH_AT_KEYS", default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(1..), global = true, help_heading = "Visits")]
    pub visit_flush_at_keys: u32,

    /// Store visitors' IPs anonymised (IPv4 last octet zeroed, IPv6 cut to /48).
    /// `false` stores them whole.
    #[arg(long, env = "OFFNDAT_ANONYMIZE_IPS", default_value_t = true, action = clap::ArgAction::Set, global = true, help_heading = "Visits")]
    pub anonymize_ips: bool,

    /// How long a stats answer (`/v1/links/{phrase}/stats`, `/v1/stats`) is reused
    /// by each replica; counts change once per flush interval at most. `0s` turns
    /// the cache off [range: 0s to 1h].
    #[arg(long, env = "OFFNDAT_STATS_CACHE_TTL", value_parser = duration_in(Duration::ZERO, Duration::from_secs(3600)), default_value = "2s", global = true, help_heading = "Visits")]
    pub stats_cache_ttl: Duration,

    #[command(flatten)]
    pub relay: RelayConfig,

    #[command(flatten)]
    pub database: DatabaseConfig,

    /// PostgreSQL cancels a redirect lookup (a phrase not in the caches) running
    /// longer than this (its `statement_timeout`); the redirect then answers 503
    /// [range: 10ms to 60s].
    #[arg(long, env = "OFFNDAT_DATABASE_LOOKUP_TIMEOUT", value_parser = duration_in(Duration::from_millis(10), Duration::from_secs(60)), default_value = "1s", global = true, help_heading = "Database")]
    pub database_lookup_timeout: Duration,

    /// Connections of the separate pool redirect lookups use, on top of
    /// `OFFNDAT_DATABASE_MAX_CONNECTIONS`: a flood of unknown phrases can take
    /// these, never the ones creates and stats need [range: 1 to 1000].
    #[arg(long, env = "OFFNDAT_DATABASE_LOOKUP_CONNECTIONS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000), global = true, help_heading = "Database")]
    pub database_lookup_connections: u32,

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

fn parse_ip_net(raw: &str) -> Result<IpNet, String> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{raw}` is neither an IP address nor a CIDR block"))
}

#[cfg(test)]
mod tests {
    use offndat_infrastructure::config::reference;

    use super::*;

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
    fn every_default_is_within_its_bounds() {
        use clap::Parser;
        #[derive(Parser)]
        struct Api {
            #[command(flatten)]
            config: ApiConfig,
        }
        assert!(Api::try_parse_from(["api"]).is_ok());
    }

    /// docs/configuration.md's tables of the API's settings are rendered from
    /// their definitions; regenerate with `OFFNDAT_UPDATE_DOCS=1`.
    #[test]
    fn config_docs_match_the_definitions() {
        use clap::CommandFactory;
        if let Err(message) = reference::check_docs(&crate::cli::Cli::command(), "api") {
            panic!("{message}");
        }
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
