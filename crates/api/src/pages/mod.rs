//! Pages for people, served by the API binary: the home page that makes links
//! (`/`), a link's statistics (`/s/{phrase}`), HTML error pages for browsers, QR
//! codes and the static files the pages use. Rendered on the server from askama
//! templates compiled into the binary; charts are SVG drawn here, so every page
//! works without JavaScript. The only script is a progressive copy button, served
//! as a file: the content security policy allows nothing inline and nothing from
//! another origin.

mod assets;
mod charts;
mod csrf;
mod error_page;
mod home;
pub mod qr;
mod stats_page;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;

pub use error_page::{ErrorPageKind, GoneReason, HtmlErrorsLayer, error_page};

use crate::rate_limit::{self, RateLimits};
use crate::state::AppState;

/// The pages' content security policy: scripts, styles and images from this
/// origin only (the QR image included), forms posting only here, no framing, no
/// plugins, nothing inline.
pub const PAGE_CSP: HeaderValue = HeaderValue::from_static(
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'",
);

/// `text/html; charset=utf-8`.
pub const HTML_UTF8: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

/// Cache-Control of answers that must not be reused (results, errors).
pub const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// The routes of the pages: `/` (GET, and POST to create when web create is on),
/// `/s/{phrase}` and `/assets/*`. The QR routes live with the v1 API (see
/// [`qr::routes`]). Browsers that are refused by a rate limit get an HTML page.
pub fn routes(limits: Option<&Arc<RateLimits>>, request_timeout: Duration) -> Router<AppState> {
    let mut create = Router::new().route("/", axum::routing::post(home::create));
    let mut stats = Router::new().route("/s/{phrase}", get(stats_page::stats_page));
    if let Some(limits) = limits {
        // Form posts have the web-create bucket of their own, stats pages the API's:
        // a flood is refused before any validation or database work.
        create = create.route_layer(rate_limit::layer(&limits.web_create));
        stats = stats.route_layer(rate_limit::layer(&limits.api));
    }
    Router::new()
        .route("/", get(home::home))
        .merge(create)
        .merge(stats)
        .route_layer(HtmlErrorsLayer)
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
        .layer(CompressionLayer::new())
        .merge(assets::routes())
}

/// An HTML page with the pages' security policy and `cache_control`.
pub fn html(status: StatusCode, body: String, cache_control: HeaderValue) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HTML_UTF8);
    headers.insert(header::CONTENT_SECURITY_POLICY, PAGE_CSP);
    headers.insert(header::CACHE_CONTROL, cache_control);
    response
}

/// Renders a template, or the plain server-error page if rendering fails (it
/// only can on a formatting bug: every value is in memory).
fn render(template: &impl askama::Template, status: StatusCode, cache_control: HeaderValue) -> Response {
    match template.render() {
        Ok(body) => html(status, body, cache_control),
        Err(error) => {
            tracing::error!(%error, "rendering a page failed");
            error_page(ErrorPageKind::ServerError)
        }
    }
}

/// Whether the client reads HTML: a browser navigating sends `text/html` in
/// `Accept`; API clients (`*/*`, `application/json`) keep their problem bodies.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .is_some_and(|accept| accept.as_bytes().windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_want_html_and_api_clients_do_not() {
        let mut headers = HeaderMap::new();
        assert!(!wants_html(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(!wants_html(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_html(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        );
        assert!(wants_html(&headers));
    }
}
