//! `POST /v1/links`: generate a phrase link.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use offndat_application::GenerateLinkCommand;
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::JsonObject;
use crate::response::json;
use crate::state::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    url: String,
    stats_url: String,
}

pub async fn create_link(State(state): State<AppState>, body: JsonObject) -> Result<Response, ApiError> {
    let link = state.generate_link.execute(command(&body)).await?;
    let created = Created { url: state.short_urls.link(&link.phrase), stats_url: state.short_urls.stats(&link.phrase) };
    let location = HeaderValue::from_str(&created.url).map_err(|_| ApiError::Internal)?;
    let mut response = json(StatusCode::CREATED, &created);
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// Reads the fields leniently: a field of the wrong type counts as absent, so it is
/// reported by validation with its rule's code rather than as a parse failure.
fn command(body: &JsonObject) -> GenerateLinkCommand {
    let id = |name| body.field(name).and_then(Value::as_i64);
    GenerateLinkCommand {
        target_url: body.field("targetUrl").and_then(Value::as_str).map(str::to_owned),
        language_id: id("languageId"),
        theme_id: id("themeId"),
        format_id: id("formatId"),
    }
}
