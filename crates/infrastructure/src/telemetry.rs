//! Logging set-up shared by both binaries.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global `tracing` subscriber. An invalid filter is a start-up error.
pub fn init(config: &LogConfig) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(&config.log).map_err(|e| format!("invalid OFFNDAT_LOG filter `{}`: {e}", config.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        // Colour only for people: log shippers and tests read plain text.
        .with_ansi(std::io::stdout().is_terminal());
    let result = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
    // A second init (tests spawning several apps in one process) keeps the first.
    let _ = result;
    Ok(())
}
