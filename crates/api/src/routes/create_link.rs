//! `POST /v1/links`: generate a phrase link.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use offndat_application::{Actor, GenerateLinkCommand};
use serde::Serialize;
use serde_json::Value;

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
/// to the target URL. Every failed validation rule is listed in one `400`.
#[utoipa::path(
    post,
    path = "/v1/links",
    operation_id = "createLink",
    tag = "Links",
    security(("apiKey" = [])),
    request_body(content = schemas::GenerateLinkRequest, description = "The link to create. Any JSON object is \
        read; missing or mistyped fields are validation errors.", content_type = "application/json"),
    responses(
        (status = 201, description = "Created. `Location` is the short URL.", body = Created,
            headers(("Location" = String, description = "The short URL, as `url` in the body.")),
            example = json!({"url": "https://offnd.at/wildly-grumpy-walrus", "statsUrl": "https://offnd.at/s/wildly-grumpy-walrus"})),
        (status = 400, response = responses::CreateLinkBadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 413, response = responses::PayloadTooLarge),
        (status = 429, response = responses::TooManyRequests),
        (status = 503, response = responses::CreateLinkUnavailable),
    ),
)]
pub async fn create_link(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let link = state.generate_link.execute(command(&body, &actor)).await?;
    let created = Created { url: state.short_urls.link(&link.phrase), stats_url: state.short_urls.stats(&link.phrase) };
    let location = HeaderValue::from_str(&created.url).map_err(|_| ApiError::Internal)?;
    let mut response = json(StatusCode::CREATED, &created);
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// Reads the fields leniently: a field of the wrong type counts as absent, so it is
/// reported by validation with its rule's code rather than as a parse failure.
/// The link is owned by the calling stored key, if any.
fn command(body: &JsonObject, actor: &Actor) -> GenerateLinkCommand {
    let id = |name| body.field(name).and_then(Value::as_i64);
    GenerateLinkCommand {
        target_url: body.field("targetUrl").and_then(Value::as_str).map(str::to_owned),
        language_id: id("languageId"),
        theme_id: id("themeId"),
        format_id: id("formatId"),
        owner_key_id: actor.owner_of_new_links(),
    }
}
