//! Problem details (RFC 9457) exactly as the v1 contract shapes them.

use axum::http::StatusCode;
use serde::Serialize;

/// Media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One entry of a problem's `errors` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProblemError {
    pub code: &'static str,
    pub message: String,
}

/// What a handler or layer knows about a failure. The request-context middleware
/// turns it into the full body, adding `instance`, `traceId` and `requestId`.
#[derive(Debug, Clone)]
pub struct ProblemSpec {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: Option<String>,
    /// Never empty.
    pub errors: Vec<ProblemError>,
}

impl ProblemSpec {
    /// A problem with one error, whose message is also the detail.
    pub fn single(status: StatusCode, code: &'static str, message: &str) -> Self {
        Self {
            status,
            title: title(status),
            detail: Some(message.to_owned()),
            errors: vec![ProblemError { code, message: message.to_owned() }],
        }
    }

    /// A `400` listing every broken rule as `(code, message)`, in order; with
    /// `first_as_detail` the first message is also the detail.
    pub fn bad_request<'a>(rules: impl IntoIterator<Item = (&'static str, &'a str)>, first_as_detail: bool) -> Self {
        let errors: Vec<ProblemError> =
            rules.into_iter().map(|(code, message)| ProblemError { code, message: message.to_owned() }).collect();
        let detail = first_as_detail.then(|| errors.first().map(|e| e.message.clone())).flatten();
        Self { status: StatusCode::BAD_REQUEST, title: title(StatusCode::BAD_REQUEST), detail, errors }
    }

    /// The full body of this problem for one request.
    pub fn body<'a>(&'a self, instance: &'a str, trace_id: &'a str, request_id: &'a str) -> ProblemBody<'a> {
        ProblemBody {
            kind: type_uri(self.status),
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail.as_deref(),
            instance,
            errors: &self.errors,
            trace_id,
            request_id,
        }
    }

    /// The generic problem for a status produced outside our handlers (the router's
    /// fallbacks, body limits, timeouts), so every error has the same shape.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => ("General.BadRequest", "The request is malformed."),
            401 => ("General.Unauthorized", UNAUTHORIZED_MESSAGE),
            403 => ("General.Forbidden", FORBIDDEN_MESSAGE),
            404 => ("General.NotFound", "The requested resource was not found."),
            405 => ("General.MethodNotAllowed", "The request method is not supported by this resource."),
            408 => ("General.RequestTimeout", "The request took too long."),
            413 => ("General.PayloadTooLarge", "The request body is too large."),
            415 => ("General.UnsupportedMediaType", "The request body's media type is not supported."),
            429 => ("General.TooManyRequests", "Too many requests. Please try again later."),
            431 => ("General.HeadersTooLarge", "The request headers are too large."),
            503 => ("General.ServiceUnavailable", "The service is temporarily unavailable. Please try again."),
            504 => ("General.Timeout", "The service did not answer in time. Please try again."),
            _ if status.is_server_error() => ("General.ServerError", "The server encountered an unrecoverable error."),
            _ => ("General.BadRequest", "The request could not be processed."),
        };
        Self::single(status, code, message)
    }
}

/// The contract's message for a missing or wrong API key.
pub const UNAUTHORIZED_MESSAGE: &str =
    "You are not authorized to access the requested resource or perform the requested action.";

/// The message for a key whose role does not allow the action.
pub const FORBIDDEN_MESSAGE: &str = "The API key's role does not allow this action; it needs an admin key.";

/// The full problem body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemBody<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    pub instance: &'a str,
    pub errors: &'a [ProblemError],
    pub trace_id: &'a str,
    pub request_id: &'a str,
}

/// The title for a status; 400s use the contract's validation title.
pub fn title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "One or more validation errors occurred.",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ if status.is_server_error() => "An error occurred while processing your request.",
        _ => "Bad Request",
    }
}

/// The `type` URI: the RFC section defining the status.
pub fn type_uri(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        401 => "https://tools.ietf.org/html/rfc9110#section-15.5.2",
        403 => "https://tools.ietf.org/html/rfc9110#section-15.5.4",
        404 => "https://tools.ietf.org/html/rfc9110#section-15.5.5",
        405 => "https://tools.ietf.org/html/rfc9110#section-15.5.6",
        408 => "https://tools.ietf.org/html/rfc9110#section-15.5.9",
        409 => "https://tools.ietf.org/html/rfc9110#section-15.5.10",
        410 => "https://tools.ietf.org/html/rfc9110#section-15.5.11",
        413 => "https://tools.ietf.org/html/rfc9110#section-15.5.14",
        415 => "https://tools.ietf.org/html/rfc9110#section-15.5.16",
        422 => "https://tools.ietf.org/html/rfc9110#section-15.5.21",
        429 => "https://tools.ietf.org/html/rfc6585#section-4",
        431 => "https://tools.ietf.org/html/rfc6585#section-5",
        503 => "https://tools.ietf.org/html/rfc9110#section-15.6.4",
        504 => "https://tools.ietf.org/html/rfc9110#section-15.6.5",
        _ if status.is_server_error() => "https://tools.ietf.org/html/rfc9110#section-15.6.1",
        _ => "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    }
}
