//! `http_requests_total{method,route,status}` and
//! `http_request_duration_seconds{method,route}`, labelled by the matched route,
//! never the raw path. Metric handles are looked up once per label set and reused,
//! so a request costs two map reads and two atomic updates.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};
use std::time::Instant;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use metrics::{Counter, Histogram};
use tower::{Layer, Service};

/// The matched route of a request, handed from the routing layer to the metrics.
#[derive(Clone)]
struct RouteTag(MatchedPath);

/// A route layer: runs inside routing, where the matched route is known, and
/// tags the response with it. Written as a plain `Service` rather than with
/// `from_fn`, which boxes a future and clones the inner service on every
/// request: this runs on every redirect.
#[derive(Clone, Copy)]
pub struct TagRouteLayer;

impl<S> Layer<S> for TagRouteLayer {
    type Service = TagRoute<S>;

    fn layer(&self, inner: S) -> TagRoute<S> {
        TagRoute { inner }
    }
}

/// The service of [`TagRouteLayer`].
#[derive(Clone)]
pub struct TagRoute<S> {
    inner: S,
}

impl<S> Service<Request> for TagRoute<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TagRouteFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let matched = request.extensions().get::<MatchedPath>().cloned();
        if let Some(matched) = &matched
            && offndat_infrastructure::telemetry::exporting_traces()
        {
            // The exported request span (see request_context) is named after the route.
            let span = tracing::Span::current();
            offndat_infrastructure::trace_context::set_route(&span, request.method().as_str(), matched.as_str());
        }
        TagRouteFuture { inner: self.inner.call(request), matched }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`TagRoute`].
    pub struct TagRouteFuture<F> {
        #[pin]
        inner: F,
        matched: Option<MatchedPath>,
    }
}

impl<F, E> Future for TagRouteFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if let Some(matched) = this.matched.take() {
            response.extensions_mut().insert(RouteTag(matched));
        }
        Poll::Ready(Ok(response))
    }
}

/// The route a response was routed by, or `unmatched`: requests no route matched
/// share that label, so scanners cannot blow up the label set.
pub fn route(response: &Response) -> &str {
    response.extensions().get::<RouteTag>().map_or("unmatched", |RouteTag(m)| m.as_str())
}

/// The series the dashboard reads most, registered at zero at start so
/// `/metrics` has `http_requests_total` and the duration buckets before the
/// first request: redirects found and not found, links created.
pub fn describe_metrics() {
    metrics::describe_counter!("http_requests_total", "HTTP requests answered, by method, matched route and status.");
    metrics::describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by method and matched route."
    );
    for (method, route, status) in
        [("GET", "/{phrase}", 301_u16), ("GET", "/{phrase}", 404), ("POST", "/v1/links", 201)]
    {
        let key = (method, intern(route), status);
        let handles = (
            metrics::counter!("http_requests_total", "method" => key.0, "route" => key.1, "status" => status.to_string()),
            metrics::histogram!("http_request_duration_seconds", "method" => key.0, "route" => key.1),
        );
        handles.0.absolute(0);
        HANDLES.write().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert(handles);
    }
}

/// Records one finished request.
pub fn record(method: &Method, started: Instant, response: &Response) {
    let route = route(response);
    let method = method_label(method);
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    let key = (method, intern(route), status);
    if let Some((count, duration)) = HANDLES.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        count.increment(1);
        duration.record(elapsed);
        return;
    }
    let handles = (
        metrics::counter!("http_requests_total", "method" => key.0, "route" => key.1, "status" => status.to_string()),
        metrics::histogram!("http_request_duration_seconds", "method" => key.0, "route" => key.1),
    );
    handles.0.increment(1);
    handles.1.record(elapsed);
    HANDLES.write().unwrap_or_else(|e| e.into_inner()).insert(key, handles);
}

type Key = (&'static str, &'static str, u16);

static HANDLES: LazyLock<RwLock<HashMap<Key, (Counter, Histogram)>>> = LazyLock::new(Default::default);
static ROUTES: LazyLock<RwLock<HashMap<String, &'static str>>> = LazyLock::new(Default::default);

/// Routes are the router's own, a small fixed set: leaking one string per route
/// gives `'static` labels without a lookup allocating.
fn intern(route: &str) -> &'static str {
    if let Some(interned) = ROUTES.read().unwrap_or_else(|e| e.into_inner()).get(route) {
        return interned;
    }
    let mut routes = ROUTES.write().unwrap_or_else(|e| e.into_inner());
    routes.entry(route.to_owned()).or_insert_with(|| Box::leak(route.to_owned().into_boxed_str()))
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
