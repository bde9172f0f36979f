//! Reusable problem responses (`#/components/responses/...`). Their examples are
//! rendered from the real [`ApiError`]s and [`ProblemSpec`]s, so the codes,
//! titles, messages and `type` URIs shown are exactly what the service sends.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use offndat_application::ValidationFailure;
use offndat_application::keys::KeyFailure;
use offndat_application::pagination::PageFailure;
use offndat_domain::LinkState;
use serde_json::{Value, json};
use utoipa::ToResponse;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Response, ResponseBuilder, Type};

use crate::error::{ApiError, ListInputError, PhraseInput, StatsInputError};
use crate::problem::{PROBLEM_JSON, ProblemSpec};

/// A trace id and a request id for the examples.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const REQUEST_ID: &str = "8d1c2e3f00000000002a";

/// One named example of a problem response.
struct Example {
    name: &'static str,
    summary: &'static str,
    value: Value,
}

impl Example {
    /// The body the service sends for `error` on `instance` (`"<METHOD> <path>"`).
    fn of(name: &'static str, summary: &'static str, error: ApiError, instance: &str) -> Self {
        let response = error.into_response();
        let spec = response
            .extensions()
            .get::<ProblemSpec>()
            .cloned()
            .unwrap_or_else(|| ProblemSpec::for_status(response.status()));
        Self::of_spec(name, summary, &spec, instance)
    }

    /// The body for a problem produced by a layer rather than a handler.
    fn of_spec(name: &'static str, summary: &'static str, spec: &ProblemSpec, instance: &str) -> Self {
        let body = spec.body(instance, TRACE_ID, REQUEST_ID);
        Self { name, summary, value: serde_json::to_value(&body).unwrap_or(Value::Null) }
    }
}

/// A problem response: `application/problem+json` with the `Problem` schema, the
/// examples, and `Retry-After` when the client is told to come back.
fn problem(description: &str, retry_after: Option<&str>, examples: Vec<Example>) -> RefOr<Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .examples_from_iter(
            examples
                .into_iter()
                .map(|e| (e.name, ExampleBuilder::new().summary(e.summary).value(Some(e.value)).build())),
        )
        .build();
    let mut response = ResponseBuilder::new().description(description).content(PROBLEM_JSON, content);
    if let Some(retry_after) = retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1))))
                .description(Some(retry_after))
                .example(Some(json!(1)))
                .build(),
        );
    }
    RefOr::T(response.build())
}

/// Declares a unit type per reusable response, named as its component.
macro_rules! responses {
    ($($(#[$doc:meta])* $name:ident => $build:expr;)+) => {$(
        $(#[$doc])*
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), $build)
            }
        }
    )+};
}

