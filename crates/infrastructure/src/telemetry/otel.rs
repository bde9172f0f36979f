//! The OpenTelemetry SDK, configured from the standard `OTEL_*` variables.
//!
//! The SDK and exporter read most of them themselves (endpoint, headers, timeout,
//! compression, sampler, batch sizes, resource attributes); this module decides
//! whether to export at all, picks the transport and installs the propagators.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider};

/// Whether the environment asks for trace export: an OTLP endpoint is set, and
/// neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` turns it off.
/// Exporters other than `otlp` are refused rather than silently replaced.
pub(super) fn wanted(env: impl Fn(&str) -> Option<String>) -> Result<bool, String> {
    let set = |name: &str| env(name).is_some_and(|value| !value.trim().is_empty());
    let exporter = env("OTEL_TRACES_EXPORTER").map(|v| v.trim().to_ascii_lowercase()).unwrap_or_default();
    if !matches!(exporter.as_str(), "" | "otlp" | "none") {
        return Err(format!("OTEL_TRACES_EXPORTER={exporter} is not supported; use otlp or none"));
    }
    Ok((set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        && exporter != "none")
}

/// A tracer provider exporting in batches over OTLP. gRPC unless
/// `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` says `http/protobuf`.
pub(super) fn tracer_provider(
    service: &'static str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<SdkTracerProvider, String> {
    let exporter = match protocol(&env)? {
        Protocol::Grpc => SpanExporter::builder().with_tonic().build(),
        other => {
            let runtime = tokio::runtime::Handle::try_current()
                .map_err(|_| "the OTLP HTTP exporter must be set up inside the Tokio runtime".to_owned())?;
            let client =
                OnRuntime { client: Arc::new(HyperClient::with_default_connector(timeout(&env), None)), runtime };
            SpanExporter::builder().with_http().with_protocol(other).with_http_client(client).build()
        }
    }
    .map_err(|e| format!("cannot set up the OTLP trace exporter: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(service, &env))
        .with_id_generator(PresetTraceIds::default())
        .build())
}

thread_local! {
    static PRESET_TRACE_ID: Cell<Option<u128>> = const { Cell::new(None) };
}

/// Runs `start`, which starts one span on this thread; if that span begins a new
/// trace, the trace gets `trace_id` rather than a random one. The API picks a
/// request's trace id before its span exists, to log and report it.
pub(crate) fn with_trace_id_for_new_trace<T>(trace_id: u128, start: impl FnOnce() -> T) -> T {
    /// Clears the preset even if `start` unwinds, so no later trace takes it.
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            PRESET_TRACE_ID.set(None);
        }
    }
    PRESET_TRACE_ID.set(Some(trace_id));
    let _clear = Clear;
    // The preset is left unused when the span continued a remote trace or is
    // not exported.
    start()
}

/// The SDK's random ids, but a preset trace id when one is set for this thread.
#[derive(Debug, Default)]
struct PresetTraceIds(RandomIdGenerator);

impl IdGenerator for PresetTraceIds {
    fn new_trace_id(&self) -> TraceId {
        match PRESET_TRACE_ID.take() {
            Some(preset) => TraceId::from_bytes(preset.to_be_bytes()),
            None => self.0.new_trace_id(),
        }
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

/// The HTTP transport's client, run on the Tokio runtime: the SDK exports from a
/// thread of its own, where hyper would find no reactor.
#[derive(Debug)]
struct OnRuntime {
    client: Arc<HyperClient>,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = Arc::clone(&self.client);
        self.runtime.spawn(async move { client.send_bytes(request).await }).await?
    }
}

/// `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` in milliseconds, 10 s by default, for
/// the HTTP client (the gRPC transport reads it itself).
fn timeout(env: &impl Fn(&str) -> Option<String>) -> Duration {
    ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"]
        .into_iter()
        .find_map(|name| env(name).and_then(|v| v.trim().parse::<u64>().ok()))
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

fn protocol(env: &impl Fn(&str) -> Option<String>) -> Result<Protocol, String> {
    let (name, value) = ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]
        .into_iter()
        .find_map(|name| env(name).filter(|v| !v.trim().is_empty()).map(|value| (name, value)))
        // The collector's gRPC port (4317) is what compose and Kubernetes point at.
        .unwrap_or(("", "grpc".to_owned()));
    match value.trim() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpBinary),
        other => Err(format!("{name}={other} is not supported; use grpc or http/protobuf")),
    }
}

