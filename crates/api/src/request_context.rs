//! Per-request context: request and trace ids, the contract's version header, and
//! rendering of every error response as a problem body.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use offndat_infrastructure::{telemetry, trace_context};
use rand::Rng;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};
use tracing::instrument::Instrumented;
use tracing::{Instrument, Span};

use crate::error::ApiError;
use crate::http_metrics;
use crate::problem::{PROBLEM_JSON, ProblemSpec};

/// The header naming the contract version every response speaks.
pub static API_SUPPORTED_VERSIONS: HeaderName = HeaderName::from_static("api-supported-versions");
/// The request id header, accepted from clients and echoed back.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest `instance` path echoed in a problem body.
const MAX_INSTANCE_PATH: usize = 512;

/// Settings of the request-context middleware.
#[derive(Debug, Clone, Copy)]
pub struct RequestContextConfig {
    /// Largest total size of a request's header names and values.
    pub max_header_bytes: usize,
}

/// Sent on every response: no MIME sniffing, no framing, no referrer leaking to
/// targets, and no active content unless a page sets its own policy.
const SECURITY_HEADERS: [(HeaderName, HeaderValue); 3] = [
    (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
];
const DEFAULT_CSP: HeaderValue = HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'");

/// Ids of the request in hand, for problem bodies and logs.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: HeaderValue,
    pub trace_id: u128,
}

/// Assigns ids, then finishes the response: version and id headers, and a problem
/// body for every error that does not have one yet. Runs on every redirect, so it
/// formats nothing it does not need, and it is a plain `Service` rather than a
/// `from_fn` middleware, which would box a future and the inner service on every
/// request.
#[derive(Clone, Copy)]
pub struct RequestContextLayer(pub RequestContextConfig);

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContextService { inner, config: self.0 }
    }
}

/// The service of [`RequestContextLayer`].
#[derive(Clone)]
pub struct RequestContextService<S> {
    inner: S,
    config: RequestContextConfig,
}

/// What finishing a response needs from its request.
struct Finish {
    started: Instant,
    method: Method,
    uri: Uri,
    span: Span,
    context: RequestContext,
}

