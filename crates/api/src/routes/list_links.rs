//! `GET /v1/links`: the caller's links, a page at a time.

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use offndat_application::Actor;
use offndat_application::list_links::{
    ListLinksQuery, ListOrder, ListedLink, MAX_PAGE_SIZE, MAX_SEARCH_CHARS, StateFilter,
};
use serde::Serialize;

use crate::error::{ApiError, ListInputError};
use crate::openapi::responses;
use crate::response::{json, timestamp};
use crate::routes::read_link::StateName;
use crate::state::AppState;

crate::openapi::document!(ListLinksApi: list_links);

/// A page of links.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LinkList)]
struct ListBody {
    links: Vec<ListedBody>,
    pagination: Pagination,
}

/// A link in a list: `GET /v1/links/{phrase}` without the newest visits.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ListedLink)]
struct ListedBody {
    id: uuid::Uuid,
    #[schema(example = "wildly-grumpy-walrus")]
    phrase: String,
    #[schema(format = "uri", example = "https://example.com/")]
    target_url: String,
    #[schema(example = 0)]
    language_id: u8,
    #[schema(example = 0)]
    theme_id: u8,
    #[schema(minimum = 0, example = 42)]
    visits: i64,
    #[schema(minimum = 0, example = 40)]
    human_visits: i64,
    #[schema(minimum = 0, example = 2)]
    bot_visits: i64,
    /// RFC 3339, UTC, milliseconds.
    #[schema(format = DateTime, example = "2026-11-21T09:59:00.000Z")]
    created_at: String,
    state: StateName,
    #[schema(format = DateTime, example = json!(null))]
    expires_at: Option<String>,
    #[schema(minimum = 1, maximum = 2147483647, example = json!(null))]
    max_visits: Option<u32>,
    #[schema(example = json!(null))]
    disabled_reason: Option<String>,
}

/// Where this page is.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    #[schema(minimum = 1, example = 1)]
    page: u32,
    #[schema(minimum = 1, maximum = 100, example = 20)]
    page_size: u32,
    /// Links matching the filters, on every page.
    #[schema(minimum = 0, example = 1)]
    total_items: i64,
    #[schema(minimum = 0, example = 1)]
    total_pages: i64,
}

impl ListedBody {
    fn new(listed: ListedLink, now: chrono::DateTime<chrono::Utc>) -> Self {
        let link = listed.link;
        Self {
            id: link.id,
            state: StateName::of(&link, now),
            phrase: link.phrase.into_inner(),
            target_url: link.target_url.to_string(),
            language_id: link.language.id(),
            theme_id: link.theme.id(),
            visits: listed.visits,
            human_visits: listed.visits - listed.bot_visits,
            bot_visits: listed.bot_visits,
            created_at: timestamp(link.created_at),
            expires_at: link.expires_at.map(timestamp),
            max_visits: link.max_visits,
            disabled_reason: if link.disabled { link.disabled_reason } else { None },
        }
    }
}

/// List links
///
/// The caller's links (an admin key: every link), a page at a time. `search`
/// matches anywhere in the phrase or the target URL, case-insensitively; `state`
/// keeps `active` (followable now), `disabled` or `expired` links; `orderBy` is
/// `createdAt-desc` (default), `createdAt-asc` or `visits-desc`. `pageSize` is 1
/// to 100 (default 20); a page past the end is empty.
#[utoipa::path(
    get,
    path = "/v1/links",
    operation_id = "listLinks",
    tag = "Links",
    security(("apiKey" = [])),
    params(
        ("page" = Option<u32>, Query, minimum = 1, description = "From 1; default 1."),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Default 20."),
        ("search" = Option<String>, Query, description = "1 to 200 characters once trimmed, not only white space, no NUL; matched anywhere in phrase or target."),
        ("state" = Option<String>, Query, description = "`active`, `disabled` or `expired`."),
        ("orderBy" = Option<String>, Query, description = "`createdAt-desc` (default), `createdAt-asc` or `visits-desc`."),
    ),
    responses(
        (status = 200, description = "A page of links.", body = ListBody, example = json!({
            "links": [{
                "id": "0195f6a6-7b1e-7000-8000-000000000001", "phrase": "wildly-grumpy-walrus",
                "targetUrl": "https://example.com/", "languageId": 0, "themeId": 0,
                "visits": 42, "humanVisits": 40, "botVisits": 2, "createdAt": "2026-11-21T09:59:00.000Z",
                "state": "active", "expiresAt": null, "maxVisits": null, "disabledReason": null
            }],
            "pagination": {"page": 1, "pageSize": 20, "totalItems": 1, "totalPages": 1}
        })),
        (status = 400, response = responses::ListLinksBadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn list_links(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = parse_query(raw.as_deref())?;
    let page = state.manage_links.list(&query, &actor).await?;
    let now = state.clock.now();
    let pagination = Pagination {
        page: query.page,
        page_size: query.page_size,
        total_items: page.total_items,
        total_pages: page.total_pages(query.page_size),
    };
    let links = page.links.into_iter().map(|listed| ListedBody::new(listed, now)).collect();
    Ok(json(StatusCode::OK, &ListBody { links, pagination }))
}

/// Reads the query; every bad parameter is reported, in this order.
fn parse_query(raw: Option<&str>) -> Result<ListLinksQuery, ApiError> {
    let mut query = ListLinksQuery::default();
    let mut errors = Vec::new();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "page" => match value.parse::<u32>() {
                Ok(page) if page >= 1 => query.page = page,
                _ => errors.push(ListInputError::PageInvalid),
            },
            "pageSize" => match value.parse::<u32>() {
                Ok(size) if (1..=MAX_PAGE_SIZE).contains(&size) => query.page_size = size,
                _ => errors.push(ListInputError::PageSizeInvalid),
            },
            "search" => {
                let search = value.trim();
                // PostgreSQL text cannot hold NUL, so no link could match one.
                if search.is_empty() || search.contains('\0') || search.chars().count() > MAX_SEARCH_CHARS {
                    errors.push(ListInputError::SearchInvalid);
                } else {
                    query.search = Some(search.to_owned());
                }
            }
            "state" => match value.as_ref() {
                "active" => query.state = Some(StateFilter::Active),
                "disabled" => query.state = Some(StateFilter::Disabled),
                "expired" => query.state = Some(StateFilter::Expired),
                _ => errors.push(ListInputError::StateInvalid),
            },
            "orderBy" => match value.as_ref() {
                "createdAt-desc" => query.order = ListOrder::CreatedDesc,
                "createdAt-asc" => query.order = ListOrder::CreatedAsc,
                "visits-desc" => query.order = ListOrder::VisitsDesc,
                _ => errors.push(ListInputError::OrderByInvalid),
            },
            _ => {}
        }
    }
    errors.sort_by_key(|e| *e as u8);
    errors.dedup();
    if errors.is_empty() { Ok(query) } else { Err(ApiError::InvalidListQuery(errors)) }
}
