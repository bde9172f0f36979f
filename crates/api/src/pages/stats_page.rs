//! `GET /s/{phrase}`: a link's statistics for people. One read of the link with
//! its totals and newest visits, and one read of its hourly rollups over the
//! last 90 days, from which both charts (48 hours by hour, 90 days by day) and
//! the top lists come.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use offndat_application::{ApplicationError, StatsQuery};
use offndat_domain::stats::{Granularity, VisitSeries};
use offndat_domain::{Dimension, LinkState, Phrase, Visit};

use super::charts::{Chart, chart, days_of};
use super::error_page::GoneReason;
use super::{ErrorPageKind, error_page, render};
use crate::extract::decode_phrase_segment;
use crate::short_url::segment;
use crate::state::AppState;

/// Counts change at most once per visit flush; a few seconds of reuse costs a
/// reader nothing and spares the database a crowd refreshing one page.
const STATS_CACHE: HeaderValue = HeaderValue::from_static("public, max-age=5");

/// Days the daily chart covers, today included.
const DAYS: i64 = 90;
/// Hours the hourly chart covers, the current hour included.
const HOURS: usize = 48;

#[derive(Template)]
#[template(path = "stats.html")]
struct StatsPage {
    phrase: String,
    short_url: String,
    target: String,
    created: String,
    total: i64,
    humans: i64,
    bots: i64,
    /// 48 hours by hour, then 90 days by day.
    charts: Vec<Chart>,
    top: Vec<TopList>,
    visits: Vec<VisitRow>,
    qr_svg: String,
}

/// The most frequent values of one dimension over the 90 days.
struct TopList {
    title: &'static str,
    rows: Vec<TopRow>,
}

struct TopRow {
    value: String,
    total: i64,
    humans: i64,
    bots: i64,
}

/// A visit as shown: never its IP address.
struct VisitRow {
    when: String,
    user_agent: String,
    referrer: String,
    kind: &'static str,
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%-d %b %Y, %H:%M:%S UTC").to_string()
}

/// The stats page of a link.
pub async fn stats_page(State(state): State<AppState>, uri: Uri) -> Response {
    let phrase = match decode_phrase_segment(uri.path()).ok().and_then(|raw| Phrase::parse(&raw).ok()) {
        Some(phrase) => phrase,
        None => return error_page(ErrorPageKind::InvalidPhrase),
    };
    let stats = match state.read_link_stats.execute(&phrase, None).await {
        Ok(stats) => stats,
        // A deleted link's page is gone, as its short URL is.
        Err(ApplicationError::NotFound) => {
            return error_page(failure(state.manage_links.missing_in(&phrase, None).await));
        }
        Err(error) => return error_page(failure(error)),
    };
    let now = state.read_visit_stats.now();
    // A link that cannot be followed (taken down, expired, over its limit) shows
    // the page its short URL shows, never its target or its visitors.
    if let Some(reason) = gone_reason(stats.link.state(now)) {
        return error_page(ErrorPageKind::LinkGone(reason));
    }
    let query = StatsQuery {
        from: Some(Granularity::Day.floor(now) - TimeDelta::days(DAYS - 1)),
        to: Some(Granularity::Hour.floor(now) + TimeDelta::hours(1)),
        granularity: Granularity::Hour,
        exclude_bots: false,
    };
    let series = match state.read_visit_stats.series_of(&stats.link, query).await {
        Ok(series) => series,
        Err(error) => return error_page(failure(error)),
    };
    let link = &stats.link;
    let hours = &series.buckets[series.buckets.len().saturating_sub(HOURS)..];
    let page = StatsPage {
        phrase: link.phrase.as_str().to_owned(),
        short_url: state.short_urls.link(&link.phrase),
        target: link.target_url.to_string(),
        created: when(link.created_at),
        total: stats.visits,
        humans: stats.visits - stats.bot_visits,
        bots: stats.bot_visits,
        charts: vec![
            chart("chart-hours", "The last 48 hours, by hour (UTC)", "48 hours", hours, Granularity::Hour, 6),
            chart(
                "chart-days",
                "The last 90 days, by day (UTC)",
                "90 days",
                &days_of(&series.buckets),
                Granularity::Day,
                15,
            ),
        ],
        top: top_lists(&series),
        visits: stats.recent_visits.iter().map(visit_row).collect(),
        qr_svg: format!("/v1/links/{}/qr.svg", segment(&link.phrase)),
    };
    render(&page, StatusCode::OK, STATS_CACHE)
}

fn gone_reason(state: LinkState) -> Option<GoneReason> {
    match state {
        LinkState::Active => None,
        LinkState::Disabled => Some(GoneReason::Disabled),
        LinkState::Expired => Some(GoneReason::Expired),
        LinkState::VisitLimitReached => Some(GoneReason::VisitLimitReached),
        LinkState::Deleted => Some(GoneReason::Deleted),
    }
}

fn failure(error: ApplicationError) -> ErrorPageKind {
    match crate::error::ApiError::from(error) {
        crate::error::ApiError::LinkNotFound => ErrorPageKind::LinkNotFound,
        crate::error::ApiError::LinkGone(state) => {
            ErrorPageKind::LinkGone(gone_reason(state).unwrap_or(GoneReason::Deleted))
        }
        crate::error::ApiError::Unavailable => ErrorPageKind::Unavailable,
        _ => ErrorPageKind::ServerError,
    }
}

fn top_lists(series: &VisitSeries) -> Vec<TopList> {
    [
        (Dimension::ReferrerHost, "Referrers"),
        (Dimension::Browser, "Browsers"),
        (Dimension::Os, "Operating systems"),
        (Dimension::Device, "Devices"),
    ]
    .into_iter()
    .map(|(dimension, title)| TopList {
        title,
        rows: series
            .top
            .iter()
            .find(|(d, _)| *d == dimension)
            .map(|(_, ranked)| {
                ranked
                    .iter()
                    .map(|r| TopRow {
                        value: if r.value.is_empty() && dimension == Dimension::ReferrerHost {
                            "(none)".to_owned()
                        } else {
                            r.value.clone()
                        },
                        total: r.visits.total(),
                        humans: r.visits.human,
                        bots: r.visits.bot,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
    .collect()
}

fn visit_row(visit: &Visit) -> VisitRow {
    VisitRow {
        when: when(visit.visited_at),
        user_agent: visit.user_agent.clone().unwrap_or_else(|| "(none)".to_owned()),
        // The host only: a referrer's path and query may carry a visitor's data,
        // and this page is public.
        referrer: visit
            .referrer
            .as_deref()
            .and_then(|r| url::Url::parse(r).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "(none)".to_owned()),
        kind: if visit.potential_bot { "Bot" } else { "Person" },
    }
}
