//! `GET /v1/links/{phrase}/stats` and `GET /v1/stats`: visits over time from the
//! rollups, zero-filled, with totals and the top values of each dimension.

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use offndat_application::{Actor, ApplicationError, StatsQuery};
use offndat_domain::Dimension;
use offndat_domain::stats::{Granularity, Ranked, VisitCounts, VisitSeries};
use serde::Serialize;

use crate::error::{ApiError, StatsInputError};
use crate::extract::PhraseParam;
use crate::openapi::responses;
use crate::response::{json, timestamp};
use crate::state::AppState;

crate::openapi::document!(StatsApi: link_stats, service_stats);

/// Human and bot visits; `visits` is their sum (bots left out with `excludeBots=true`).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct CountsBody {
    #[schema(minimum = 0, example = 12)]
    visits: i64,
    #[schema(minimum = 0, example = 10)]
    human_visits: i64,
    #[schema(minimum = 0, example = 2)]
    bot_visits: i64,
}

impl From<VisitCounts> for CountsBody {
    fn from(c: VisitCounts) -> Self {
        Self { visits: c.total(), human_visits: c.human, bot_visits: c.bot }
    }
}

/// One bucket of the series.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct BucketBody {
    /// Start of the UTC hour or day.
    #[schema(format = DateTime, example = "2026-11-21T10:00:00.000Z")]
    start: String,
    #[serde(flatten)]
    counts: CountsBody,
}

/// A dimension value and its visits in the range.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct RankedBody {
    /// The value; an empty referrer host means no (usable) referrer.
    #[schema(example = "news.example")]
    value: String,
    #[serde(flatten)]
    counts: CountsBody,
}

/// The top 10 values of each dimension in the range, most visits first.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct TopBody {
    referrers: Vec<RankedBody>,
    browsers: Vec<RankedBody>,
    operating_systems: Vec<RankedBody>,
    /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
    devices: Vec<RankedBody>,
}

/// Visits of one link over a range.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct LinkStatsBody {
    #[schema(example = "wildly-grumpy-walrus")]
    phrase: String,
    #[serde(flatten)]
    series: SeriesBody,
}

/// The range, its buckets and totals; the buckets sum to the totals exactly.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct SeriesBody {
    /// The first bucket's start (the asked `from`, rounded down to a bucket).
    #[schema(format = DateTime, example = "2026-11-20T00:00:00.000Z")]
    from: String,
    /// The end of the last bucket, exclusive (the asked `to`, rounded up).
    #[schema(format = DateTime, example = "2026-11-22T00:00:00.000Z")]
    to: String,
    #[schema(example = "day")]
    granularity: &'static str,
    exclude_bots: bool,
    totals: CountsBody,
    buckets: Vec<BucketBody>,
    top: TopBody,
}

/// Visits of the whole service over a range, with links created and orphan
/// visits (requests for phrases that do not exist).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ServiceStatsBody {
    #[serde(flatten)]
    series: SeriesBody,
    /// Links created per bucket (aligned with `buckets`).
    links_created: Vec<i64>,
    /// Orphan visits per bucket (aligned with `buckets`).
    orphan_visits: Vec<i64>,
    #[schema(example = 3)]
    total_links_created: i64,
    #[schema(example = 17)]
    total_orphan_visits: i64,
}

fn series_body(series: &VisitSeries, exclude_bots: bool) -> SeriesBody {
    let ranked = |d: Dimension| -> Vec<RankedBody> {
        series
            .top
            .iter()
            .find(|(dimension, _)| *dimension == d)
            .map(|(_, values)| {
                values.iter().map(|r: &Ranked| RankedBody { value: r.value.clone(), counts: r.visits.into() }).collect()
            })
            .unwrap_or_default()
    };
    SeriesBody {
        from: timestamp(series.range.from),
        to: timestamp(series.range.to),
        granularity: series.range.granularity.as_str(),
        exclude_bots,
        totals: series.totals.into(),
        top: TopBody {
            referrers: ranked(Dimension::ReferrerHost),
            browsers: ranked(Dimension::Browser),
            operating_systems: ranked(Dimension::Os),
            devices: ranked(Dimension::Device),
        },
        buckets: series
            .buckets
            .iter()
            .map(|b| BucketBody { start: timestamp(b.start), counts: b.visits.into() })
            .collect(),
    }
}

