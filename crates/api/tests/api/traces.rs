//! Traces and request logs of the real binaries: the API and the worker export
//! spans over OTLP/gRPC to a collector this test runs, and one create is one
//! trace from the HTTP request through the relay's publish to the worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::{Value, json};

use crate::helpers::eventually;
use crate::system::{KEY, System, api_binary};

/// One span as the collector received it, flattened for assertions.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
}

/// An OTLP/gRPC trace collector on a free port, keeping every span it receives.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.receive(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Collector {
    fn receive(&self, request: ExportTraceServiceRequest) {
        let mut received = Vec::new();
        for resource_spans in request.resource_spans {
            let resource = resource_spans.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|scope| scope.spans) {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    kind: span.kind,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: attributes(&span.attributes),
                });
            }
        }
        self.spans.lock().expect("spans").extend(received);
    }

    /// Starts serving OTLP/gRPC; returns the collector and its endpoint URL.
    async fn start() -> (Self, String) {
        let collector = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        tokio::spawn(server);
        (collector, endpoint)
    }

    /// Starts serving OTLP/HTTP with protobuf bodies at `/v1/traces`.
    async fn start_http() -> (Self, String) {
        let collector = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let receiver = collector.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: bytes::Bytes| async move {
                match ExportTraceServiceRequest::decode(body) {
                    Ok(request) => {
                        receiver.receive(request);
                        let response = ExportTraceServiceResponse { partial_success: None }.encode_to_vec();
                        (axum::http::StatusCode::OK, [("content-type", "application/x-protobuf")], response)
                    }
                    Err(_) => (axum::http::StatusCode::BAD_REQUEST, [("content-type", "text/plain")], Vec::new()),
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (collector, endpoint)
    }

    fn in_trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("spans").iter().filter(|s| s.trace_id == trace_id).cloned().collect()
    }

    /// The spans of `trace_id` once one of each name has arrived (each process
    /// exports on a timer of its own).
    async fn await_spans(&self, trace_id: &str, names: &[&str], system: &System) -> Vec<ReceivedSpan> {
        eventually(Duration::from_secs(30), &format!("spans {names:?} of trace {trace_id}"), || async {
            let spans = self.in_trace(trace_id);
            if names.iter().all(|name| spans.iter().any(|s| s.name == *name)) {
                Ok(spans)
            } else {
                Err(format!("{spans:#?}\n{}", system.dump_logs()))
            }
        })
        .await
    }
}

/// GETs `path` as a caller with a trace of its own; returns the response and
/// that trace's id.
async fn traced_get(system: &System, path: &str, request_id: Option<&str>) -> (reqwest::Response, String) {
    let trace_id = random_hex(16);
    let mut request =
        system.client.get(system.url(path)).header("traceparent", format!("00-{trace_id}-{}-01", random_hex(8)));
    if let Some(request_id) = request_id {
        request = request.header("X-Request-Id", request_id);
    }
    (request.send().await.expect("get"), trace_id)
}

fn attributes(pairs: &[KeyValue]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// The one span of `spans` with this name, or a panic that lists them all.
fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let matching: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(matching.len(), 1, "one {name:?} span expected in {spans:#?}");
    matching[0]
}

async fn traced_system() -> (System, Collector) {
    let (collector, endpoint) = Collector::start().await;
    let mut system = System::new().await;
    system.env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        // Export within a tenth of a second rather than the default five.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ]);
    (system, collector)
}