impl<S> Service<Request> for RequestContextService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RequestContextFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = request.method().clone();
        let request_id = incoming_request_id(request.headers()).unwrap_or_else(new_request_id);
        let (span, trace_id) = request_span(&method, &request_id, request.headers());
        let finish = Finish {
            started,
            method,
            uri: request.uri().clone(),
            span: span.clone(),
            context: RequestContext { request_id, trace_id },
        };
        if headers_size(request.headers()) > self.config.max_header_bytes {
            return RequestContextFuture::Refused {
                response: Some(ApiError::HeadersTooLarge.into_response()),
                finish: Some(finish),
            };
        }
        // Outbox rows written by this request carry its trace context to the worker.
        let inner = trace_context::scope(trace_id, self.inner.call(request).instrument(span));
        RequestContextFuture::Running { inner, finish: Some(finish) }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestContextService`].
    #[project = Projected]
    pub enum RequestContextFuture<F> {
        Running { #[pin] inner: TaskLocalFuture<u128, Instrumented<F>>, finish: Option<Finish> },
        Refused { response: Option<Response>, finish: Option<Finish> },
    }
}

impl<F> Future for RequestContextFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (response, finish) = match self.project() {
            Projected::Running { inner, finish } => {
                let Ok(response) = std::task::ready!(inner.poll(cx));
                (response, finish.take())
            }
            Projected::Refused { response, finish } => (response.take().unwrap_or_default(), finish.take()),
        };
        Poll::Ready(Ok(match finish {
            Some(finish) => finish.response(response),
            // Polled again after completion: a caller bug; answer something valid.
            None => response,
        }))
    }
}

impl Finish {
    fn response(self, mut response: Response) -> Response {
        let Self { started, method, uri, span, context } = self;
        trace_context::set_response_status(&span, response.status().as_u16());
        // The access log, off unless asked for (`OFFNDAT_LOG=info,offndat_api::request_context=debug`):
        // one line per redirect is more than most operators want to ship.
        tracing::debug!(
            parent: &span,
            route = http_metrics::route(&response),
            status = response.status().as_u16(),
            duration_us = started.elapsed().as_micros() as u64,
            "request finished"
        );

        if response.status().is_client_error() || response.status().is_server_error() {
            // Our handlers attach a spec; axum's and tower's own errors come bare or as
            // plain text. JSON bodies (health checks) are already meaningful.
            let bare =
                response.headers().get(header::CONTENT_TYPE).is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
            let spec = response.extensions_mut().remove::<ProblemSpec>();
            if spec.is_some() || bare {
                let spec = spec.unwrap_or_else(|| ProblemSpec::for_status(response.status()));
                response = render(response, &spec, &format!("{method} {}", truncate(uri.path())), &context);
            }
        }
        let headers = response.headers_mut();
        headers.insert(API_SUPPORTED_VERSIONS.clone(), HeaderValue::from_static("1"));
        headers.insert(X_REQUEST_ID.clone(), context.request_id);
        for (name, value) in SECURITY_HEADERS {
            headers.insert(name, value);
        }
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            headers.insert(header::CONTENT_SECURITY_POLICY, DEFAULT_CSP);
        }
        http_metrics::record(&method, started, &response);
        response
    }
}

/// The span every log line of a request is in, and its server span in traces;
/// and the request's trace id.
fn request_span(method: &Method, request_id: &HeaderValue, headers: &HeaderMap) -> (Span, u128) {
    let request_id = request_id.to_str().unwrap_or_default();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    trace_context::start_request(header, |trace_id| {
        if telemetry::exporting_traces() {
            // Route and status are set on the exported span later (see trace_context).
            tracing::info_span!(
                "request",
                otel.name = method.as_str(),
                otel.kind = "server",
                http.request.method = method.as_str(),
                request_id,
                trace_id = %format_args!("{trace_id:032x}"),
            )
        } else {
            // Only what logs show: fields for the exporter alone would be
            // formatted on every redirect for nobody.
            tracing::info_span!(
                "request",
                http.request.method = method.as_str(),
                request_id,
                trace_id = %format_args!("{trace_id:032x}"),
            )
        }
    })
}

fn headers_size(headers: &HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum()
}

/// A process-unique request id: a random per-process prefix and a counter, far
/// cheaper than a random UUID on every redirect.
fn new_request_id() -> HeaderValue {
    static PREFIX: LazyLock<u32> = LazyLock::new(|| rand::rng().random());
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Hex digits written in place: no formatter, one allocation (the value's).
    let mut id = [0u8; 20];
    let digits = (u128::from(*PREFIX) << 48) | u128::from(n & 0xffff_ffff_ffff);
    for (i, byte) in id.iter_mut().enumerate() {
        let nibble = (digits >> ((19 - i) * 4)) & 0xf;
        *byte = b"0123456789abcdef"[nibble as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

fn render(response: Response, spec: &ProblemSpec, instance: &str, context: &RequestContext) -> Response {
    let trace_id = format!("{:032x}", context.trace_id);
    let request_id = String::from_utf8_lossy(context.request_id.as_bytes());
    let body = spec.body(instance, &trace_id, &request_id);
    // Serialising plain strings and numbers cannot fail.
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let (mut parts, _) = response.into_parts();
    parts.status = spec.status;
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json))
}

fn truncate(path: &str) -> String {
    match path.char_indices().nth(MAX_INSTANCE_PATH) {
        Some((cut, _)) => format!("{}…", &path[..cut]),
        None => path.to_owned(),
    }
}

/// A client's request id, if it is short and made of safe characters.
fn incoming_request_id(headers: &HeaderMap) -> Option<HeaderValue> {
    let value = headers.get(&X_REQUEST_ID)?;
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 128
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    valid.then(|| value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_validated() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(incoming_request_id(&headers), Some(HeaderValue::from_static("abc-123")));
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("a b"));
        assert_eq!(incoming_request_id(&headers), None);
        let long = "a".repeat(129);
        headers.insert(&X_REQUEST_ID, HeaderValue::from_str(&long).expect("ascii"));
        assert_eq!(incoming_request_id(&headers), None);
    }

    #[test]
    fn generated_request_ids_are_distinct() {
        assert_ne!(new_request_id(), new_request_id());
        assert_eq!(new_request_id().len(), 20);
    }

    #[test]
    fn long_paths_are_truncated() {
        assert_eq!(truncate("/abc"), "/abc");
        assert_eq!(truncate(&"a".repeat(600)).chars().count(), MAX_INSTANCE_PATH + 1);
    }
}