/// Parses `from`, `to`, `granularity` and `excludeBots`, reporting every bad one.
fn parse_query(raw: Option<&str>) -> Result<StatsQuery, ApiError> {
    let mut query = StatsQuery { from: None, to: None, granularity: Granularity::Day, exclude_bots: false };
    let mut errors = Vec::new();
    let date = |value: &str| DateTime::parse_from_rfc3339(value).map(|d| d.with_timezone(&Utc)).ok();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "from" => match date(&value) {
                Some(at) => query.from = Some(at),
                None => errors.push(StatsInputError::FromInvalid),
            },
            "to" => match date(&value) {
                Some(at) => query.to = Some(at),
                None => errors.push(StatsInputError::ToInvalid),
            },
            "granularity" => match Granularity::parse(&value) {
                Some(granularity) => query.granularity = granularity,
                None => errors.push(StatsInputError::GranularityInvalid),
            },
            "excludeBots" => match value.as_ref() {
                "true" => query.exclude_bots = true,
                "false" => query.exclude_bots = false,
                _ => errors.push(StatsInputError::ExcludeBotsInvalid),
            },
            _ => {}
        }
    }
    if errors.is_empty() { Ok(query) } else { Err(ApiError::InvalidStats(errors)) }
}

/// Visit statistics of a link
///
/// The link's visits over a range, from hourly or daily rollups: zero-filled
/// buckets whose sums equal the totals, and the top 10 referrer hosts, browsers,
/// OS families and device classes. `from` and `to` are RFC 3339; the range is
/// widened to whole UTC buckets. Defaults: `granularity=day`, `to` now, `from`
/// 30 days (day) or 48 hours (hour) before `to`. Counts lag redirects by about a
/// flush interval plus the worker's batch time (a second or two). A creator key
/// sees only the links it created; another key's link is a `404`.
#[utoipa::path(
    get,
    path = "/v1/links/{phrase}/stats",
    operation_id = "readLinkStats",
    tag = "Links",
    security(("apiKey" = [])),
    params(
        ("phrase" = String, Path, description = "The link's phrase, percent-encoded or raw UTF-8.", example = "wildly-grumpy-walrus"),
        ("from" = Option<String>, Query, description = "Start, RFC 3339 (inclusive).", example = "2026-11-20T00:00:00Z"),
        ("to" = Option<String>, Query, description = "End, RFC 3339 (exclusive).", example = "2026-11-22T00:00:00Z"),
        ("granularity" = Option<String>, Query, description = "`hour` (ranges up to 400 days) or `day` (up to 3,660 days).", example = "day"),
        ("excludeBots" = Option<bool>, Query, description = "Leave bot visits out of every count and ranking."),
    ),
    responses(
        (status = 200, description = "The link's visits over the range.", body = LinkStatsBody, example = json!({
            "phrase": "wildly-grumpy-walrus",
            "from": "2026-11-20T00:00:00.000Z", "to": "2026-11-22T00:00:00.000Z",
            "granularity": "day", "excludeBots": false,
            "totals": {"visits": 12, "humanVisits": 10, "botVisits": 2},
            "buckets": [
                {"start": "2026-11-20T00:00:00.000Z", "visits": 0, "humanVisits": 0, "botVisits": 0},
                {"start": "2026-11-21T00:00:00.000Z", "visits": 12, "humanVisits": 10, "botVisits": 2}
            ],
            "top": {
                "referrers": [{"value": "news.example", "visits": 7, "humanVisits": 7, "botVisits": 0},
                              {"value": "", "visits": 5, "humanVisits": 3, "botVisits": 2}],
                "browsers": [{"value": "Chrome", "visits": 10, "humanVisits": 10, "botVisits": 0},
                             {"value": "Googlebot", "visits": 2, "humanVisits": 0, "botVisits": 2}],
                "operatingSystems": [{"value": "Windows", "visits": 10, "humanVisits": 10, "botVisits": 0},
                                     {"value": "Other", "visits": 2, "humanVisits": 0, "botVisits": 2}],
                "devices": [{"value": "desktop", "visits": 10, "humanVisits": 10, "botVisits": 0},
                            {"value": "bot", "visits": 2, "humanVisits": 0, "botVisits": 2}]
            }
        })),
        (status = 400, response = responses::StatsBadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 404, response = responses::LinkNotFound),
        (status = 410, response = responses::LinkDeleted),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn link_stats(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PhraseParam(phrase): PhraseParam,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = parse_query(raw.as_deref())?;
    let (link, series) = match state.read_visit_stats.for_link(&phrase, actor.owner_scope(), query).await {
        Ok(found) => found,
        // A deleted link's phrase is 410 here too, as on every route.
        Err(ApplicationError::NotFound) => return Err(state.manage_links.missing(&phrase, &actor).await.into()),
        Err(error) => return Err(error.into()),
    };
    Ok(json(
        StatusCode::OK,
        &LinkStatsBody { phrase: link.phrase.into_inner(), series: series_body(&series, query.exclude_bots) },
    ))
}

/// Visit statistics of the service
///
/// The same as a link's statistics, for every link together, plus links created
/// and orphan visits (requests for phrases that do not exist) per bucket. Admin
/// keys only.
#[utoipa::path(
    get,
    path = "/v1/stats",
    operation_id = "readServiceStats",
    tag = "Links",
    security(("apiKey" = [])),
    params(
        ("from" = Option<String>, Query, description = "Start, RFC 3339 (inclusive).", example = "2026-11-20T00:00:00Z"),
        ("to" = Option<String>, Query, description = "End, RFC 3339 (exclusive).", example = "2026-11-22T00:00:00Z"),
        ("granularity" = Option<String>, Query, description = "`hour` (ranges up to 400 days) or `day` (up to 3,660 days).", example = "hour"),
        ("excludeBots" = Option<bool>, Query, description = "Leave bot visits out of every count and ranking."),
    ),
    responses(
        (status = 200, description = "The service's visits over the range.", body = ServiceStatsBody, example = json!({
            "from": "2026-11-21T10:00:00.000Z", "to": "2026-11-21T12:00:00.000Z",
            "granularity": "hour", "excludeBots": false,
            "totals": {"visits": 30, "humanVisits": 25, "botVisits": 5},
            "buckets": [
                {"start": "2026-11-21T10:00:00.000Z", "visits": 10, "humanVisits": 9, "botVisits": 1},
                {"start": "2026-11-21T11:00:00.000Z", "visits": 20, "humanVisits": 16, "botVisits": 4}
            ],
            "top": {"referrers": [], "browsers": [], "operatingSystems": [], "devices": []},
            "linksCreated": [2, 1], "orphanVisits": [0, 17],
            "totalLinksCreated": 3, "totalOrphanVisits": 17
        })),
        (status = 400, response = responses::StatsBadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 403, response = responses::Forbidden),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn service_stats(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let query = parse_query(raw.as_deref())?;
    let stats = state.read_visit_stats.for_service(query).await?;
    Ok(json(
        StatusCode::OK,
        &ServiceStatsBody {
            total_links_created: stats.links_created.iter().sum(),
            total_orphan_visits: stats.orphan_visits.iter().sum(),
            links_created: stats.links_created,
            orphan_visits: stats.orphan_visits,
            series: series_body(&stats.series, query.exclude_bots),
        },
    ))
}
