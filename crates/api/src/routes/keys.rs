//! `GET /v1/keys`, `POST /v1/keys`, `DELETE /v1/keys/{name}`: stored API keys,
//! for admins.

use axum::Extension;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use offndat_application::{Actor, KeyRecord};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::JsonObject;
use crate::openapi::{responses, schemas};
use crate::response::{json, timestamp};
use crate::state::AppState;

crate::openapi::document!(KeysApi: list_keys, create_key, revoke_key);

/// A stored API key; never its secret.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiKey)]
struct KeyBody {
    #[schema(example = "ci-deploy")]
    name: String,
    /// `admin` (everything, every link) or `creator` (creates links; reads and
    /// manages only its own).
    #[schema(example = "creator")]
    role: &'static str,
    /// RFC 3339, UTC, milliseconds.
    #[schema(format = DateTime, example = "2026-11-26T01:00:00.000Z")]
    created_at: String,
    /// Written lazily: up to a minute behind, per API process.
    #[schema(format = DateTime, example = "2026-11-26T01:05:00.000Z")]
    last_used_at: Option<String>,
    /// Set once revoked; a revoked key stops working within a second everywhere.
    #[schema(format = DateTime, example = json!(null))]
    revoked_at: Option<String>,
}

impl From<KeyRecord> for KeyBody {
    fn from(key: KeyRecord) -> Self {
        Self {
            name: key.name,
            role: key.role.as_str(),
            created_at: timestamp(key.created_at),
            last_used_at: key.last_used_at.map(timestamp),
            revoked_at: key.revoked_at.map(timestamp),
        }
    }
}

/// Every stored key, revoked ones too, oldest first.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ApiKeyList)]
struct KeyListBody {
    keys: Vec<KeyBody>,
}

/// A key just created: the only response that ever holds its secret.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreatedApiKey)]
struct CreatedKeyBody {
    #[serde(flatten)]
    key: KeyBody,
    /// The value for `X-Offnd-Api-Key`. Shown once; only its SHA-256 is stored.
    #[schema(example = "offndat_5f2b8c0e9d4a7f1e3b6c8d0a2f4e6b8c1d3f5a7e9b0c2d4f6a8b0c1e3d5f7a9b")]
    secret: String,
}

/// The `{name}` path segment, percent-decoded by us so that a bad encoding is a
/// problem response too (axum's `Path` would answer in plain text). A segment
/// that does not decode names no key.
pub struct KeyName(String);

impl<S: Send + Sync> FromRequestParts<S> for KeyName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.path().rsplit('/').next().unwrap_or_default();
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map(|name| Self(name.into_owned()))
            .map_err(|_| ApiError::KeyNotFound)
    }
}

/// List API keys
///
/// Every stored key with its role and times, revoked ones too. Keys from
/// `OFFNDAT_API_KEYS` are not listed. Admin keys only.
#[utoipa::path(
    get,
    path = "/v1/keys",
    operation_id = "listKeys",
    tag = "Keys",
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "The keys.", body = KeyListBody, example = json!({"keys": [
            {"name": "ci-deploy", "role": "creator", "createdAt": "2026-11-26T01:00:00.000Z",
             "lastUsedAt": "2026-11-26T01:05:00.000Z", "revokedAt": null}
        ]})),
        (status = 401, response = responses::Unauthorized),
        (status = 403, response = responses::Forbidden),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn list_keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let keys = state.manage_keys.list().await?;
    Ok(json(StatusCode::OK, &KeyListBody { keys: keys.into_iter().map(KeyBody::from).collect() }))
}

/// Create an API key
///
/// Stores a key with a name and a role and answers with its secret, once. The
/// creation is written to the audit log (without the secret). Admin keys only.
#[utoipa::path(
    post,
    path = "/v1/keys",
    operation_id = "createKey",
    tag = "Keys",
    security(("apiKey" = [])),
    request_body(content = schemas::CreateKeyRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `secret` is shown only here.", body = CreatedKeyBody, example = json!({
            "name": "ci-deploy", "role": "creator", "createdAt": "2026-11-26T01:00:00.000Z",
            "lastUsedAt": null, "revokedAt": null,
            "secret": "offndat_5f2b8c0e9d4a7f1e3b6c8d0a2f4e6b8c1d3f5a7e9b0c2d4f6a8b0c1e3d5f7a9b"
        })),
        (status = 400, response = responses::CreateKeyBadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 403, response = responses::Forbidden),
        (status = 409, response = responses::KeyNameTaken),
        (status = 413, response = responses::PayloadTooLarge),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn create_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let name = body.field("name").and_then(Value::as_str);
    let role = body.field("role").and_then(Value::as_str);
    let created = state.manage_keys.create(&actor.name, name, role).await?;
    Ok(json(StatusCode::CREATED, &CreatedKeyBody { key: created.record.into(), secret: created.secret }))
}

/// Revoke an API key
///
/// The key stops working on every API process within a second. Revoking a
/// revoked key again is a no-op. Written to the audit log. Admin keys only.
#[utoipa::path(
    delete,
    path = "/v1/keys/{name}",
    operation_id = "revokeKey",
    tag = "Keys",
    security(("apiKey" = [])),
    params(("name" = String, Path, description = "The key's name.", example = "ci-deploy")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, response = responses::Unauthorized),
        (status = 403, response = responses::Forbidden),
        (status = 404, response = responses::KeyNotFound),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::ServiceUnavailable),
    ),
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    KeyName(name): KeyName,
) -> Result<Response, ApiError> {
    state.manage_keys.revoke(&actor.name, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
