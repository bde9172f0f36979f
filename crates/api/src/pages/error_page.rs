//! HTML error pages for browsers, and the layer that shows them instead of a
//! problem body when the client asked for HTML.
//!
//! One renderer, [`error_page`], for every page that can fail: the short URL
//! (unknown phrase, a link that is gone, rate limited), the stats page and the
//! home page's form. API clients keep their `application/problem+json` bodies:
//! only requests whose `Accept` names `text/html` get a page.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use askama::Template;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use tower::{Layer, Service};

use super::{NO_STORE, html, wants_html};
use crate::problem::ProblemSpec;

/// Why a link no longer redirects (a `410 Gone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    /// Its owner turned it off.
    Disabled,
    /// Its expiry date has passed.
    Expired,
    /// Its owner deleted it.
    Deleted,
    /// It has been followed as often as its owner allowed.
    VisitLimitReached,
    /// Gone for a reason this page does not know.
    Other,
}

impl GoneReason {
    /// The reason for a `410` problem's error code.
    pub fn from_code(code: &str) -> Self {
        match code {
            "Link.Disabled" => Self::Disabled,
            "Link.Expired" => Self::Expired,
            "Link.Deleted" => Self::Deleted,
            "Link.VisitLimitReached" => Self::VisitLimitReached,
            _ => Self::Other,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Disabled => "Its owner has turned this link off.",
            Self::Expired => "This link has expired.",
            Self::Deleted => "Its owner has deleted this link.",
            Self::VisitLimitReached => "This link has been followed as many times as its owner allowed.",
            Self::Other => "This link is no longer available.",
        }
    }
}

/// Which error page to show; each kind has its own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPageKind {
    /// No link has this phrase (404).
    LinkNotFound,
    /// The path cannot be a phrase at all (400).
    InvalidPhrase,
    /// The link exists but no longer redirects (410).
    LinkGone(GoneReason),
    /// Rate limited (429, with `Retry-After`).
    TooManyRequests { retry_after_seconds: u64 },
    /// A form post from another site (403).
    CrossSiteRequest,
    /// Creating links from the home page is turned off (403).
    WebCreateDisabled,
    /// A dependency is down (503, with `Retry-After`).
    Unavailable,
    /// An unexpected failure (500); says nothing internal.
    ServerError,
}

impl ErrorPageKind {
    /// The HTTP status the page is sent with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::LinkNotFound => StatusCode::NOT_FOUND,
            Self::InvalidPhrase => StatusCode::BAD_REQUEST,
            Self::LinkGone(_) => StatusCode::GONE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::CrossSiteRequest | Self::WebCreateDisabled => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The page for a problem response, when there is one for it; `None` keeps
    /// the problem body.
    pub fn for_problem(spec: &ProblemSpec, retry_after_seconds: Option<u64>) -> Option<Self> {
        let code = spec.errors.first().map_or("", |e| e.code);
        Some(match spec.status.as_u16() {
            404 if code == "Link.NotFound" => Self::LinkNotFound,
            400 if code == "Link.InvalidPhrase" => Self::InvalidPhrase,
            410 => Self::LinkGone(GoneReason::from_code(code)),
            429 => Self::TooManyRequests { retry_after_seconds: retry_after_seconds.unwrap_or(1) },
            503 => Self::Unavailable,
            _ => return None,
        })
    }

