//! The router: v1 routes, short URLs, pages, health, and the layers around them.

mod audit;
mod catalogues;
mod create_link;
mod health;
mod keys;
mod list_links;
mod manage_link;
mod read_link;
pub mod redirect;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::routing::{delete, get, post};
use axum::{Router, middleware};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

use crate::auth::{API_KEY_HEADER, require_admin, require_api_key};
use crate::error::ApiError;
use crate::http_metrics::TagRouteLayer;
use crate::pages::{self, HtmlErrorsLayer};
use crate::rate_limit::{self, RateLimits};
use crate::request_context::{API_SUPPORTED_VERSIONS, RequestContextConfig, RequestContextLayer, X_REQUEST_ID};
use crate::state::AppState;

/// Router settings that are not state.
#[derive(Clone)]
pub struct RouterConfig {
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub request_timeout: Duration,
    pub cors_origins: Vec<HeaderValue>,
    /// `None` when rate limiting is off.
    pub rate_limits: Option<Arc<RateLimits>>,
}

/// Builds the whole router. Layers, outermost first: the request context (ids,
/// metrics, security headers, problem bodies), body limit, the route tag; CORS on
/// everything but the short URL; then per route group: rate limit, then for the
/// v1 API compression, timeout and API-key auth. The pages (see
/// [`pages::routes`]) skip CORS too; they and the short URL answer browsers'
/// errors as HTML pages.
pub fn router(state: AppState, config: &RouterConfig) -> Router {
    // Inside the key check (layers added later run first), so the caller is known.
    let admin_only = Router::new()
        .route("/v1/stats", get(stats::service_stats))
        .route("/v1/keys", get(keys::list_keys).post(keys::create_key))
        .route("/v1/keys/{name}", delete(keys::revoke_key))
        .route("/v1/audit", get(audit::read_audit))
        .route_layer(middleware::from_fn(require_admin));
    let mut authenticated = Router::new()
        .route("/v1/languages", get(catalogues::languages))
        .route("/v1/themes", get(catalogues::themes))
        .route("/v1/formats", get(catalogues::formats))
        .route("/v1/links", post(create_link::create_link).get(list_links::list_links))
        .route(
            "/v1/links/{phrase}",
            get(read_link::read_link).patch(manage_link::edit_link).delete(manage_link::delete_link),
        )
        .route("/v1/links/{phrase}/visits", delete(manage_link::erase_visits))
        .route("/v1/links/{phrase}/stats", get(stats::link_stats))
        .merge(admin_only)
        .route_layer(middleware::from_fn_with_state(state.authenticator.clone(), require_api_key))
        // Only these routes read bodies or answer JSON worth compressing: redirects
        // skip the per-request timer and the compression wrapper.
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, config.request_timeout))
        .layer(CompressionLayer::new());

    let mut redirects = Router::new().route("/v1/redirects/{phrase}", get(redirect::redirect));
    // The short URL is followed by browsers navigating, never fetched from
    // another origin's script, so it skips the CORS layer (it runs on every
    // redirect).
    let mut short_urls = Router::new().route("/{phrase}", get(redirect::redirect));

    if let Some(limits) = &config.rate_limits {
        // Outside auth: floods are refused before any key is checked.
        authenticated = authenticated.route_layer(rate_limit::layer(&limits.api));
        redirects = redirects.route_layer(rate_limit::layer(&limits.redirects));
        short_urls = short_urls.route_layer(rate_limit::layer(&limits.redirects));
    }
    // People follow short URLs in browsers: an unknown phrase or a spent limit
    // gets a page when HTML was asked for (API clients keep the problem body).
    short_urls = short_urls.route_layer(HtmlErrorsLayer);

    // Liveness only: dependency detail and metrics are on the operations listener.
    let public = Router::new().route("/health/live", get(health::live));

    let context = RequestContextConfig { max_header_bytes: config.max_header_bytes };
    authenticated
        .merge(redirects)
        .merge(public)
        .merge(crate::openapi::routes())
        .merge(pages::qr::routes(config.rate_limits.as_ref()))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(cors(&config.cors_origins))
        .merge(short_urls)
        .merge(pages::routes(config.rate_limits.as_ref(), config.request_timeout))
        .route_layer(TagRouteLayer)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(RequestContextLayer(context))
        .with_state(state)
}

/// The operations endpoints, served on `OFFNDAT_OPS_LISTEN` apart from the public
/// listener: never rate limited, never behind a key, never on the internet.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/health", get(health::detail))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::RouteNotFound })
        .with_state(state)
}

/// CORS for the configured origins, preflight included; no origin is allowed when
/// the list is empty.
fn cors(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static(API_KEY_HEADER),
            HeaderName::from_static(create_link::IDEMPOTENCY_KEY),
            X_REQUEST_ID.clone(),
        ])
        .expose_headers([header::LOCATION, header::RETRY_AFTER, API_SUPPORTED_VERSIONS.clone(), X_REQUEST_ID.clone()])
        .max_age(std::time::Duration::from_secs(600))
}