responses! {
    /// 400 from `POST /v1/links`: failed validation rules or a body that is not a JSON object.
    CreateLinkBadRequest => problem(
        "Validation failed (`errors` lists every failed rule, in the contract's order), the body \
         is not a JSON object (`General.InvalidJson`), or the `Idempotency-Key` header is not 1 to 255 \
         visible ASCII characters (`Idempotency.KeyInvalid`). Targets are refused with their own codes: \
         `GenerateLink.TargetUrlHasUserInfo`, `GenerateLink.TargetUrlIsLoopback`, \
         `GenerateLink.TargetUrlIsPrivate`, `GenerateLink.TargetUrlIsLinkLocal`, \
         `GenerateLink.TargetUrlIsCarrierGradeNat`, `GenerateLink.TargetUrlIsUnspecified`, \
         `GenerateLink.TargetUrlIsMulticast`, `GenerateLink.TargetUrlIsLocalName`, \
         `GenerateLink.TargetUrlIsSelf` and `GenerateLink.TargetUrlBlocked`.",
        None,
        vec![
            Example {
                name: "contract",
                summary: "The validation problem as the v1 contract shows it",
                value: json!({
                    "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
                    "title": "One or more validation errors occurred.",
                    "status": 400,
                    "detail": "optional human text",
                    "instance": "POST /v1/links",
                    "errors": [{"code": "GenerateLink.TargetUrlIsRequired", "message": "The target URL is required."}],
                    "traceId": "…",
                    "requestId": "…"
                }),
            },
            Example::of(
                "emptyObject",
                "`{}`: every field absent",
                ApiError::Validation(vec![
                    ValidationFailure::TargetUrlIsRequired,
                    ValidationFailure::TargetUrlMustBeAbsoluteUri,
                    ValidationFailure::LanguageIdOutOfRange,
                    ValidationFailure::ThemeIdOutOfRange,
                    ValidationFailure::FormatIdOutOfRange,
                ]),
                "POST /v1/links",
            ),
            Example::of(
                "schemeNotAllowed",
                "A `javascript:` target",
                ApiError::Validation(vec![ValidationFailure::TargetUrlSchemeNotAllowed]),
                "POST /v1/links",
            ),
            Example::of(
                "privateTarget",
                "`http://192.168.1.1/admin`",
                ApiError::Validation(vec![ValidationFailure::TargetUrlIsPrivate]),
                "POST /v1/links",
            ),
            Example::of(
                "blockedTarget",
                "A target on a blocklisted domain",
                ApiError::Validation(vec![ValidationFailure::TargetUrlBlocked]),
                "POST /v1/links",
            ),
            Example::of(
                "invalidJson",
                "A body that is not JSON",
                ApiError::InvalidBody("The request body is not valid JSON."),
                "POST /v1/links",
            ),
            Example::of(
                "idempotencyKeyInvalid",
                "An `Idempotency-Key` of 300 characters",
                ApiError::InvalidIdempotencyKey,
                "POST /v1/links",
            ),
            Example::of(
                "optionalFields",
                "A reserved phrase, an expiry in the past and a visit limit of 0",
                ApiError::Validation(vec![
                    ValidationFailure::PhraseReserved,
                    ValidationFailure::ExpiresAtNotInFuture,
                    ValidationFailure::MaxVisitsOutOfRange,
                ]),
                "POST /v1/links",
            ),
        ],
    );

    /// 400 from `POST /v1/keys`.
    CreateKeyBadRequest => problem(
        "The name or role is missing or invalid (`Key.NameInvalid`, `Key.RoleInvalid`), or the \
         body is not a JSON object (`General.InvalidJson`).",
        None,
        vec![Example::of(
            "emptyObject",
            "`{}`",
            ApiError::KeyValidation(vec![KeyFailure::NameInvalid, KeyFailure::RoleInvalid]),
            "POST /v1/keys",
        )],
    );

    /// 409 from `POST /v1/keys`: the name is taken.
    KeyNameTaken => problem(
        "A key, maybe revoked, has this name (`Key.NameTaken`).",
        None,
        vec![Example::of("keyNameTaken", "Name in use", ApiError::KeyNameTaken, "POST /v1/keys")],
    );

    /// 404 from `DELETE /v1/keys/{name}`.
    KeyNotFound => problem(
        "No key has this name (`Key.NotFound`).",
        None,
        vec![Example::of("keyNotFound", "Unknown name", ApiError::KeyNotFound, "DELETE /v1/keys/no-such-key")],
    );

    /// 403: the key is not an admin key.
    Forbidden => problem(
        "The key is valid but its role (`creator`) does not allow this route (`General.Forbidden`).",
        None,
        vec![Example::of("forbidden", "A creator key on an admin route", ApiError::Forbidden, "GET /v1/keys")],
    );

    /// 400 from a paginated listing.
    PaginationBadRequest => problem(
        "`page` or `pageSize` is out of range (`Pagination.PageInvalid`, `Pagination.PageSizeInvalid`).",
        None,
        vec![Example::of(
            "pageSizeTooLarge",
            "`pageSize=500`",
            ApiError::InvalidPage(vec![PageFailure::PageSizeInvalid]),
            "GET /v1/audit",
        )],
    );

    /// 400 from `PATCH /v1/links/{phrase}`: failed validation rules.
    EditLinkBadRequest => problem(
        "A field of the patch breaks its rule (the create rules for `targetUrl`, `expiresAt` and \
         `maxVisits`; `EditLink.DisabledInvalid`, `EditLink.DisabledReasonInvalid`), or the body is \
         not a JSON object (`General.InvalidJson`).",
        None,
        vec![
            Example::of(
                "badFields",
                "`{\"targetUrl\": \"ftp://x\", \"disabled\": \"yes\"}`",
                ApiError::Validation(vec![
                    ValidationFailure::TargetUrlSchemeNotAllowed,
                    ValidationFailure::DisabledInvalid,
                ]),
                "PATCH /v1/links/wildly-grumpy-walrus",
            ),
            Example::of(
                "invalidJson",
                "A body that is not JSON",
                ApiError::InvalidBody("The request body is not valid JSON."),
                "PATCH /v1/links/wildly-grumpy-walrus",
            ),
        ],
    );

    /// 409 from `POST /v1/links`: the chosen phrase is taken.
    PhraseTaken => problem(
        "The chosen `phrase` belongs to another link, or to a link deleted within \
         `OFFNDAT_PHRASE_QUARANTINE_DAYS` (`Link.PhraseTaken`).",
        None,
        vec![Example::of("phraseTaken", "A taken phrase", ApiError::PhraseTaken, "POST /v1/links")],
    );

    /// 422 from `POST /v1/links`: an Idempotency-Key reused with another body.
    IdempotencyKeyReused => problem(
        "The `Idempotency-Key` was used by this API key within 24 hours with a different body \
         (`Idempotency.KeyReused`).",
        None,
        vec![Example::of("keyReused", "Another body", ApiError::IdempotencyKeyReused, "POST /v1/links")],
    );

    /// 410 from a redirect: the link cannot be followed.
    LinkGone => problem(
        "The link was disabled (`Link.Disabled`), expired (`Link.Expired`), reached its visit limit \
         (`Link.VisitLimitReached`) or was deleted (`Link.Deleted`).",
        None,
        vec![
            Example::of(
                "disabled",
                "Taken down",
                ApiError::LinkGone(LinkState::Disabled),
                "GET /v1/redirects/wildly-grumpy-walrus",
            ),
            Example::of(
                "expired",
                "Past its expiry",
                ApiError::LinkGone(LinkState::Expired),
                "GET /v1/redirects/wildly-grumpy-walrus",
            ),
            Example::of(
                "visitLimitReached",
                "Visit limit reached",
                ApiError::LinkGone(LinkState::VisitLimitReached),
                "GET /v1/redirects/wildly-grumpy-walrus",
            ),
            Example::of(
                "deleted",
                "Deleted",
                ApiError::LinkGone(LinkState::Deleted),
                "GET /v1/redirects/wildly-grumpy-walrus",
            ),
        ],
    );

    /// 410 from a management route: the link was deleted.
    LinkDeleted => problem(
        "The link was deleted (`Link.Deleted`); its phrase is quarantined.",
        None,
        vec![Example::of(
            "deleted",
            "Deleted",
            ApiError::LinkGone(LinkState::Deleted),
            "GET /v1/links/wildly-grumpy-walrus",
        )],
    );

    /// 400 from a `{phrase}` route: the phrase cannot be one.
    InvalidPhrase => problem(
        "The `{phrase}` segment decodes to invalid UTF-8, is blank, longer than 256 characters, or \
         holds a control character or `/` (`Link.InvalidPhrase`).",
        None,
        vec![Example::of(
            "notUtf8",
            "`%FF` in the phrase",
            ApiError::InvalidPhrase(PhraseInput::NotUtf8),
            "GET /v1/links/%FF",
        )],
    );

    /// 401: the API key is missing or wrong.
    Unauthorized => problem(
        "`X-Offnd-Api-Key` is missing, empty, not a configured key and not an active stored key \
         (`General.Unauthorized`).",
        None,
        vec![Example::of("unauthorized", "No or a wrong API key", ApiError::Unauthorized, "GET /v1/languages")],
    );

    /// 404: no link has the phrase.
    LinkNotFound => problem(
        "No link has this phrase (`Link.NotFound`).",
        None,
        vec![Example::of("linkNotFound", "Unknown phrase", ApiError::LinkNotFound, "GET /v1/links/no-such-phrase")],
    );

    /// 400 from the stats routes: a bad query parameter or range.
    StatsBadRequest => problem(
        "A query parameter could not be read, or the range is empty or too long. `errors` lists \
         every problem found (`Stats.FromInvalid`, `Stats.ToInvalid`, `Stats.GranularityInvalid`, \
         `Stats.ExcludeBotsInvalid`, `Stats.RangeInvalid`, `Stats.RangeTooLong`).",
        None,
        vec![
            Example::of(
                "unparseable",
                "`from=yesterday&granularity=week`",
                ApiError::InvalidStats(vec![StatsInputError::FromInvalid, StatsInputError::GranularityInvalid]),
                "GET /v1/links/wildly-grumpy-walrus/stats",
            ),
            Example::of(
                "fromAfterTo",
                "`from` after `to`",
                ApiError::InvalidStats(vec![StatsInputError::RangeInvalid]),
                "GET /v1/stats",
            ),
            Example::of(
                "tooLong",
                "Two years of hours",
                ApiError::InvalidStats(vec![StatsInputError::RangeTooLong]),
                "GET /v1/stats",
            ),
        ],
    );

    /// 400 from `GET /v1/links`: a bad query parameter.
    ListLinksBadRequest => problem(
        "A query parameter could not be read; `errors` lists every one (`ListLinks.PageInvalid`, \
         `ListLinks.PageSizeInvalid`, `ListLinks.SearchInvalid`, `ListLinks.StateInvalid`, \
         `ListLinks.OrderByInvalid`).",
        None,
        vec![Example::of(
            "badParameters",
            "`pageSize=500&state=gone`",
            ApiError::InvalidListQuery(vec![ListInputError::PageSizeInvalid, ListInputError::StateInvalid]),
            "GET /v1/links",
        )],
    );

    /// 408: the request took longer than `OFFNDAT_REQUEST_TIMEOUT`.
    RequestTimeout => problem(
        "The request was not answered within the configured timeout (`General.RequestTimeout`).",
        None,
        vec![Example::of_spec(
            "requestTimeout",
            "Too slow",
            &ProblemSpec::for_status(StatusCode::REQUEST_TIMEOUT),
            "POST /v1/links",
        )],
    );

    /// 400 from `GET /v1/links/{phrase}/qr.png`: a bad `size`, or a phrase that cannot be one.
    QrBadRequest => problem(
        "`size` is not a whole number from 64 to 1024 (`Qr.SizeOutOfRange`), or the phrase cannot be \
         one (`Link.InvalidPhrase`).",
        None,
        vec![
            Example::of("sizeOutOfRange", "`?size=5000`", ApiError::InvalidQrSize, "GET /v1/links/wildly-grumpy-walrus/qr.png"),
            Example::of(
                "invalidPhrase",
                "A phrase whose percent-encoding is not UTF-8",
                ApiError::InvalidPhrase(PhraseInput::NotUtf8),
                "GET /v1/links/%FF/qr.png",
            ),
        ],
    );

    /// 413: the body is larger than `OFFNDAT_MAX_BODY_BYTES`.
    PayloadTooLarge => problem(
        "The body exceeds `OFFNDAT_MAX_BODY_BYTES` (64 KiB by default; `General.PayloadTooLarge`).",
        None,
        vec![Example::of("payloadTooLarge", "A 1 MiB body", ApiError::PayloadTooLarge, "POST /v1/links")],
    );

    /// 429: the client's rate limit is spent.
    TooManyRequests => problem(
        "The client IP's rate limit is spent (`General.TooManyRequests`); retry after `Retry-After` seconds.",
        Some("Seconds until the next request is allowed."),
        vec![Example::of(
            "tooManyRequests",
            "Over the limit",
            ApiError::TooManyRequests { retry_after_seconds: 1 },
            "GET /v1/redirects/wildly-grumpy-walrus",
        )],
    );

    /// 431: the request's headers are too large.
    HeadersTooLarge => problem(
        "The request's headers are larger than allowed (`General.HeadersTooLarge`).",
        None,
        vec![Example::of("headersTooLarge", "Huge headers", ApiError::HeadersTooLarge, "GET /v1/languages")],
    );

    /// 500: an unexpected failure; nothing internal is disclosed.
    ServerError => problem(
        "An unexpected failure (`General.ServerError`); nothing internal is disclosed, the cause is logged.",
        None,
        vec![Example::of("serverError", "Unexpected failure", ApiError::Internal, "GET /v1/links/wildly-grumpy-walrus")],
    );

    /// 503: PostgreSQL is unreachable.
    ServiceUnavailable => problem(
        "PostgreSQL is unreachable, or a stored API key cannot be verified because the key set could \
         not be refreshed for longer than `OFFNDAT_KEYS_MAX_STALENESS` (`General.ServiceUnavailable`); \
         retry after `Retry-After` seconds.",
        Some("Seconds to wait before retrying."),
        vec![Example::of(
            "serviceUnavailable",
            "Database unreachable",
            ApiError::Unavailable,
            "GET /v1/links/wildly-grumpy-walrus",
        )],
    );

    /// 503 from `POST /v1/links`: no free phrase, or PostgreSQL unreachable.
    CreateLinkUnavailable => problem(
        "No free phrase was found after 10 attempts (`Link.CouldNotGenerate`) or PostgreSQL is \
         unreachable (`General.ServiceUnavailable`); retry after `Retry-After` seconds.",
        Some("Seconds to wait before retrying."),
        vec![
            Example::of("couldNotGenerate", "No free phrase", ApiError::CouldNotGenerate, "POST /v1/links"),
            Example::of("serviceUnavailable", "Database unreachable", ApiError::Unavailable, "POST /v1/links"),
        ],
    );
}