    fn heading(self) -> &'static str {
        match self {
            Self::LinkNotFound => "No such link",
            Self::InvalidPhrase => "This is not a short link",
            Self::LinkGone(_) => "This link is gone",
            Self::TooManyRequests { .. } => "Slow down a little",
            Self::CrossSiteRequest => "Request refused",
            Self::WebCreateDisabled => "Creating links here is turned off",
            Self::Unavailable => "Temporarily unavailable",
            Self::ServerError => "Something went wrong",
        }
    }

    fn message(self) -> String {
        match self {
            Self::LinkNotFound => "No link has this phrase. Check the address for typos: every word counts.".to_owned(),
            Self::InvalidPhrase => "The address does not hold a phrase this service could have made.".to_owned(),
            Self::LinkGone(reason) => reason.message().to_owned(),
            Self::TooManyRequests { retry_after_seconds } => {
                let unit = if retry_after_seconds == 1 { "second" } else { "seconds" };
                format!("Too many requests came from your address. Please try again in {retry_after_seconds} {unit}.")
            }
            Self::CrossSiteRequest => {
                "The form was sent from another site, so no link was made. Use the form on this site's home page."
                    .to_owned()
            }
            Self::WebCreateDisabled => {
                "This service makes links through its API only; see the home page for how.".to_owned()
            }
            Self::Unavailable => "The service cannot answer right now. Please try again in a moment.".to_owned(),
            Self::ServerError => "The server could not finish your request. Please try again later.".to_owned(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    heading: &'static str,
    message: String,
}

/// The HTML page for `kind`, with its status, `Cache-Control: no-store`, the
/// pages' security policy and, for 429 and 503, `Retry-After`.
pub fn error_page(kind: ErrorPageKind) -> Response {
    let status = kind.status();
    let page = ErrorPage { status: status.as_u16(), heading: kind.heading(), message: kind.message() };
    // Only fails on a formatting bug; the plain status line is still an answer.
    let body = page.render().unwrap_or_else(|_| status.to_string());
    let mut response = html(status, body, NO_STORE);
    let retry_after = match kind {
        ErrorPageKind::TooManyRequests { retry_after_seconds } => Some(HeaderValue::from(retry_after_seconds)),
        ErrorPageKind::Unavailable => Some(HeaderValue::from_static("1")),
        _ => None,
    };
    if let Some(value) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Turns problem responses into error pages for requests that accept HTML. On
/// the short URL it wraps the rate limiter and the redirect: a found link's 301
/// passes through after one status check, so the hot path pays one `Accept`
/// lookup and nothing else.
#[derive(Debug, Clone, Copy)]
pub struct HtmlErrorsLayer;

impl<S> Layer<S> for HtmlErrorsLayer {
    type Service = HtmlErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HtmlErrors { inner }
    }
}

/// The service of [`HtmlErrorsLayer`].
#[derive(Debug, Clone)]
pub struct HtmlErrors<S> {
    inner: S,
}

impl<S> Service<Request> for HtmlErrors<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = HtmlErrorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let html = wants_html(request.headers());
        HtmlErrorsFuture { inner: self.inner.call(request), html }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`HtmlErrors`].
    pub struct HtmlErrorsFuture<F> {
        #[pin]
        inner: F,
        html: bool,
    }
}

impl<F> Future for HtmlErrorsFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = std::task::ready!(this.inner.poll(cx));
        if !*this.html || response.status().as_u16() < 400 {
            return Poll::Ready(Ok(response));
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let page = response
            .extensions()
            .get::<ProblemSpec>()
            .and_then(|spec| ErrorPageKind::for_problem(spec, retry_after))
            .map(error_page);
        Poll::Ready(Ok(page.unwrap_or(response)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use axum::response::IntoResponse;

    fn kind_of(error: ApiError) -> Option<ErrorPageKind> {
        let response = error.into_response();
        let spec = response.extensions().get::<ProblemSpec>().expect("spec");
        ErrorPageKind::for_problem(spec, Some(7))
    }

    #[test]
    fn problems_map_to_pages() {
        assert_eq!(kind_of(ApiError::LinkNotFound), Some(ErrorPageKind::LinkNotFound));
        assert_eq!(
            kind_of(ApiError::TooManyRequests { retry_after_seconds: 7 }),
            Some(ErrorPageKind::TooManyRequests { retry_after_seconds: 7 })
        );
        assert_eq!(kind_of(ApiError::Unavailable), Some(ErrorPageKind::Unavailable));
        assert_eq!(kind_of(ApiError::Unauthorized), None);
        let gone = ProblemSpec::single(StatusCode::GONE, "Link.Expired", "expired");
        assert_eq!(ErrorPageKind::for_problem(&gone, None), Some(ErrorPageKind::LinkGone(GoneReason::Expired)));
    }

    #[test]
    fn every_kind_has_its_status_and_text() {
        for (kind, status) in [
            (ErrorPageKind::LinkNotFound, 404),
            (ErrorPageKind::InvalidPhrase, 400),
            (ErrorPageKind::LinkGone(GoneReason::Disabled), 410),
            (ErrorPageKind::LinkGone(GoneReason::VisitLimitReached), 410),
            (ErrorPageKind::TooManyRequests { retry_after_seconds: 3 }, 429),
            (ErrorPageKind::CrossSiteRequest, 403),
            (ErrorPageKind::WebCreateDisabled, 403),
            (ErrorPageKind::Unavailable, 503),
            (ErrorPageKind::ServerError, 500),
        ] {
            let response = error_page(kind);
            assert_eq!(response.status().as_u16(), status, "{kind:?}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        }
        assert_eq!(error_page(ErrorPageKind::TooManyRequests { retry_after_seconds: 3 }).headers()["retry-after"], "3");
    }
}
