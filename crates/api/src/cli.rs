//! Command-line interface of `offndat-api`.

use offndat_infrastructure::config::ApiConfig;

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
#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Create the database if missing, apply pending migrations, and exit.
    Migrate,
    /// Print the phrase-space size per language and theme of the vocabulary in use.
    Vocabulary,
}
