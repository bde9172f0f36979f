//! Who may call the API and where links may point: stored API keys, target
//! rules and the domain blocklist.

use std::path::PathBuf;
use std::time::Duration;

use offndat_infrastructure::config::duration_in;

/// Stored API keys and target rules of the API binary.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Access")]
pub struct AccessConfig {
    /// How often each API process checks PostgreSQL for key changes; a new or
    /// revoked stored key takes effect everywhere within about this long
    /// [range: 10ms to 1s].
    #[arg(long, env = "OFFNDAT_KEYS_REFRESH_INTERVAL", value_parser = duration_in(Duration::from_millis(10), Duration::from_secs(1)), default_value = "250ms", global = true)]
    pub keys_refresh_interval: Duration,

    /// How long the last known stored keys are trusted while PostgreSQL cannot be
    /// polled; after that stored keys get 503 until it answers (keys from
    /// `OFFNDAT_API_KEYS` keep working) [range: 100ms to 1h].
    ///
    /// At least twice `OFFNDAT_KEYS_REFRESH_INTERVAL` (checked at start).
    #[arg(long, env = "OFFNDAT_KEYS_MAX_STALENESS", value_parser = duration_in(Duration::from_millis(100), Duration::from_secs(3600)), default_value = "5s", global = true)]
    pub keys_max_staleness: Duration,

    /// Accept targets on private, loopback, link-local and carrier-grade NAT
    /// addresses and local-only names (`localhost`, `*.local`, `*.internal`), for
    /// intranet deployments. Unspecified and multicast addresses, and URLs with
    /// user info, stay refused.
    #[arg(long, env = "OFFNDAT_ALLOW_PRIVATE_TARGETS", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub allow_private_targets: bool,

    /// Comma-separated other host names this service is reached by; targets on
    /// them (any port or path) are refused like the public base URL's.
    ///
    /// For old domains and internal names. Names are normalised (IDNA, case,
    /// trailing dot); an entry that is not a host name stops start-up.
    #[arg(long, env = "OFFNDAT_SELF_HOSTS", value_delimiter = ',', global = true)]
    pub self_hosts: Vec<String>,

    /// A file of blocked domains, one a line (`#` comments; subdomains included).
    /// Creating or editing a link to one fails with `GenerateLink.TargetUrlBlocked`.
    /// Re-read every second; a broken file keeps the previous list.
    ///
    /// `*.x` means the same as `x`. A file that does not parse at start stops
    /// start-up; later, the problem is logged and the previous list stays.
    #[arg(long, env = "OFFNDAT_BLOCKLIST_FILE", global = true)]
    pub blocklist_file: Option<PathBuf>,
}
