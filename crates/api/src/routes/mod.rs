//! The router: v1 routes, short URLs, health, and the layers around them.

mod catalogues;
mod create_link;
mod health;
mod read_link;
mod redirect;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{get, post};
use axum::{Router, middleware};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{API_KEY_HEADER, require_api_key};
use crate::error::ApiError;
use crate::request_context::{API_SUPPORTED_VERSIONS, X_REQUEST_ID, request_context};
use crate::state::AppState;

/// Router settings that are not state.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub max_body_bytes: usize,
    pub cors_origins: Vec<HeaderValue>,
}

/// Builds the whole router.
pub fn router(state: AppState, config: &RouterConfig) -> Router {
    let authenticated = Router::new()
        .route("/v1/languages", get(catalogues::languages))
        .route("/v1/themes", get(catalogues::themes))
        .route("/v1/formats", get(catalogues::formats))
        .route("/v1/links", post(create_link::create_link))
        .route("/v1/links/{phrase}", get(read_link::read_link))
        .route_layer(middleware::from_fn_with_state(state.api_keys.clone(), require_api_key));

    let public = Router::new()
        .route("/v1/redirects/{phrase}", get(redirect::redirect))
        .route("/{phrase}", get(redirect::redirect))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/health", get(health::detail))
        .route("/metrics", get(health::metrics));

    authenticated
        .merge(public)
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(cors(&config.cors_origins))
        .layer(middleware::from_fn(request_context))
        .with_state(state)
}

/// CORS for the configured origins, preflight included; no origin is allowed when
/// the list is empty.
fn cors(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, HeaderName::from_static(API_KEY_HEADER), X_REQUEST_ID.clone()])
        .expose_headers([header::LOCATION, header::RETRY_AFTER, API_SUPPORTED_VERSIONS.clone(), X_REQUEST_ID.clone()])
        .max_age(std::time::Duration::from_secs(600))
}
