//! `offndat-api`: serves the v1 HTTP API; `offndat-api migrate` applies migrations;
//! `offndat-api vocabulary` prints the phrase-space sizes; `offndat-api keys ...`
//! manages stored API keys; `offndat-api blocklist apply` takes links down.

use std::process::ExitCode;

/// mimalloc (see `offndat_infrastructure::allocator` for why).
#[global_allocator]
static GLOBAL: offndat_infrastructure::allocator::MiMalloc = offndat_infrastructure::allocator::MiMalloc;

use clap::Parser;
use offndat_api::cli::{Cli, Command};
use offndat_api::commands;
use offndat_infrastructure::shutdown;

fn main() -> ExitCode {
    offndat_infrastructure::allocator::return_freed_memory_promptly();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("offndat-api: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The trace exporter is built on the runtime, and flushed on it at exit.
    let _runtime_context = runtime.enter();
    // Management subcommands print their results on stdout; their logs go to stderr.
    let init = match cli.command {
        Some(Command::Keys { .. } | Command::Blocklist { .. } | Command::CompactRollups) => {
            offndat_infrastructure::telemetry::init_for_cli
        }
        _ => offndat_infrastructure::telemetry::init,
    };
    let telemetry = match init(&cli.config.log, "offndat-api") {
        Ok(telemetry) => telemetry,
        Err(message) => {
            eprintln!("offndat-api: {message}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => commands::serve(cli.config, shutdown::on_signal()).await,
            Command::Migrate => commands::migrate(&cli.config).await,
            Command::Vocabulary => commands::vocabulary(&cli.config),
            Command::Keys { command } => commands::keys(&cli.config, command).await,
            Command::Blocklist { command } => commands::blocklist(&cli.config, command).await,
            Command::CompactRollups => commands::compact_rollups(&cli.config).await,
        }
    });
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One clear line, for operators and for `kubectl logs`.
            tracing::error!("{error:#}");
            eprintln!("offndat-api: {error:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}
