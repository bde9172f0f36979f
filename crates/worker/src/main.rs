//! `offndat-worker`: consumes the events the API publishes (visit counts, created
//! links) into PostgreSQL, and serves health and metrics endpoints.

use std::process::ExitCode;

/// mimalloc (see `offndat_infrastructure::allocator` for why).
#[global_allocator]
static GLOBAL: offndat_infrastructure::allocator::MiMalloc = offndat_infrastructure::allocator::MiMalloc;

use clap::Parser;
use offndat_infrastructure::shutdown;
use offndat_worker::Worker;
use offndat_worker::cli::Cli;

fn main() -> ExitCode {
    offndat_infrastructure::allocator::return_freed_memory_promptly();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("offndat-worker: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The trace exporter is built on the runtime, and flushed on it at exit.
    let _runtime_context = runtime.enter();
    let telemetry = match offndat_infrastructure::telemetry::init(&cli.config.log, "offndat-worker") {
        Ok(telemetry) => telemetry,
        Err(message) => {
            eprintln!("offndat-worker: {message}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        let shutdown = shutdown::on_signal();
        // Start-up may wait for PostgreSQL; a signal meanwhile is a clean stop.
        let worker = tokio::select! {
            worker = Worker::build(cli.config) => worker?,
            () = shutdown.cancelled() => return Ok(()),
        };
        worker.run(shutdown).await
    });
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One clear line, for operators and for `kubectl logs`.
            tracing::error!("{error:#}");
            eprintln!("offndat-worker: {error:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}
