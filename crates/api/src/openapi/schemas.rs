//! Documentation-only schemas: the shapes of bodies the handlers build with
//! `serde_json::json!` or through borrowed types (problem details, catalogues,
//! health), and of the lenient link request the handler reads field by field.
//! The integration tests compare live responses with these, field for field.

use offndat_application::catalogues::{self, CatalogueEntry};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem: the body of every error response.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The RFC section defining the status.
    #[serde(rename = "type")]
    #[schema(format = "uri", example = "https://tools.ietf.org/html/rfc9110#section-15.5.5")]
    pub kind: String,
    /// A short summary of the kind of problem.
    #[schema(example = "Not Found")]
    pub title: String,
    /// The HTTP status.
    #[schema(minimum = 400, maximum = 599, example = 404)]
    pub status: u16,
    /// Human-readable explanation of this occurrence; absent on validation problems.
    #[schema(example = "The link with the specified phrase was not found.")]
    pub detail: Option<String>,
    /// `"<METHOD> <path>"`, the path cut at 512 characters.
    #[schema(example = "GET /v1/links/no-such-phrase")]
    pub instance: String,
    /// What went wrong, with stable codes for clients to match; never empty.
    #[schema(min_items = 1)]
    pub errors: Vec<ProblemError>,
    /// The W3C trace id of the request, 32 lower-case hex digits (from a valid
    /// incoming `traceparent`, else a new one).
    #[schema(example = "4bf92f3577b34da6a3ce929d0e0e4736")]
    pub trace_id: String,
    /// The request's id, as in the `X-Request-Id` response header.
    #[schema(example = "8d1c2e3f00000000002a")]
    pub request_id: String,
}

/// One entry of a problem's `errors`.
#[derive(Serialize, ToSchema)]
pub struct ProblemError {
    /// Stable machine-readable code, such as `Link.NotFound`.
    #[schema(example = "Link.NotFound")]
    pub code: String,
    /// Human-readable message for the code.
    #[schema(example = "The link with the specified phrase was not found.")]
    pub message: String,
}

/// The body of `POST /v1/links`. Every field is required, but an absent field or
/// one of the wrong type is reported as a validation problem naming its rule, not
/// as unreadable JSON; field names also match case-insensitively. Whole numbers
/// are written without a fraction (`0`, not `0.0`, which is refused).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"targetUrl": "https://example.com/", "languageId": 0, "themeId": 0, "formatId": 0}))]
pub struct GenerateLinkRequest {
    /// Absolute `http` or `https` URL, at most 4096 characters also once
    /// normalised (a URL without a path gains a `/`), without user info,
    /// not pointing at this service, at a private or local-only host (unless
    /// `OFFNDAT_ALLOW_PRIVATE_TARGETS`) or at a blocklisted domain. Stored
    /// normalised (lower-case host, percent-encoded path).
    #[schema(format = "uri", max_length = 4096, example = "https://example.com/")]
    pub target_url: String,
    /// A `value` from `GET /v1/languages`.
    #[schema(minimum = 0, maximum = 1, example = 0)]
    pub language_id: i64,
    /// A `value` from `GET /v1/themes`.
    #[schema(minimum = 0, maximum = 2, example = 0)]
    pub theme_id: i64,
    /// A `value` from `GET /v1/formats`.
    #[schema(minimum = 0, maximum = 1, example = 0)]
    pub format_id: i64,
    /// Optional: this phrase instead of a drawn one. 3 to 128 characters, no
    /// control characters, `/`, `?`, `#`, `%` or spaces at either end, not a path
    /// of the service (`docs`, `health`, `metrics`, `openapi.json`, ...). Taken, or
    /// deleted within the quarantine: `409 Link.PhraseTaken`.
    #[schema(min_length = 3, max_length = 128, example = "spring-launch")]
    pub phrase: Option<String>,
    /// Optional: RFC 3339, in the future. From then on following the link
    /// answers `410 Link.Expired`.
    #[schema(format = DateTime, example = "2026-12-31T23:59:59Z")]
    pub expires_at: Option<String>,
    /// Optional: human visits after which following answers
    /// `410 Link.VisitLimitReached`. Visits are counted in flushes, so a link may
    /// overshoot by the visits of one flush window.
    #[schema(minimum = 1, maximum = 2147483647, example = 1000)]
    pub max_visits: Option<i64>,
}

/// Body of `PATCH /v1/links/{phrase}`: a JSON merge patch (RFC 7396). An absent
/// field is left as it is; `null` clears it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"disabled": true, "disabledReason": "Reported as phishing"}))]
pub struct EditLinkRequest {
    /// A new target, validated as on create; `null` is refused (a link needs one).
    #[schema(format = "uri", max_length = 4096, example = "https://example.com/new")]
    pub target_url: Option<String>,
    /// RFC 3339, in the future; `null` removes the expiry.
    #[schema(format = DateTime, example = "2026-12-31T23:59:59Z")]
    pub expires_at: Option<String>,
    /// 1 to 2^31 - 1 human visits; `null` removes the limit. Compared at once
    /// with the visits counted so far.
    #[schema(minimum = 1, maximum = 2147483647, example = 1000)]
    pub max_visits: Option<i64>,
    /// `true` takes the link down (`410 Link.Disabled`); `false` or `null` restores it.
    #[schema(example = true)]
    pub disabled: Option<bool>,
    /// Why it was disabled, at most 500 characters, no NUL; shown in `GET /v1/links/{phrase}`.
    #[schema(max_length = 500, example = "Reported as phishing")]
    pub disabled_reason: Option<String>,
}

