//! `PATCH /v1/links/{phrase}`, `DELETE /v1/links/{phrase}` and
//! `DELETE /v1/links/{phrase}/visits`: edit, disable, delete a link and erase its
//! visits. Scoped to the caller's links; each change is audited.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use offndat_application::{Actor, EditLinkCommand, Patch};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::{JsonObject, PhraseParam};
use crate::openapi::{responses, schemas};
use crate::response::json;
use crate::routes::read_link::{LinkBody, link_body};
use crate::state::AppState;

crate::openapi::document!(ManageLinkApi: edit_link, delete_link, erase_visits);

/// Edit a link
///
/// Applies a JSON merge patch (RFC 7396): absent fields stay, `null` clears. Takes
/// effect on every replica within a second (`link.changed`); disabling is how a
/// link is taken down (`410 Link.Disabled` from then on). Only admin keys may
/// enable a link (`disabled: false` or `null`): a creator gets `403`, so a link
/// taken down by an admin or the blocklist stays down.
#[utoipa::path(
    patch,
    path = "/v1/links/{phrase}",
    operation_id = "editLink",
    tag = "Links",
    security(("apiKey" = [])),
    params(("phrase" = String, Path, description = "The link's phrase, percent-encoded or raw UTF-8.",
        example = "wildly-grumpy-walrus")),
    request_body(content = schemas::EditLinkRequest, description = "The fields to change.",
        content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "The link as it now is.", body = LinkBody, example = json!({
            "id": "0195f6a6-7b1e-7000-8000-000000000001",
            "phrase": "wildly-grumpy-walrus",
            "targetUrl": "https://example.com/",
            "languageId": 0,
            "themeId": 0,
            "visits": 42,
            "humanVisits": 40,
            "botVisits": 2,
            "recentVisits": [],
            "createdAt": "2026-11-21T09:59:00.000Z",
            "state": "disabled",
            "expiresAt": null,
            "maxVisits": null,
            "disabledReason": "Reported as phishing"
        })),
        (status = 400, response = responses::EditLinkBadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 403, response = responses::Forbidden),
        (status = 404, response = responses::LinkNotFound),
        (status = 410, response = responses::LinkDeleted),
        (status = 413, response = responses::PayloadTooLarge),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn edit_link(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PhraseParam(phrase): PhraseParam,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let field = |name| match body.field(name) {
        None => Patch::Absent,
        Some(Value::Null) => Patch::Null,
        Some(value) => Patch::Set(value.clone()),
    };
    let command = EditLinkCommand {
        target_url: field("targetUrl"),
        expires_at: field("expiresAt"),
        max_visits: field("maxVisits"),
        disabled: field("disabled"),
        disabled_reason: field("disabledReason"),
    };
    state.manage_links.edit(&phrase, &command, &actor).await?;
    Ok(json(StatusCode::OK, &link_body(&state, &phrase, &actor).await?))
}

/// Delete a link
///
/// Deletes the link with its visits and rollups. Its phrase answers
/// `410 Link.Deleted` from then on and is not issued again (drawn or chosen) for
/// `OFFNDAT_PHRASE_QUARANTINE_DAYS` (30 by default).
#[utoipa::path(
    delete,
    path = "/v1/links/{phrase}",
    operation_id = "deleteLink",
    tag = "Links",
    security(("apiKey" = [])),
    params(("phrase" = String, Path, description = "The link's phrase, percent-encoded or raw UTF-8.",
        example = "wildly-grumpy-walrus")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = responses::InvalidPhrase),
        (status = 401, response = responses::Unauthorized),
        (status = 404, response = responses::LinkNotFound),
        (status = 410, response = responses::LinkDeleted),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn delete_link(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PhraseParam(phrase): PhraseParam,
) -> Result<Response, ApiError> {
    state.manage_links.delete(&phrase, &actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What erasing a link's visits removed.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ErasedVisits)]
struct ErasedBody {
    /// Rows of the raw visit log (kept with `OFFNDAT_VISIT_LOG=full`).
    #[schema(minimum = 0, example = 120)]
    raw_visits: u64,
    /// Newest visits shown by `GET /v1/links/{phrase}` (IP, user agent, referrer).
    #[schema(minimum = 0, example = 10)]
    recent_visits: u64,
    /// Rows of the link's hourly and daily rollups (one per bucket, with its
    /// referrer hosts, browsers, systems and devices; rows kept from the earlier
    /// layout count one per value).
    #[schema(minimum = 0, example = 48)]
    rollup_rows: u64,
}

/// Erase a link's visits
///
/// Erases the stored visits of the link (a privacy request): the raw visit log,
/// the newest visits and the per-link rollups. The totals (`visits`,
/// `humanVisits`, `botVisits`) stay, so a visit limit keeps counting; the
/// service-wide statistics keep their anonymous counts.
#[utoipa::path(
    delete,
    path = "/v1/links/{phrase}/visits",
    operation_id = "eraseLinkVisits",
    tag = "Links",
    security(("apiKey" = [])),
    params(("phrase" = String, Path, description = "The link's phrase, percent-encoded or raw UTF-8.",
        example = "wildly-grumpy-walrus")),
    responses(
        (status = 200, description = "What was erased.", body = ErasedBody,
            example = json!({"rawVisits": 0, "recentVisits": 10, "rollupRows": 48})),
        (status = 400, response = responses::InvalidPhrase),
        (status = 401, response = responses::Unauthorized),
        (status = 404, response = responses::LinkNotFound),
        (status = 410, response = responses::LinkDeleted),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn erase_visits(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    PhraseParam(phrase): PhraseParam,
) -> Result<Response, ApiError> {
    let erased = state.manage_links.erase_visits(&phrase, &actor).await?;
    Ok(json(
        StatusCode::OK,
        &ErasedBody {
            raw_visits: erased.raw_visits,
            recent_visits: erased.recent_visits,
            rollup_rows: erased.rollup_rows,
        },
    ))
}
