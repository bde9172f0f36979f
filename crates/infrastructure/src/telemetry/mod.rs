//! Logs, traces and metrics, set up the same way by both binaries.
//!
//! Logs go to stdout (to stderr for command-line tools whose stdout is their
//! output, see [`init_for_cli`]). Traces are exported over OTLP only when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set; otherwise no
//! OpenTelemetry layer is installed at all, so spans cost what the log layer makes
//! of them and nothing more.

mod json_fields;
mod metrics;
mod otel;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::Identity;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use self::metrics::metrics_handle;
pub(crate) use self::otel::with_trace_id_for_new_trace;
use crate::config::{LogConfig, LogFormat};
use json_fields::JsonSpanFields;

/// Crates whose spans never go to the trace exporter: the exporter's own HTTP/2
/// and gRPC stack (tracing it would trace every export) and OpenTelemetry itself.
/// Targets match by prefix: `hyper` covers `hyper_util`, `opentelemetry` the SDK.
const NEVER_TRACED: &str = "h2=off,hyper=off,tonic=off,tower=off,opentelemetry=off";

static EXPORTING_TRACES: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces. Code that would only format span data
/// for the exporter checks this first.
pub fn exporting_traces() -> bool {
    EXPORTING_TRACES.load(Ordering::Relaxed)
}

/// What [`init`] set up; [`Telemetry::shutdown`] flushes it before exit.
#[must_use = "call shutdown() before exit, or spans still queued are lost"]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter. Call it inside the
    /// runtime's context (the gRPC exporter runs on it), after the service stopped.
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer_provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(error = %error, "cannot flush the last spans to the trace exporter");
        }
    }
}

/// Installs the global `tracing` subscriber: the log layer filtered by
/// `OFFNDAT_LOG`, and, when an OTLP endpoint is set, the trace exporter filtered
/// by `OFFNDAT_TRACE_FILTER`. `service` names the process in traces unless
/// `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` name it.
///
/// Call it inside a Tokio runtime's context: the gRPC exporter is built on it.
/// A bad filter or `OTEL_*` value is a start-up error.
pub fn init(config: &LogConfig, service: &'static str) -> Result<Telemetry, String> {
    init_with(config, service, false)
}

/// [`init`] with logs on stderr, for subcommands whose stdout is their result
/// (`offndat-api keys create` prints a secret there, which must not mix with log
/// lines, nor a log line carry it).
pub fn init_for_cli(config: &LogConfig, service: &'static str) -> Result<Telemetry, String> {
    init_with(config, service, true)
}

fn init_with(config: &LogConfig, service: &'static str, to_stderr: bool) -> Result<Telemetry, String> {
    let log_filter =
        EnvFilter::try_new(&config.log).map_err(|e| format!("invalid OFFNDAT_LOG filter `{}`: {e}", config.log))?;
    // Colour only for people: log shippers and tests read plain text.
    let ansi = if to_stderr { std::io::stderr().is_terminal() } else { std::io::stdout().is_terminal() };
    let log_layer = tracing_subscriber::fmt::layer().with_target(true).with_ansi(ansi);
    let log_layer = match (config.log_format, to_stderr) {
        (LogFormat::Text, false) => log_layer.boxed(),
        (LogFormat::Text, true) => log_layer.with_writer(std::io::stderr).boxed(),
        (LogFormat::Json, false) => {
            log_layer.json().flatten_event(true).with_current_span(true).fmt_fields(JsonSpanFields).boxed()
        }
        (LogFormat::Json, true) => log_layer
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .fmt_fields(JsonSpanFields)
            .boxed(),
    }
    .with_filter(log_filter);

    let environment = |name: &str| std::env::var(name).ok();
    let (trace_layer, tracer_provider) = if otel::wanted(environment)? {
        let trace_filter = EnvFilter::try_new(format!("{},{NEVER_TRACED}", config.trace_filter))
            .map_err(|e| format!("invalid OFFNDAT_TRACE_FILTER `{}`: {e}", config.trace_filter))?;
        let provider = otel::tracer_provider(service, environment)?;
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            // Every span of a busy API pays for each attribute, sampled or not:
            // busy/idle time, thread, source location and target say little
            // that the span's name and duration do not.
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_filter(trace_filter)
            .boxed();
        (layer, Some(provider))
    } else {
        // A layer that wants nothing, rather than `None`: an absent `Option`
        // layer answers "always" for every callsite, so the stack could not
        // cache "never" for those the log filter rejects and weighed them each
        // time they fired (measured: 17.7 → 16.3 µs per redirect at `warn`).
        (Identity::new().with_filter(LevelFilter::OFF).boxed(), None)
    };

    let exporting = tracer_provider.is_some();
    let installed = tracing_subscriber::registry().with(log_layer).with(trace_layer).try_init().is_ok();
    if !installed {
        // A second init (tests running several apps in one process) keeps the first.
        return Ok(Telemetry { tracer_provider: None });
    }
    if exporting {
        otel::install_propagators(environment);
        EXPORTING_TRACES.store(true, Ordering::Relaxed);
        tracing::info!(service, "exporting traces over OTLP");
    }
    Ok(Telemetry { tracer_provider })
}
