//! `POST /v1/links`: generate a phrase link.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use offndat_application::{Actor, GenerateLinkCommand, IdempotencyKey, Input};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::extract::JsonObject;
use crate::openapi::{responses, schemas};
use crate::response::json;
use crate::state::AppState;

crate::openapi::document!(CreateLinkApi: create_link);

/// The short URL of a created link and the URL of its statistics page.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreatedLink)]
struct Created {
    /// `<public base URL>/<phrase>`, the phrase percent-encoded as a path segment.
    #[schema(format = "uri", example = "https://offnd.at/wildly-grumpy-walrus")]
    url: String,
    /// `<public base URL>/s/<phrase>`.
    #[schema(format = "uri", example = "https://offnd.at/s/wildly-grumpy-walrus")]
    stats_url: String,
}

/// Create a link
///
/// Draws a free phrase in the requested language, theme and format and links it
/// to the target URL, or takes the `phrase` given. Every failed validation rule
/// is listed in one `400`. `expiresAt` and `maxVisits` limit how long and how
/// often the link can be followed.
#[utoipa::path(
    post,
    path = "/v1/links",
    operation_id = "createLink",
    tag = "Links",
    security(("apiKey" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Optional, 1 to 255 visible ASCII \
        characters. Retrying with the same key and body within 24 hours answers the link the first request \
        created (same status and body) and creates nothing; the same key with another body is refused with \
        `422 Idempotency.KeyReused`. Keys are per API key.", example = "9f1c7d0e-create-spring-launch")),
    request_body(content = schemas::GenerateLinkRequest, description = "The link to create. Any JSON object is \
        read; missing or mistyped fields are validation errors.", content_type = "application/json"),
    responses(
        (status = 201, description = "Created. `Location` is the short URL.", body = Created,
            headers(("Location" = String, description = "The short URL, as `url` in the body.")),
            example = json!({"url": "https://offnd.at/wildly-grumpy-walrus", "statsUrl": "https://offnd.at/s/wildly-grumpy-walrus"})),
        (status = 400, response = responses::CreateLinkBadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 409, response = responses::PhraseTaken),
        (status = 422, response = responses::IdempotencyKeyReused),
        (status = 413, response = responses::PayloadTooLarge),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::CreateLinkUnavailable),
    ),
)]
pub async fn create_link(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Response, ApiError> {
    if let Some(limits) = &state.rate_limits {
        limits.take_create(&actor.name)?;
    }
    let key = idempotency_key(&headers, &actor, &body)?;
    let outcome = state.create_link.execute(command(&body, &actor), key.as_ref()).await?;
    let phrase = outcome.phrase();
    let created = Created { url: state.short_urls.link(phrase), stats_url: state.short_urls.stats(phrase) };
    let location = HeaderValue::from_str(&created.url).map_err(|_| ApiError::Internal)?;
    let mut response = json(StatusCode::CREATED, &created);
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// The request's `Idempotency-Key`, if it sent one: scoped to the caller's key
/// name, with a digest of the body (the parsed object, so formatting does not
/// matter).
fn idempotency_key(headers: &HeaderMap, actor: &Actor, body: &JsonObject) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|k| IdempotencyKey::is_valid(k)).ok_or(ApiError::InvalidIdempotencyKey)?;
    let canonical = serde_json::to_vec(&body.0).map_err(|_| ApiError::Internal)?;
    Ok(Some(IdempotencyKey {
        actor: actor.name.clone(),
        key: key.to_owned(),
        request_hash: Sha256::digest(&canonical).into(),
    }))
}

/// The header naming a create request for safe retries.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Reads the fields leniently: a field of the wrong type counts as absent, so it is
/// reported by validation with its rule's code rather than as a parse failure.
/// The link is owned by the calling stored key, if any.
fn command(body: &JsonObject, actor: &Actor) -> GenerateLinkCommand {
    let id = |name| body.field(name).and_then(Value::as_i64);
    // The additions are optional: absent or `null` leaves them unset, a value of
    // the wrong type is reported by their rule.
    let text = |name| match body.field(name) {
        None | Some(Value::Null) => Input::Absent,
        Some(value) => value.as_str().map_or(Input::Mistyped, |s| Input::Given(s.to_owned())),
    };
    GenerateLinkCommand {
        target_url: body.field("targetUrl").and_then(Value::as_str).map(str::to_owned),
        language_id: id("languageId"),
        theme_id: id("themeId"),
        format_id: id("formatId"),
        phrase: text("phrase"),
        expires_at: text("expiresAt"),
        max_visits: match body.field("maxVisits") {
            None | Some(Value::Null) => Input::Absent,
            Some(value) => value.as_i64().map_or(Input::Mistyped, Input::Given),
        },
        owner_key_id: actor.owner_of_new_links(),
    }
}
