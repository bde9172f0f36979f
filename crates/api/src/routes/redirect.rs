//! `GET /v1/redirects/{phrase}` and `GET /{phrase}`: follow a link. The hot path:
//! on an L1 hit nothing here does I/O or awaits, and the phrase is looked up by
//! reference.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use offndat_application::Visitor;
use offndat_domain::Phrase;

use crate::client_ip::ClientIp;
use crate::error::{ApiError, PhraseInput};
use crate::extract::decode_phrase_segment;
use crate::openapi::responses;
use crate::state::AppState;

crate::openapi::document!(RedirectApi: redirect, short_url);

/// Every visit must reach the service to be counted, so nothing may cache the 301.
const NEVER_CACHED: HeaderValue = HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0");

/// Follow a link
///
/// Answers `301` to the link's target and counts the visit. Nothing may cache
/// the redirect, so that every visit reaches the service. A disabled, expired,
/// over-limit or deleted link answers `410` with the reason. No API key.
#[utoipa::path(
    get,
    path = "/v1/redirects/{phrase}",
    operation_id = "followLink",
    tag = "Redirects",
    params(("phrase" = String, Path, description = "The link's phrase, percent-encoded or raw UTF-8.",
        example = "wildly-grumpy-walrus")),
    responses(
        (status = 301, description = "To the link's target.", headers(
            ("Location" = String, description = "The target URL."),
            ("Cache-Control" = String, description = "`no-store, no-cache, must-revalidate, max-age=0`"),
            ("Pragma" = String, description = "`no-cache`"),
            ("Expires" = String, description = "`0`"),
        )),
        (status = 400, response = responses::InvalidPhrase),
        (status = 404, response = responses::LinkNotFound),
        (status = 410, response = responses::LinkGone),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn redirect(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Result<Response, ApiError> {
    let uncounted = uncounted_reason(&request);
    let target = match resolve(&state, request.uri().path()).await {
        Ok(target) => target,
        Err(error) => {
            if uncounted.is_none() && matches!(error, ApiError::LinkNotFound | ApiError::InvalidPhrase(_)) {
                state.record_visit.execute_orphan();
            }
            return Err(error);
        }
    };
    // Stored targets are normalised URLs (visible ASCII), so this only re-checks.
    let location = HeaderValue::from_maybe_shared(target.location).map_err(|_| ApiError::Internal)?;

    match uncounted {
        None => {
            let headers = request.headers();
            // Counted in memory without waiting; the 301 never waits for I/O.
            state.record_visit.execute(
                target.link_id,
                Visitor { ip, user_agent: raw(headers, &header::USER_AGENT), referrer: raw(headers, &header::REFERER) },
            );
        }
        Some(reason) => metrics::counter!(UNCOUNTED_TOTAL, "reason" => reason).increment(1),
    }

    // Room for every header the response gets on its way out (these four, the
    // request context's six, hyper's two), so the map never grows.
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    *response.headers_mut() = HeaderMap::with_capacity(16);
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, NEVER_CACHED);
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("0"));
    Ok(response)
}

/// Follow a short URL
///
/// The same redirect as `GET /v1/redirects/{phrase}`, at the short URL itself.
#[utoipa::path(
    get,
    path = "/{phrase}",
    operation_id = "followShortUrl",
    tag = "Redirects",
    params(("phrase" = String, Path, description = "The link's phrase, percent-encoded or raw UTF-8.",
        example = "wildly-grumpy-walrus")),
    responses(
        (status = 301, description = "To the link's target.", headers(
            ("Location" = String, description = "The target URL."),
            ("Cache-Control" = String, description = "`no-store, no-cache, must-revalidate, max-age=0`"),
            ("Pragma" = String, description = "`no-cache`"),
            ("Expires" = String, description = "`0`"),
        )),
        (status = 400, response = responses::InvalidPhrase),
        (status = 404, response = responses::LinkNotFound),
        (status = 410, response = responses::LinkGone),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
#[expect(dead_code, reason = "documentation only: the router serves `redirect` at this path too")]
fn short_url() {}

/// Counter of redirects served but not counted as visits, labelled `reason`
/// (`head`, `prefetch`).
pub const UNCOUNTED_TOTAL: &str = "offndat_visits_uncounted_total";

/// Registers the redirect's metrics at zero, so they exist from the start.
pub fn describe_metrics() {
    metrics::describe_counter!(UNCOUNTED_TOTAL, "Redirects served but not counted as visits (HEAD, prefetch).");
    for reason in ["head", "prefetch"] {
        metrics::counter!(UNCOUNTED_TOTAL, "reason" => reason).absolute(0);
    }
}

async fn resolve(state: &AppState, path: &str) -> Result<offndat_application::ports::RedirectTarget, ApiError> {
    let decoded = decode_phrase_segment(path)?;
    let phrase = Phrase::check(&decoded).map_err(|e| ApiError::InvalidPhrase(PhraseInput::Invalid(e)))?;
    Ok(state.resolve_link.execute(phrase).await?)
}

/// Why a redirect is not a visit: `HEAD` (link checkers, unfurlers) and browser
/// prefetches (`Sec-Purpose: prefetch`, the older `Purpose: prefetch`) are
/// answered the same but nobody followed the link. `None`: it is a visit.
fn uncounted_reason(request: &Request) -> Option<&'static str> {
    if request.method() == Method::HEAD {
        return Some("head");
    }
    let headers = request.headers();
    let prefetch = |name: &str| {
        headers.get(name).is_some_and(|v| v.as_bytes().split(|b| *b == b';').any(|p| p.trim_ascii() == b"prefetch"))
    };
    (prefetch("sec-purpose") || prefetch("purpose")).then_some("prefetch")
}

/// The header's bytes, borrowed: the aggregator copies (and cuts) them only if
/// it keeps them.
fn raw<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a [u8]> {
    headers.get(name).map(HeaderValue::as_bytes)
}
