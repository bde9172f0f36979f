//! `GET /assets/site.css` and `/assets/copy.js`: the pages' only static files,
//! compiled into the binary.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

const CSS: &str = include_str!("../../assets/site.css");
const JS: &str = include_str!("../../assets/copy.js");

/// An hour: short enough that a new release's styles arrive the same day,
/// long enough that a visit to a few pages fetches them once.
const ASSET_CACHE: HeaderValue = HeaderValue::from_static("public, max-age=3600");

/// The asset routes; no rate limit (answers from memory).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/assets/site.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/assets/copy.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type)), (header::CACHE_CONTROL, ASSET_CACHE)], body)
}
