//! The API layer's error: every way a request can fail, mapped to a problem
//! response. Each failure is logged once, here, at the boundary.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use offndat_application::keys::KeyFailure;
use offndat_application::pagination::PageFailure;
use offndat_application::{ApplicationError, ValidationFailure};
use offndat_domain::{LinkState, PhraseError};

use crate::problem::{FORBIDDEN_MESSAGE, ProblemError, ProblemSpec, UNAUTHORIZED_MESSAGE, title};

/// Seconds clients are asked to wait after a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<ValidationFailure>),
    #[error("the body is not a JSON object: {0}")]
    InvalidBody(&'static str),
    #[error("the body is larger than allowed")]
    PayloadTooLarge,
    #[error("missing or wrong API key")]
    Unauthorized,
    #[error("the key's role does not allow this")]
    Forbidden,
    #[error("invalid key request")]
    KeyValidation(Vec<KeyFailure>),
    #[error("key name taken")]
    KeyNameTaken,
    #[error("key not found")]
    KeyNotFound,
    #[error("invalid page request")]
    InvalidPage(Vec<PageFailure>),
    #[error("invalid phrase: {0}")]
    InvalidPhrase(PhraseInput),
    #[error("link not found")]
    LinkNotFound,
    /// The link cannot be followed (or was deleted): `410` with the reason.
    #[error("link gone: {}", .0.as_str())]
    LinkGone(LinkState),
    #[error("the phrase is taken")]
    PhraseTaken,
    #[error("the idempotency key was used with another request")]
    IdempotencyKeyReused,
    #[error("the idempotency key is not usable")]
    InvalidIdempotencyKey,
    #[error("invalid stats request")]
    InvalidStats(Vec<StatsInputError>),
    #[error("invalid list request")]
    InvalidListQuery(Vec<ListInputError>),
    #[error("invalid QR code size")]
    InvalidQrSize,
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("no free phrase found")]
    CouldNotGenerate,
    #[error("rate limited")]
    TooManyRequests { retry_after_seconds: u64 },
    #[error("the request headers are too large")]
    HeadersTooLarge,
    #[error("a dependency is unavailable")]
    Unavailable,
    #[error("unexpected failure")]
    Internal,
}

/// The message of `Qr.SizeOutOfRange`.
pub const QR_SIZE_MESSAGE: &str = "`size` must be a whole number of pixels from 64 to 1024.";

/// Why a phrase in the path was refused before any lookup.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PhraseInput {
    #[error("its percent-encoding does not decode to UTF-8")]
    NotUtf8,
    #[error("{0}")]
    Invalid(PhraseError),
}

/// Why a stats request was refused; every one found is reported, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsInputError {
    FromInvalid,
    ToInvalid,
    GranularityInvalid,
    ExcludeBotsInvalid,
    RangeInvalid,
    RangeTooLong,
}

/// Why a list request was refused; every one found is reported, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListInputError {
    PageInvalid,
    PageSizeInvalid,
    SearchInvalid,
    StateInvalid,
    OrderByInvalid,
}

impl ListInputError {
    pub fn code(self) -> &'static str {
        match self {
            Self::PageInvalid => "ListLinks.PageInvalid",
            Self::PageSizeInvalid => "ListLinks.PageSizeInvalid",
            Self::SearchInvalid => "ListLinks.SearchInvalid",
            Self::StateInvalid => "ListLinks.StateInvalid",
            Self::OrderByInvalid => "ListLinks.OrderByInvalid",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::PageInvalid => "`page` must be an integer from 1.",
            Self::PageSizeInvalid => "`pageSize` must be an integer from 1 to 100.",
            Self::SearchInvalid => "`search` must be 1 to 200 characters.",
            Self::StateInvalid => "`state` must be `active`, `disabled` or `expired`.",
            Self::OrderByInvalid => "`orderBy` must be `createdAt-desc`, `createdAt-asc` or `visits-desc`.",
        }
    }
}