#[tokio::test]
async fn one_create_is_one_trace_from_the_request_through_the_relay_to_the_worker() {
    let (system, collector) = traced_system().await;
    let _api = system.start_api().await;
    let _worker = system.start_worker().await;

    // The caller's own trace: the API continues it.
    let (trace_id, caller_span_id) = (random_hex(16), random_hex(8));
    let response = system
        .client
        .post(system.url("/v1/links"))
        .header("X-Offnd-Api-Key", KEY)
        .header("traceparent", format!("00-{trace_id}-{caller_span_id}-01"))
        .json(&json!({"targetUrl": "https://example.com/traced", "languageId": 0, "themeId": 0, "formatId": 0}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();

    let expected = ["POST /v1/links", "publish link.created", "process link.created"];
    let spans = collector.await_spans(&trace_id, &expected, &system).await;

    let request = one(&spans, "POST /v1/links");
    assert_eq!(request.service, "offndat-api");
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(request.parent_span_id, caller_span_id, "the API continues the caller's span");
    assert_eq!(request.attributes["http.request.method"], "POST");
    assert_eq!(request.attributes["http.route"], "/v1/links");
    assert_eq!(request.attributes["http.response.status_code"], "201");
    assert_eq!(request.attributes["request_id"], request_id);

    let publish = one(&spans, "publish link.created");
    assert_eq!(publish.service, "offndat-api");
    assert_eq!(publish.kind, SpanKind::Producer as i32);
    assert_eq!(publish.parent_span_id, request.span_id, "the relay continues the request that wrote the row");
    assert_eq!(publish.attributes["messaging.system"], "rabbitmq");
    assert_eq!(publish.attributes["messaging.rabbitmq.destination.routing_key"], "link.created");

    let process = one(&spans, "process link.created");
    assert_eq!(process.service, "offndat-worker");
    assert_eq!(process.kind, SpanKind::Consumer as i32);
    assert_eq!(process.parent_span_id, publish.span_id, "the worker continues the publish");
    assert_eq!(process.attributes["messaging.message.id"], publish.attributes["messaging.message.id"]);
    assert!(!process.attributes["messaging.message.id"].is_empty());
}

#[tokio::test]
async fn a_problem_names_the_trace_its_request_was_exported_in() {
    let (system, collector) = traced_system().await;
    let _api = system.start_api().await;

    // No traceparent: the API starts a trace, and the problem body names it.
    let response = system
        .client
        .post(system.url("/v1/links"))
        .header("X-Offnd-Api-Key", KEY)
        .json(&json!({"targetUrl": "not a url", "languageId": 0, "themeId": 0, "formatId": 0}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.expect("problem");
    let trace_id = problem["traceId"].as_str().expect("traceId").to_owned();
    assert_eq!(trace_id.len(), 32, "{problem}");

    let spans = collector.await_spans(&trace_id, &["POST /v1/links"], &system).await;
    let request = one(&spans, "POST /v1/links");
    assert_eq!(request.parent_span_id, "", "a new trace starts at the API");
    assert_eq!(request.attributes["http.response.status_code"], "400");
    assert_eq!(request.attributes["request_id"], problem["requestId"].as_str().expect("requestId"));
}

#[tokio::test]
async fn every_log_line_of_a_request_names_its_request_and_trace() {
    let mut system = System::new().await;
    system.env.extend([
        ("OFFNDAT_LOG_FORMAT", "json".to_owned()),
        // The access log: one debug line per request.
        ("OFFNDAT_LOG", "info,offndat_api::request_context=debug".to_owned()),
        // Redis down and L1 off: every lookup logs the cache's own warning from
        // inside the request.
        ("OFFNDAT_REDIS_URL", "redis://127.0.0.1:1".to_owned()),
        ("OFFNDAT_CACHE_L1_ENABLED", "false".to_owned()),
    ]);
    let _api = system.start_api().await;

    let (response, trace_id) = traced_get(&system, "/no-such-phrase", Some("log-me-1")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"], "log-me-1");

    let lines = eventually(Duration::from_secs(10), "the request's log lines", || async {
        let lines: Vec<Value> = system
            .api_log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["span"]["request_id"] == "log-me-1")
            .collect();
        if lines.iter().any(|l| l["message"] == "request finished") && lines.len() >= 2 {
            Ok(lines)
        } else {
            Err(system.api_log())
        }
    })
    .await;
    for line in &lines {
        assert_eq!(line["span"]["name"], "request", "{line}");
        assert_eq!(line["span"]["trace_id"], trace_id.as_str(), "{line}");
        assert_eq!(line["span"]["http.request.method"], "GET", "{line}");
        // Not exporting: the span carries only what logs need.
        assert!(line["span"].get("otel.kind").is_none(), "{line}");
    }
    // A line the cache logged while the handler ran, not only the middleware's.
    let warning = lines.iter().find(|l| l["target"] == "offndat_infrastructure::cache::l2").expect("the L2 warning");
    assert_eq!(warning["level"], "WARN", "{warning}");
    let access = lines.iter().find(|l| l["message"] == "request finished").expect("the access line");
    assert_eq!(access["level"], "DEBUG", "{access}");
    assert_eq!(access["status"], 404, "{access}");
    assert_eq!(access["route"], "/{phrase}", "{access}");
}

#[tokio::test]
async fn spans_still_queued_are_exported_on_sigterm() {
    let (collector, endpoint) = Collector::start().await;
    let mut system = System::new().await;
    system.env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        // Far beyond the test: only the flush at exit can deliver the span.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000".to_owned()),
    ]);
    let api = system.start_api().await;
    let (response, trace_id) = traced_get(&system, "/health/live", None).await;
    assert_eq!(response.status(), 200);

    system.stop(api).await;
    let spans = collector.in_trace(&trace_id);
    assert_eq!(one(&spans, "GET /health/live").service, "offndat-api", "{}", system.dump_logs());
}

#[tokio::test]
async fn traces_go_over_http_protobuf_when_asked() {
    let (collector, endpoint) = Collector::start_http().await;
    let mut system = System::new().await;
    system.env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ("OTEL_SERVICE_NAME", "edge-api".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ]);
    let _api = system.start_api().await;
    let (response, trace_id) = traced_get(&system, "/health/live", None).await;
    assert_eq!(response.status(), 200);

    let spans = collector.await_spans(&trace_id, &["GET /health/live"], &system).await;
    let request = one(&spans, "GET /health/live");
    assert_eq!(request.service, "edge-api", "OTEL_SERVICE_NAME names the service");
    assert_eq!(request.attributes["http.response.status_code"], "200");
}

#[tokio::test]
async fn an_unsupported_otlp_protocol_stops_the_start_with_a_clear_error() {
    let output = api_binary()
        .command()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .output()
        .await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported; use grpc or http/protobuf"),
        "{stderr}"
    );

    let output = api_binary()
        .command()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OFFNDAT_TRACE_FILTER", "info,[")
        .output()
        .await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid OFFNDAT_TRACE_FILTER `info,[`"), "{stderr}");
}
