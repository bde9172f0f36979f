//! Command-line interface of `offndat-api`.

use crate::config::ApiConfig;

/// offndat API: turns long URLs into memorable, profane three-word phrases.
///
/// Every setting is a flag and an `OFFNDAT_*` environment variable (the flag wins).
#[derive(Debug, clap::Parser)]
#[command(name = "offndat-api", version, about, args_override_self = true)]
pub struct Cli {
    #[command(flatten)]
    pub config: ApiConfig,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do; `serve` when none is given.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Create the database if missing, apply pending migrations, and exit.
    Migrate,
    /// Print the phrase-space size per language and theme of the vocabulary in use.
    Vocabulary,
    /// Manage the API keys stored in PostgreSQL (audited as actor `cli`).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Apply the domain blocklist (`OFFNDAT_BLOCKLIST_FILE`) to existing links.
    Blocklist {
        #[command(subcommand)]
        command: BlocklistCommand,
    },
    /// Compact every link's pending days, today included, into its daily rollups
    /// (the workers compact closed days by themselves). Before rolling back to a
    /// release that reads only daily rows: stop the workers, run this, roll back.
    CompactRollups,
}

/// `offndat-api keys ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its secret on stdout, once (only its hash is stored).
    Create {
        /// Unique name: 1-64 letters, digits, `.`, `_`, `-`.
        #[arg(long)]
        name: String,
        /// `admin` (everything) or `creator` (its own links only).
        #[arg(long, value_parser = ["admin", "creator"])]
        role: String,
    },
    /// List every key (never secrets), revoked ones too.
    List,
    /// Revoke a key: every API process refuses it within a second.
    Revoke {
        /// The key's name.
        name: String,
    },
}

/// `offndat-api blocklist ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BlocklistCommand {
    /// Disable every link whose target is on a blocklisted domain (or below one).
    Apply {
        /// Only list the links that match; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}
