//! `GET /v1/redirects/{phrase}` and `GET /{phrase}`: follow a link. The hot path:
//! on an L1 hit nothing here does I/O or awaits, and the phrase is looked up by
//! reference.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use offndat_application::Visitor;
use offndat_domain::Phrase;

use crate::client_ip::ClientIp;
use crate::error::{ApiError, PhraseInput};
use crate::extract::decode_phrase_segment;
use crate::state::AppState;

/// Every visit must reach the service to be counted, so nothing may cache the 301.
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0");

pub async fn redirect(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Result<Response, ApiError> {
    let decoded = decode_phrase_segment(request.uri().path())?;
    let phrase = Phrase::check(&decoded).map_err(|e| ApiError::InvalidPhrase(PhraseInput::Invalid(e)))?;
    let target = state.resolve_link.execute(phrase).await?;
    // Stored targets are normalised URLs (visible ASCII), so this only re-checks.
    let location = HeaderValue::from_maybe_shared(target.location).map_err(|_| ApiError::Internal)?;

    let headers = request.headers();
    // Handed to the visit buffer without waiting; the 301 never waits for I/O.
    state.record_visit.execute(
        target.link_id,
        Visitor { ip, user_agent: raw(headers, &header::USER_AGENT), referrer: raw(headers, &header::REFERER) },
    );

    let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, NO_STORE);
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("0"));
    Ok(response)
}

fn raw(headers: &HeaderMap, name: &HeaderName) -> Option<Bytes> {
    headers.get(name).map(|value| Bytes::copy_from_slice(value.as_bytes()))
}
