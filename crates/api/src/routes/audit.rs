//! `GET /v1/audit`: the audit log, newest first, for admins.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use offndat_application::{AuditEntry, Page, PageRequest};
use serde::Serialize;

use crate::error::ApiError;
use crate::openapi::responses;
use crate::response::{json, timestamp};
use crate::state::AppState;

crate::openapi::document!(AuditApi: read_audit);

/// One audited action.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditEntry)]
struct EntryBody {
    #[schema(example = 42)]
    id: i64,
    /// RFC 3339, UTC, milliseconds.
    #[schema(format = DateTime, example = "2026-11-26T01:00:00.000Z")]
    at: String,
    /// The acting key's name, `OFFNDAT_API_KEYS#n` (n-th configured key), `cli`
    /// (the command line) or `OFFNDAT_BLOCKLIST_FILE`.
    #[schema(example = "ops-admin")]
    actor: String,
    /// `key.created`, `key.revoked`, `blocklist.changed`, `link.disabled`, ...
    #[schema(example = "key.created")]
    action: String,
    /// The link acted on, if any.
    #[schema(example = json!(null))]
    link_phrase: Option<String>,
    /// Action-specific details; never a secret.
    #[schema(value_type = Object, example = json!({"name": "ci-deploy", "role": "creator"}))]
    detail: serde_json::Value,
}

impl From<AuditEntry> for EntryBody {
    fn from(entry: AuditEntry) -> Self {
        Self {
            id: entry.id,
            at: timestamp(entry.at),
            actor: entry.actor,
            action: entry.action,
            link_phrase: entry.link_phrase,
            detail: entry.detail,
        }
    }
}

/// Where a page is among all of them.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Pagination)]
pub struct PaginationBody {
    #[schema(minimum = 1, example = 1)]
    page: u32,
    #[schema(minimum = 1, maximum = 100, example = 20)]
    page_size: u32,
    #[schema(minimum = 0, example = 1)]
    total_items: u64,
    #[schema(minimum = 0, example = 1)]
    total_pages: u64,
}

impl<T> From<&Page<T>> for PaginationBody {
    fn from(page: &Page<T>) -> Self {
        Self {
            page: page.page,
            page_size: page.page_size,
            total_items: page.total_items,
            total_pages: page.total_pages,
        }
    }
}

/// A page of the audit log.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AuditPage)]
struct AuditPageBody {
    entries: Vec<EntryBody>,
    pagination: PaginationBody,
}

/// Read the audit log
///
/// What admins and operators did (keys created and revoked, blocklist changes,
/// links disabled, ...), newest first, a page at a time. Admin keys only.
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "readAudit",
    tag = "Keys",
    security(("apiKey" = [])),
    params(
        ("page" = Option<u32>, Query, description = "Page number, from 1 (default 1).", example = 1),
        ("pageSize" = Option<u32>, Query, description = "Entries per page, 1 to 100 (default 20).", example = 20),
    ),
    responses(
        (status = 200, description = "A page of entries, newest first.", body = AuditPageBody, example = json!({
            "entries": [{"id": 42, "at": "2026-11-26T01:00:00.000Z", "actor": "ops-admin", "action": "key.created",
                "linkPhrase": null, "detail": {"name": "ci-deploy", "role": "creator"}}],
            "pagination": {"page": 1, "pageSize": 20, "totalItems": 1, "totalPages": 1}
        })),
        (status = 400, response = responses::PaginationBadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 403, response = responses::Forbidden),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn read_audit(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let request = page_request(raw.as_deref())?;
    let page = state.read_audit.execute(request).await?;
    let pagination = PaginationBody::from(&page);
    Ok(json(
        StatusCode::OK,
        &AuditPageBody { entries: page.items.into_iter().map(EntryBody::from).collect(), pagination },
    ))
}

/// `?page=&pageSize=` of a listing.
pub fn page_request(raw: Option<&str>) -> Result<PageRequest, ApiError> {
    let (mut page, mut size) = (None, None);
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "page" => page = Some(value.into_owned()),
            "pageSize" => size = Some(value.into_owned()),
            _ => {}
        }
    }
    PageRequest::parse(page.as_deref(), size.as_deref()).map_err(ApiError::InvalidPage)
}