impl StatsInputError {
    pub fn code(self) -> &'static str {
        match self {
            Self::FromInvalid => "Stats.FromInvalid",
            Self::ToInvalid => "Stats.ToInvalid",
            Self::GranularityInvalid => "Stats.GranularityInvalid",
            Self::ExcludeBotsInvalid => "Stats.ExcludeBotsInvalid",
            Self::RangeInvalid => "Stats.RangeInvalid",
            Self::RangeTooLong => "Stats.RangeTooLong",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::FromInvalid => "`from` must be an RFC 3339 date-time, e.g. 2026-11-21T00:00:00Z.",
            Self::ToInvalid => "`to` must be an RFC 3339 date-time, e.g. 2026-11-22T00:00:00Z.",
            Self::GranularityInvalid => "`granularity` must be `hour` or `day`.",
            Self::ExcludeBotsInvalid => "`excludeBots` must be `true` or `false`.",
            Self::RangeInvalid => "`from` must be before `to`.",
            Self::RangeTooLong => {
                "The range is too long: at most 400 days at hour granularity and 3660 days at day granularity."
            }
        }
    }
}

impl From<ApplicationError> for ApiError {
    fn from(error: ApplicationError) -> Self {
        match error {
            ApplicationError::Validation(failures) => ApiError::Validation(failures),
            ApplicationError::NotFound => ApiError::LinkNotFound,
            ApplicationError::KeyValidation(failures) => ApiError::KeyValidation(failures),
            ApplicationError::KeyNameTaken => ApiError::KeyNameTaken,
            ApplicationError::KeyNotFound => ApiError::KeyNotFound,
            ApplicationError::Forbidden => ApiError::Forbidden,
            ApplicationError::InvalidPage(failures) => ApiError::InvalidPage(failures),
            ApplicationError::Gone(state) => ApiError::LinkGone(state),
            ApplicationError::PhraseTaken => ApiError::PhraseTaken,
            ApplicationError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            ApplicationError::InvalidStatsRange(why) => ApiError::InvalidStats(vec![match why {
                offndat_domain::stats::StatsRangeError::FromNotBeforeTo => StatsInputError::RangeInvalid,
                offndat_domain::stats::StatsRangeError::TooLong => StatsInputError::RangeTooLong,
            }]),
            ApplicationError::CouldNotGenerate { attempts } => {
                tracing::warn!(attempts, "no free phrase found; the vocabulary may be too small");
                ApiError::CouldNotGenerate
            }
            ApplicationError::Unavailable(source) => {
                tracing::warn!(error = %error_chain(&source), "dependency unavailable");
                ApiError::Unavailable
            }
            ApplicationError::Unexpected(source) => {
                tracing::error!(error = %error_chain(&source), "unexpected failure");
                ApiError::Internal
            }
        }
    }
}

