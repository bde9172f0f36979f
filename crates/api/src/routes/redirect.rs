//! `GET /v1/redirects/{phrase}` and `GET /{phrase}`: follow a link.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use offndat_application::Visitor;

use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::extract::PhraseParam;
use crate::state::AppState;

/// Every visit must reach the service to be counted, so nothing may cache the 301.
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0");

pub async fn redirect(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    PhraseParam(phrase): PhraseParam,
) -> Result<Response, ApiError> {
    let link = state.resolve_link.execute(&phrase).await?;
    // Handed to the visit buffer without waiting; the 301 never waits for I/O.
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    state
        .record_visit
        .execute(link.id, &Visitor { ip, user_agent: text(header::USER_AGENT), referrer: text(header::REFERER) });
    // Stored targets are normalised URLs (ASCII, percent-encoded), always valid here.
    let location = HeaderValue::from_str(link.target_url.as_str()).map_err(|_| ApiError::Internal)?;
    let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, NO_STORE);
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("0"));
    Ok(response)
}