/// The body of `POST /v1/keys`. Missing or mistyped fields are validation
/// problems naming their rule.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "ci-deploy", "role": "creator"}))]
pub struct CreateKeyRequest {
    /// Unique (revoked keys keep theirs): 1–64 characters of letters, digits,
    /// `.`, `_` and `-`; not `cli`. Written to the audit log as the actor.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "ci-deploy")]
    pub name: String,
    /// `admin` or `creator`.
    #[schema(example = "creator")]
    pub role: KeyRole,
}

/// What a key may do.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyRole {
    /// Everything, on every link.
    Admin,
    /// Creates links; reads and manages only the links it created.
    Creator,
}

/// Body of `GET /v1/languages`.
#[derive(Serialize, ToSchema)]
pub struct LanguageList {
    /// Every language, in `value` order.
    pub languages: Vec<Language>,
}

/// A language phrases can be drawn in.
#[derive(Serialize, ToSchema)]
pub struct Language {
    /// The id to send as `languageId`.
    pub value: u8,
    /// English name.
    #[schema(example = "English")]
    pub name: String,
    /// ISO 639-1 code.
    #[schema(example = "en")]
    pub code: String,
}

/// Body of `GET /v1/themes`.
#[derive(Serialize, ToSchema)]
pub struct ThemeList {
    /// Every theme, in `value` order.
    pub themes: Vec<CatalogueItem>,
}

/// Body of `GET /v1/formats`.
#[derive(Serialize, ToSchema)]
pub struct FormatList {
    /// Every format, in `value` order.
    pub formats: Vec<CatalogueItem>,
}

/// A theme or a format.
#[derive(Serialize, ToSchema)]
pub struct CatalogueItem {
    /// The id to send as `themeId` or `formatId`.
    pub value: u8,
    /// Its name.
    #[schema(example = "kebab-case")]
    pub name: String,
}

/// The catalogues as the handlers serve them: the examples in the document are
/// the real lists, not a copy that could go stale.
pub fn language_list() -> LanguageList {
    let languages = catalogues::languages()
        .into_iter()
        .map(|e| Language { value: e.value, name: e.name.to_owned(), code: e.code.unwrap_or_default().to_owned() })
        .collect();
    LanguageList { languages }
}

/// See [`language_list`].
pub fn theme_list() -> ThemeList {
    ThemeList { themes: items(catalogues::themes()) }
}

/// See [`language_list`].
pub fn format_list() -> FormatList {
    FormatList { formats: items(catalogues::formats()) }
}

fn items(entries: Vec<CatalogueEntry>) -> Vec<CatalogueItem> {
    entries.into_iter().map(|e| CatalogueItem { value: e.value, name: e.name.to_owned() }).collect()
}

/// Body of `GET /health/live`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "live"}))]
pub struct Liveness {
    pub status: LiveStatus,
}

/// Always `live` when the process answers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LiveStatus {
    Live,
}

/// Body of `GET /health/ready`.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub status: ReadyStatus,
    /// Why PostgreSQL is considered down; only when `not ready`.
    #[schema(example = "no answer within 2s")]
    pub postgres: Option<String>,
}

/// Whether the process can serve (PostgreSQL answers).
#[derive(Serialize, ToSchema)]
pub enum ReadyStatus {
    #[serde(rename = "ready")]
    Ready,
    #[serde(rename = "not ready")]
    NotReady,
}

/// Body of `GET /health`: every dependency with its state.
#[derive(Serialize, ToSchema)]
pub struct HealthDetail {
    pub status: OverallStatus,
    pub dependencies: Dependencies,
}

/// `ready`; `degraded` when Redis or RabbitMQ is away (redirects fall back to
/// PostgreSQL, events wait in the outbox); `not ready` when PostgreSQL is away.
#[derive(Serialize, ToSchema)]
pub enum OverallStatus {
    #[serde(rename = "ready")]
    Ready,
    #[serde(rename = "degraded")]
    Degraded,
    #[serde(rename = "not ready")]
    NotReady,
}

/// The state of each dependency.
#[derive(Serialize, ToSchema)]
pub struct Dependencies {
    pub postgres: DependencyHealth,
    /// `disabled` when the L2 cache is turned off.
    pub redis: DependencyHealth,
    /// The outbox relay's connection; `up` when the relay is turned off.
    pub rabbitmq: DependencyHealth,
}

/// One dependency.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyHealth {
    pub status: DependencyStatus,
    /// Round-trip time of the check, when it was measured and succeeded.
    #[schema(example = 0.42)]
    pub latency_ms: Option<f64>,
    /// Why it is `down`, in fixed words: `unreachable`, `no answer within 2s`,
    /// `not connected` (the driver's own text goes to the log at debug).
    #[schema(example = "unreachable")]
    pub error: Option<String>,
}

/// State of one dependency.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DependencyStatus {
    Up,
    Down,
    Disabled,
}