/// `error: cause: cause` on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl ApiError {
    fn problem(&self) -> ProblemSpec {
        use StatusCode as S;
        match self {
            ApiError::Validation(failures) => {
                ProblemSpec::bad_request(failures.iter().map(|f| (f.code(), f.message())), false)
            }
            ApiError::InvalidBody(why) => ProblemSpec::single(S::BAD_REQUEST, "General.InvalidJson", why),
            ApiError::PayloadTooLarge => ProblemSpec::for_status(S::PAYLOAD_TOO_LARGE),
            ApiError::Unauthorized => {
                ProblemSpec::single(S::UNAUTHORIZED, "General.Unauthorized", UNAUTHORIZED_MESSAGE)
            }
            ApiError::Forbidden => ProblemSpec::single(S::FORBIDDEN, "General.Forbidden", FORBIDDEN_MESSAGE),
            ApiError::KeyValidation(failures) => {
                ProblemSpec::bad_request(failures.iter().map(|f| (f.code(), f.message())), false)
            }
            ApiError::KeyNameTaken => ProblemSpec::single(
                S::CONFLICT,
                "Key.NameTaken",
                "A key with this name exists (revoked keys keep theirs).",
            ),
            ApiError::KeyNotFound => {
                ProblemSpec::single(S::NOT_FOUND, "Key.NotFound", "No API key has the specified name.")
            }
            ApiError::InvalidPage(failures) => {
                ProblemSpec::bad_request(failures.iter().map(|f| (f.code(), f.message())), true)
            }
            ApiError::InvalidPhrase(why) => {
                ProblemSpec::single(S::BAD_REQUEST, "Link.InvalidPhrase", &format!("The phrase is not valid: {why}."))
            }
            ApiError::LinkNotFound => {
                ProblemSpec::single(S::NOT_FOUND, "Link.NotFound", "The link with the specified phrase was not found.")
            }
            ApiError::LinkGone(state) => {
                let (code, message) = gone(*state);
                ProblemSpec::single(S::GONE, code, message)
            }
            ApiError::PhraseTaken => ProblemSpec::single(
                S::CONFLICT,
                "Link.PhraseTaken",
                "The phrase is already taken, or was deleted recently and is quarantined.",
            ),
            ApiError::IdempotencyKeyReused => ProblemSpec::single(
                S::UNPROCESSABLE_ENTITY,
                "Idempotency.KeyReused",
                "The Idempotency-Key was already used with a different request body.",
            ),
            ApiError::InvalidIdempotencyKey => ProblemSpec::single(
                S::BAD_REQUEST,
                "Idempotency.KeyInvalid",
                "The Idempotency-Key must be 1 to 255 visible ASCII characters.",
            ),
            ApiError::InvalidStats(errors) => ProblemSpec {
                status: S::BAD_REQUEST,
                title: title(S::BAD_REQUEST),
                detail: errors.first().map(|e| e.message().to_owned()),
                errors: errors
                    .iter()
                    .map(|e| ProblemError { code: e.code(), message: e.message().to_owned() })
                    .collect(),
            },
            ApiError::InvalidListQuery(errors) => ProblemSpec {
                status: S::BAD_REQUEST,
                title: title(S::BAD_REQUEST),
                detail: errors.first().map(|e| e.message().to_owned()),
                errors: errors
                    .iter()
                    .map(|e| ProblemError { code: e.code(), message: e.message().to_owned() })
                    .collect(),
            },
            ApiError::InvalidQrSize => ProblemSpec::single(S::BAD_REQUEST, "Qr.SizeOutOfRange", QR_SIZE_MESSAGE),
            ApiError::RouteNotFound => ProblemSpec::for_status(S::NOT_FOUND),
            ApiError::MethodNotAllowed => ProblemSpec::for_status(S::METHOD_NOT_ALLOWED),
            ApiError::CouldNotGenerate => ProblemSpec::single(
                S::SERVICE_UNAVAILABLE,
                "Link.CouldNotGenerate",
                "The link could not be generated at this time. Please try again.",
            ),
            ApiError::Unavailable => ProblemSpec::for_status(S::SERVICE_UNAVAILABLE),
            ApiError::TooManyRequests { .. } => ProblemSpec::for_status(S::TOO_MANY_REQUESTS),
            ApiError::HeadersTooLarge => ProblemSpec::for_status(S::REQUEST_HEADER_FIELDS_TOO_LARGE),
            ApiError::Internal => ProblemSpec::for_status(S::INTERNAL_SERVER_ERROR),
        }
    }
}

/// The code and message of the `410` for a link that cannot be followed. `Active`
/// never gets here; it is mapped like a deleted link rather than panicking.
pub fn gone(state: LinkState) -> (&'static str, &'static str) {
    match state {
        LinkState::Disabled => ("Link.Disabled", "The link has been disabled."),
        LinkState::Expired => ("Link.Expired", "The link has expired."),
        LinkState::VisitLimitReached => ("Link.VisitLimitReached", "The link has reached its visit limit."),
        LinkState::Deleted | LinkState::Active => ("Link.Deleted", "The link has been deleted."),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let mut response = problem.status.into_response();
        if problem.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        if let ApiError::TooManyRequests { retry_after_seconds } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        }
        response.extensions_mut().insert(problem);
        response
    }
}
