//! `GET /v1/links/{phrase}`: a link with its visit total and newest visits.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use offndat_application::{Actor, ApplicationError};
use offndat_domain::{LinkStats, Phrase, Visit};
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::PhraseParam;
use crate::openapi::responses;
use crate::response::{json, timestamp};
use crate::state::AppState;

crate::openapi::document!(ReadLinkApi: read_link);

/// A link with its visit total and newest visits.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LinkStats)]
pub(super) struct LinkBody {
    id: uuid::Uuid,
    #[schema(example = "wildly-grumpy-walrus")]
    phrase: String,
    /// As stored: normalised (lower-case host, percent-encoded path).
    #[schema(format = "uri", example = "https://example.com/")]
    target_url: String,
    #[schema(example = 0)]
    language_id: u8,
    #[schema(example = 0)]
    theme_id: u8,
    /// Every visit counted so far, humans and bots; never fewer than
    /// `recentVisits` shows.
    #[schema(minimum = 0, example = 42)]
    visits: i64,
    /// The visits whose user agent did not look like a crawler.
    #[schema(minimum = 0, example = 40)]
    human_visits: i64,
    /// The visits whose user agent looked like a crawler (counted, never dropped).
    #[schema(minimum = 0, example = 2)]
    bot_visits: i64,
    /// The 10 newest visits, newest first.
    #[schema(max_items = 10)]
    recent_visits: Vec<VisitBody>,
    /// RFC 3339, UTC, milliseconds.
    #[schema(format = DateTime, example = "2026-11-21T09:59:00.000Z")]
    created_at: String,
    /// What following the link does now: `active` redirects; `disabled`,
    /// `expired` and `visit-limit-reached` answer `410`.
    #[schema(example = "active")]
    state: StateName,
    /// When following it stops (RFC 3339, UTC, milliseconds); `null`: never.
    #[schema(format = DateTime, example = "2026-12-31T23:59:59.000Z")]
    expires_at: Option<String>,
    /// Human visits after which following it stops; `null`: no limit.
    #[schema(minimum = 1, maximum = 2147483647, example = 1000)]
    max_visits: Option<u32>,
    /// Why it was disabled, if it is and a reason was given.
    #[schema(example = json!(null))]
    disabled_reason: Option<String>,
}

/// A link's state, as `GET /v1/links/{phrase}` shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = LinkState)]
pub(super) enum StateName {
    Active,
    Disabled,
    Expired,
    VisitLimitReached,
}

impl StateName {
    /// The state of `link` at `now`.
    pub(super) fn of(link: &offndat_domain::Link, now: DateTime<Utc>) -> Self {
        use offndat_domain::LinkState as S;
        match link.state(now) {
            S::Active => StateName::Active,
            S::Disabled => StateName::Disabled,
            S::Expired => StateName::Expired,
            // A stored link is never deleted; shown as what follows from its counts.
            S::VisitLimitReached | S::Deleted => StateName::VisitLimitReached,
        }
    }
}

impl LinkBody {
    /// The body for `stats` at `now`.
    pub(super) fn new(stats: LinkStats, now: DateTime<Utc>) -> Self {
        let state = StateName::of(&stats.link, now);
        let link = stats.link;
        Self {
            id: link.id,
            phrase: link.phrase.into_inner(),
            target_url: link.target_url.to_string(),
            language_id: link.language.id(),
            theme_id: link.theme.id(),
            visits: stats.visits,
            human_visits: stats.visits - stats.bot_visits,
            bot_visits: stats.bot_visits,
            recent_visits: stats.recent_visits.into_iter().map(VisitBody::from).collect(),
            created_at: timestamp(link.created_at),
            state,
            expires_at: link.expires_at.map(timestamp),
            max_visits: link.max_visits,
            disabled_reason: if link.disabled { link.disabled_reason } else { None },
        }
    }
}

/// The link with `phrase` as the caller may see it: `404` outside its scope,
/// `410 Link.Deleted` for a deleted one.
pub(super) async fn link_body(state: &AppState, phrase: &Phrase, actor: &Actor) -> Result<LinkBody, ApiError> {
    match state.read_link_stats.execute(phrase, actor.owner_scope()).await {
        Ok(stats) => Ok(LinkBody::new(stats, state.clock.now())),
        Err(ApplicationError::NotFound) => Err(state.manage_links.missing(phrase, actor).await.into()),
        Err(error) => Err(error.into()),
    }
}

/// One visit, in its stored (possibly anonymised, cut) form.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Visit)]
struct VisitBody {
    /// RFC 3339, UTC, milliseconds.
    #[schema(format = DateTime, example = "2026-11-21T10:00:00.123Z")]
    visited_at: String,
    /// The client IP, anonymised (IPv4 /24, IPv6 /48) unless configured otherwise.
    #[schema(example = "203.0.113.0")]
    ip_address: Option<String>,
    /// At most 512 characters.
    #[schema(example = "Mozilla/5.0 (X11; Linux x86_64)")]
    user_agent: Option<String>,
    /// At most 2048 characters.
    #[schema(example = "https://news.example/")]
    referrer: Option<String>,
    /// Whether the user agent looks like a crawler.
    potential_bot: bool,
}

impl From<Visit> for VisitBody {
    fn from(visit: Visit) -> Self {
        Self {
            visited_at: timestamp(visit.visited_at),
            ip_address: visit.ip_address,
            user_agent: visit.user_agent,
            referrer: visit.referrer,
            potential_bot: visit.potential_bot,
        }
    }
}

/// Read a link and its visits
///
/// The link with its visit total and its 10 newest visits. A creator key sees
/// only the links it created; another key's link is a `404`.
#[utoipa::path(
    get,
    path = "/v1/links/{phrase}",
    operation_id = "readLink",
    tag = "Links",
    security(("apiKey" = [])),
    params(("phrase" = String, Path, description = "The link's phrase, percent-encoded or raw UTF-8.",
        example = "wildly-grumpy-walrus")),
    responses(
        (status = 200, description = "The link.", body = LinkBody, example = json!({
            "id": "0195f6a6-7b1e-7000-8000-000000000001",
            "phrase": "wildly-grumpy-walrus",
            "targetUrl": "https://example.com/",
            "languageId": 0,
            "themeId": 0,
            "visits": 42,
            "humanVisits": 40,
            "botVisits": 2,
            "recentVisits": [{"visitedAt": "2026-11-21T10:00:00.123Z", "ipAddress": "203.0.113.0",
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64)", "referrer": null, "potentialBot": false}],
            "createdAt": "2026-11-21T09:59:00.000Z",
            "state": "active",
            "expiresAt": "2026-12-31T23:59:59.000Z",
            "maxVisits": 1000,
            "disabledReason": null
        })),
        (status = 400, response = responses::InvalidPhrase),
        (status = 401, response = responses::Unauthorized),
        (status = 404, response = responses::LinkNotFound),
        (status = 410, response = responses::LinkDeleted),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn read_link(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PhraseParam(phrase): PhraseParam,
) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &link_body(&state, &phrase, &actor).await?))
}