/// `service.name` is ours unless the operator names the service; the SDK adds
/// `OTEL_RESOURCE_ATTRIBUTES` and its own attributes.
fn resource(service: &'static str, env: &impl Fn(&str) -> Option<String>) -> Resource {
    let named = env("OTEL_SERVICE_NAME").is_some_and(|v| !v.trim().is_empty())
        || env("OTEL_RESOURCE_ATTRIBUTES")
            .is_some_and(|v| v.split(',').any(|kv| kv.trim().starts_with("service.name=")));
    let builder = Resource::builder().with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if named { builder.build() } else { builder.with_service_name(service).build() }
}

/// Installs the propagators `OTEL_PROPAGATORS` names (default `tracecontext,baggage`;
/// `none` for none). Unknown names are logged and skipped.
pub(super) fn install_propagators(env: impl Fn(&str) -> Option<String>) {
    let names = env("OTEL_PROPAGATORS").filter(|v| !v.trim().is_empty());
    let names = names.as_deref().unwrap_or("tracecontext,baggage");
    let mut propagators: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
    for name in names.split(',').map(str::trim) {
        match name {
            "tracecontext" => propagators.push(Box::new(TraceContextPropagator::new())),
            "baggage" => propagators.push(Box::new(BaggagePropagator::new())),
            "none" => propagators.clear(),
            other => tracing::warn!(propagator = other, "unsupported propagator in OTEL_PROPAGATORS; skipped"),
        }
    }
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(propagators));
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn export_needs_an_endpoint_and_can_be_turned_off() {
        assert_eq!(wanted(env(&[])), Ok(false));
        assert_eq!(wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])), Ok(false), "compose passes an empty value");
        assert_eq!(wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")])), Ok(true));
        assert_eq!(wanted(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")])), Ok(true));
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        assert_eq!(wanted(env(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")])), Ok(false));
        assert_eq!(wanted(env(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])), Ok(false));
        assert_eq!(
            wanted(env(&[endpoint, ("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_SDK_DISABLED", "false")])),
            Ok(true)
        );
        let error = wanted(env(&[endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")])).expect_err("refused");
        assert!(error.contains("OTEL_TRACES_EXPORTER=zipkin is not supported"), "{error}");
    }

    #[test]
    fn the_protocol_is_grpc_unless_asked_otherwise() {
        assert_eq!(protocol(&env(&[])), Ok(Protocol::Grpc));
        assert_eq!(protocol(&env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")])), Ok(Protocol::HttpBinary));
        let both = [("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"), ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")];
        assert_eq!(protocol(&env(&both)), Ok(Protocol::Grpc), "the signal's own variable wins");
        let error = protocol(&env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")])).expect_err("unsupported");
        assert!(error.contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/json"), "{error}");
    }

    #[test]
    fn the_http_timeout_comes_from_the_environment() {
        assert_eq!(timeout(&env(&[])), Duration::from_secs(10));
        assert_eq!(timeout(&env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")])), Duration::from_millis(2500));
        let both = [("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"), ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700")];
        assert_eq!(timeout(&env(&both)), Duration::from_millis(700));
    }

    #[test]
    fn the_service_is_named_after_the_binary_unless_the_operator_names_it() {
        let name = |resource: Resource| {
            resource.get(&opentelemetry::Key::new("service.name")).map(|v| v.to_string()).unwrap_or_default()
        };
        assert_eq!(name(resource("offndat-api", &env(&[]))), "offndat-api");
        // The SDK reads the real environment for the operator's name; only the
        // decision to keep it is ours.
        assert_ne!(name(resource("offndat-api", &env(&[("OTEL_SERVICE_NAME", "edge")]))), "offndat-api");
    }
}
